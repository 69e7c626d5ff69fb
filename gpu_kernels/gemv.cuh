// Quantized GEMV on the GPU: y = W x for a few activation rows, decoding the
// GGUF weight blocks on the fly (no dequantized copy), f32 accumulation.
// Decode-time products (attention projections, shared experts, dense FFN,
// router, output head), MLA's per-head absorbed products and the GPU-resident
// experts of a MoE layer. Host launcher with an explicit stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata::gpu {

// Weight types gemv decodes: f32, f16, bf16, q8_0, q4_k, q5_k, q6_k.
bool gemv_supports(DType t);

// y[r*y_stride + o] = sum_i W_m[o][i] * x[(r / x_row_div)*x_stride + i]
// for r < n_rows, o < n_out, where W_m is matrix m of a stack:
//   m = mat_ids[r] when mat_ids is given (device int32, n_rows entries; a
//       negative id skips row r and leaves its y untouched: MoE slots whose
//       expert is not on the GPU),
//   m = r % n_mat otherwise (n_mat 1: one matrix for every row).
// Layout: matrix m starts at w + m * mat_bytes (0: n_out * row bytes); row o
// of it at + o * dtype_row_bytes(type, n_in), GGUF block layout.
// Preconditions (checked, invalid_argument): n_in a multiple of the block
// size (and of 8 for f16/bf16, 4 for f32); x 16-byte aligned with x_stride a
// multiple of 4; w (and mat_bytes) 16-byte aligned for f32, f16, bf16, q4_k,
// q5_k, 2-byte for q8_0 and q6_k (cudaMalloc gives 256); x and y distinct.
// Rows that share a matrix are computed up to 4 at a time, so the weights
// are read once per 4 rows; use gemm_bf16 for prompt-sized batches.
struct GemvArgs {
  DType type = DType::kF32;
  const void* w = nullptr;
  int64_t n_in = 0;
  int64_t n_out = 0;
  int64_t n_mat = 1;
  uint64_t mat_bytes = 0;
  const int32_t* mat_ids = nullptr;
  int32_t x_row_div = 1;
  const float* x = nullptr;
  int64_t x_stride = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  int64_t n_rows = 0;
};

Status gemv(const GemvArgs& a, cudaStream_t stream);

}  // namespace strata::gpu
