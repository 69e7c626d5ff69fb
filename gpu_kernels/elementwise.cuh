// Element-wise ops on the GPU: SiLU-gated product, residual adds (optionally
// sigmoid-gated), the weighted sum of expert outputs, strided row copies.
// Host launchers with an explicit stream; all buffers are device f32.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/status.h"

namespace strata::gpu {

// out[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up, i < n.
// out may alias gate or up.
Status swiglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);

// y[r][i] += a[r][i] (+ b[r][i] when b is not null), r < n_rows, i < n:
// the residual add, and the combine of routed and shared expert outputs.
// Rows are `stride` floats apart in y, a and b.
Status add_rows(float* y, const float* a, const float* b, int64_t n_rows, int64_t n, int64_t stride,
                cudaStream_t stream);

// y[r][i] += sigmoid(gate[r]) * a[r][i]: qwen2moe's gated shared expert
// (gate[r] = the row's gate logit, from a GEMV with one output).
Status add_rows_gated(float* y, const float* a, const float* gate, int64_t n_rows, int64_t n, cudaStream_t stream);

// out[r][i] (+)= sum_k weights[r*n_used + k] * src[(r*n_used + k)][i] over the k
// with valid[r*n_used + k] >= 0 (valid null: all), in k order.
//   src: n_rows*n_used rows of n floats;  out: n_rows rows of n floats.
// accumulate false overwrites out. The MoE weighted sum of expert outputs.
Status moe_weighted_sum(const float* src, const float* weights, const int32_t* valid, int64_t n_rows, int32_t n_used,
                        int64_t n, float* out, bool accumulate, cudaStream_t stream);

// dst[r*dst_stride + c] = src[r*src_stride + c], r < n_rows, c < n_cols.
Status copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t n_rows,
                 int64_t n_cols, cudaStream_t stream);

// out[i] = table[ids[i]] for i < n, or -1 when ids[i] is outside [0, n_table):
// expert ids to GPU slots (table[e] = -1 for experts not on the GPU).
Status map_ids(const int32_t* ids, const int32_t* table, int32_t n_table, int64_t n, int32_t* out,
               cudaStream_t stream);

}  // namespace strata::gpu
