// Matrix products against GGUF-typed weights (y = W x over a batch of
// activation rows), scalar: each weight row is dequantized once per call.
#pragma once

#include <cstdint>

#include "runtime/base/dtype.h"

namespace strata {

// True for the weight types matmul_ref reads: every type dequantize_row_ref
// decodes (f32, f16, bf16, legacy quants, k-quants, i-quants, ...).
bool matmul_supports(DType t);

// Dot product of two float vectors of n elements, summed in 8 independent
// lanes (so the compiler can vectorize it) and then pairwise.
float dot_f32(const float* a, const float* b, int64_t n);

// y[r*y_stride + o] = sum_i W[o][i] * x[r*x_stride + i]   for r < n_rows, o < n_out.
//   w: n_out rows of n_in elements of type w_type as GGUF stores them (ggml
//      ne = {n_in, n_out}); row o starts at o * dtype_row_bytes(w_type, n_in).
//   x: n_rows rows of n_in floats, x_stride >= n_in floats apart.
//   y: n_rows rows of n_out floats, y_stride >= n_out floats apart; overwritten.
// Preconditions (debug-checked): matmul_supports(w_type); n_in a multiple of
// the type's block size; x and y do not overlap. A row is dequantized once and
// dotted with every x row, so a batch of n_rows reads W once. The result of
// row r does not depend on the other rows of the batch (bitwise).
void matmul_ref(DType w_type, const void* w, int64_t n_in, int64_t n_out, const float* x, int64_t x_stride,
                int64_t n_rows, float* y, int64_t y_stride);

}  // namespace strata
