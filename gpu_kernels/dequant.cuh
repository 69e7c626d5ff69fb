// Dequantization on the GPU: embedding lookup (gather rows of a GGUF-typed
// table as f32) and whole rows to f32 or bf16 (the GEMM path's tiles).
// Host launchers taking an explicit stream; usable from C++.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata::gpu {

// The types the GPU kernels decode: f32, f16, bf16, q8_0, q4_k, q5_k, q6_k.
bool gpu_supports_weight_type(DType t);

// out[t][i] = table[ids[t]][i] for t < n_tokens, i < n_embd.
//   table: n_vocab rows of n_embd elements of `type` as GGUF stores them
//          (row r at r * dtype_row_bytes(type, n_embd)), device memory.
//   ids: n_tokens device int32; an id outside [0, n_vocab) yields a row of
//        NaN rather than a read outside the table (callers validate tokens
//        on the host; the NaN makes a missed check visible).
//   out: n_tokens rows, out_stride >= n_embd floats apart.
// Errors: unsupported type, n_embd not a multiple of the block size.
// Decoded values equal cpu_kernels' dequantize_row_ref bit for bit.
Status embed_rows(DType type, const void* table, int64_t n_embd, int64_t n_vocab, const int32_t* ids,
                  int64_t n_tokens, float* out, int64_t out_stride, cudaStream_t stream);

// out[r][i] = W[row0 + r][i] for r < n_rows: rows of n_in elements of `type`,
// decoded to f32 (bit-exact with dequantize_row_ref) or to bf16 (that value
// rounded to nearest even). out rows are out_stride elements apart.
Status dequantize_rows(DType type, const void* w, int64_t n_in, int64_t row0, int64_t n_rows, float* out,
                       int64_t out_stride, cudaStream_t stream);
Status dequantize_rows_bf16(DType type, const void* w, int64_t n_in, int64_t row0, int64_t n_rows, void* out,
                            int64_t out_stride, cudaStream_t stream);

// out[i] = bf16(x[r][c]) for r < n_rows, c < n_cols, packed n_cols per row:
// activations for the bf16 GEMM.
Status f32_to_bf16_rows(const float* x, int64_t x_stride, int64_t n_rows, int64_t n_cols, void* out,
                        cudaStream_t stream);

}  // namespace strata::gpu
