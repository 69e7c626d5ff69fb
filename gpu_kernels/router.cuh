// MoE routing on the GPU: router logits -> expert scores (softmax or
// sigmoid), the selection-only bias, group-limited top-k, weight
// normalization and scaling, with cpu_kernels/moe_route.h's moe_route_row
// semantics. Host launcher with an explicit stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cpu_kernels/moe_route.h"
#include "runtime/base/status.h"

namespace strata::gpu {

// The CPU kernels' routing parameters (cpu_kernels/moe_route.h, a plain
// struct); norm_w divides by the sum clamped to 2^-14.
using GpuRouteConfig = MoeRouteParams;

// For each row r < n_rows of n_expert logits (rows logits_stride floats
// apart): ids[r*n_used + k] and weights[r*n_used + k] for k < n_used, best
// first. bias: n_expert floats (device) added to the scores for selection
// only, or null. Ties go to the lower expert id, as on the CPU: the same
// logits give the same ids; weights agree to the ulp of expf.
// Errors: n_expert outside [1, 1024], n_used outside [1, n_expert], groups
// that do not divide n_expert or more than 32 of them.
Status moe_route_rows(const GpuRouteConfig& c, const float* logits, int64_t logits_stride, int64_t n_rows,
                      const float* bias, int32_t* ids, float* weights, cudaStream_t stream);

}  // namespace strata::gpu
