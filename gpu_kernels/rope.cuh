// Rotary position embedding on the GPU with cpu_kernels/rope.h's semantics:
// normal (adjacent pairs) and NeoX (split halves) layouts, linear scaling,
// YaRN and per-pair frequency factors. Host launcher with an explicit stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/status.h"

namespace strata::gpu {

// The fields of cpu_kernels' RopeParams (gpu_kernels does not depend on
// cpu_kernels; offload converts one into the other).
struct GpuRopeParams {
  int32_t n_dims = 0;          // rotated dims per head (even); the rest pass through
  bool neox = false;           // true: rotate (x[i], x[i + n_dims/2]); false: (x[2i], x[2i+1])
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  float ext_factor = 0.0f;     // YaRN ramp weight (1 with YaRN)
  float attn_factor = 1.0f;
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int32_t n_ctx_orig = 0;
  const float* freq_factors = nullptr;  // device, n_dims/2 floats, or null
};

// For each token t < n_tokens: rotate the first n_dims of n_heads heads that
// start at x + t*row_stride + offset, head_stride floats apart, by the angles
// of position pos[t] (device int32).
// The angles are computed as the CPU does (the same iterated product of the
// frequency ratio, the same YaRN ramp, operations in the same order without
// FMA contraction); only cosf/sinf may differ from the host's libm by an ulp.
// Errors: n_dims odd or < 2, head_stride < n_dims, negative counts.
Status rope_rows(const GpuRopeParams& p, const int32_t* pos, float* x, int64_t n_tokens, int64_t row_stride,
                 int64_t offset, int64_t n_heads, int64_t head_stride, cudaStream_t stream);

}  // namespace strata::gpu
