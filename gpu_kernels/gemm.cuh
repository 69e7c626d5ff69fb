// Prefill GEMM on the GPU: Y = X W^T for a prompt-sized batch of rows with
// GGUF-typed weights, by dequantizing the weights tile by tile to bf16 and
// multiplying on the tensor cores through cuBLAS (bf16 in, f32 accumulate
// and out). Host launcher with an explicit stream; usable from C++.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata::gpu {

// Scratch bytes gemm_bf16 needs to process the weights `tile_rows` output
// rows at a time (plus the bf16 copy of X).
size_t gemm_scratch_bytes(int64_t n_in, int64_t n_rows, int64_t tile_rows);

// y[r*y_stride + o] = sum_i W[o][i] * x[r*x_stride + i], r < n_rows, o < n_out.
//   w: n_out rows of n_in elements of `type` (gpu_supports_weight_type), device.
//   scratch: at least gemm_scratch_bytes(n_in, n_rows, 64) bytes; the larger
//            it is, the larger the weight tiles (fewer cuBLAS calls).
//   cublas: a handle; its stream is set to `stream` for the call.
// X and the weights are rounded to bf16 (relative error ~2^-9 per element);
// use gemv for a few rows, which keeps X in f32.
Status gemm_bf16(cublasHandle_t cublas, DType type, const void* w, int64_t n_in, int64_t n_out, const float* x,
                 int64_t x_stride, int64_t n_rows, float* y, int64_t y_stride, void* scratch, size_t scratch_bytes,
                 cudaStream_t stream);

}  // namespace strata::gpu
