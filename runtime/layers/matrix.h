// A weight matrix as the layers see it: a typed view into the model file
// (ggml ne = {n_in, n_out[, n_mat]}), and the context its products run in
// (threads and kernels; none: scalar reference on the caller). The model may
// add a repacked copy of the same rows for the fast kernels (`packed`).
#pragma once

#include <cstdint>
#include <span>

#include "runtime/base/dtype.h"
#include "runtime/layers/compute_context.h"

namespace strata {

struct Matrix {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n_in = 0;    // row length (ne[0])
  int64_t n_out = 0;   // rows per matrix (ne[1])
  int64_t n_mat = 1;   // stacked matrices (ne[2]), e.g. MLA's per-head attn_k_b
  uint64_t row_bytes = 0;
  ComputeContext* ctx = nullptr;  // null: matmul_ref on the calling thread
  // Rows [0, n_packed) in the layout of cpu_kernels/qgemm_packed.h (n_mat ==
  // 1), used by the fast kernels; the rest (fewer than a 16-row group, e.g.
  // of a 50257-token head) come from `data`. null: none.
  const void* packed = nullptr;
  int64_t n_packed = 0;

  bool empty() const { return data == nullptr; }

  // y[r] = W x[r] for n_rows contiguous rows (x: n_in floats each, y: n_out floats each).
  void mul(const float* x, int64_t n_rows, float* y) const { mul_strided(x, n_in, n_rows, y, n_out); }
  // The same with row strides, for rows that sit inside wider rows (per-head slices).
  // With a context: activations prepared once (rows split over the threads
  // for a prompt batch), then the output rows split over the threads; the
  // result of a row never depends on the thread count or on the other rows.
  void mul_strided(const float* x, int64_t x_stride, int64_t n_rows, float* y, int64_t y_stride) const;
  // Matrix i of a stack of n_mat.
  Matrix slice(int64_t i) const {
    Matrix m = *this;
    m.data = static_cast<const uint8_t*>(data) + static_cast<uint64_t>(i) * static_cast<uint64_t>(n_out) * row_bytes;
    m.n_mat = 1;
    m.packed = nullptr;
    m.n_packed = 0;
    return m;
  }
};

// y[i] = W_i x for matrices that read the same rows x (attention's q, k and
// v): the activations prepared once per activation format and one split of
// all their output rows over the pool, where a product each would wake the
// threads once each and leave them idle at the end of every small matrix.
// Every output has the bits Matrix::mul gives it. Matrices on oneDNN (a
// prompt batch gemm_choice sends there) or on the reference kernels, or more
// than three, run one product each. All share n_in and the context.
void mul_shared_input(std::span<const Matrix* const> ms, const float* x, int64_t n_rows, std::span<float* const> ys);

}  // namespace strata
