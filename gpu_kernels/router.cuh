// MoE routing on the GPU: router logits -> expert scores (softmax or
// sigmoid), the selection-only bias, group-limited top-k, weight
// normalization and scaling, with runtime/layers/moe_ffn.cpp's moe_route
// semantics. Host launcher with an explicit stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/status.h"

namespace strata::gpu {

// The fields of runtime's MoeConfig (gpu_kernels sees no model code).
struct GpuRouteConfig {
  bool sigmoid = false;        // scores: sigmoid of the logits; false: softmax over the experts
  int32_t n_expert = 0;
  int32_t n_used = 0;
  bool norm_w = false;         // divide the chosen weights by their sum (clamped to 2^-14)
  float w_scale = 1.0f;        // then multiply by this
  int32_t n_groups = 0;        // > 1 and n_group_used < n_groups: keep only the best groups
  int32_t n_group_used = 0;
  bool group_top2 = true;      // group score: sum of its two best (true) or its best (false)
};

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
