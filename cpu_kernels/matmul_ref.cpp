// Scalar matrix products that dequantize weight rows on the fly. The plain
// correct version; SIMD and integer-dot (Q8 activation) paths come later and
// are tested against this one.
#include "cpu_kernels/matmul_ref.h"

#include <vector>

#include "cpu_kernels/quant_ref.h"
#include "runtime/base/check.h"

namespace strata {

bool matmul_supports(DType t) { return can_dequantize(t); }

float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  for (; i < n; ++i) acc[i & 7] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void matmul_ref(DType w_type, const void* w, int64_t n_in, int64_t n_out, const float* x, int64_t x_stride,
                int64_t n_rows, float* y, int64_t y_stride) {
  STRATA_DCHECK(matmul_supports(w_type));
  STRATA_DCHECK(x_stride >= n_in && y_stride >= n_out);
  const uint64_t row_bytes = dtype_row_bytes(w_type, static_cast<uint64_t>(n_in)).value_or(0);
  STRATA_DCHECK(row_bytes > 0 || n_in == 0);
  const auto* wb = static_cast<const uint8_t*>(w);
  // f32 rows are read in place when aligned (GGUF aligns tensor data to 32
  // bytes by default); otherwise they are copied like any other type.
  const bool in_place = w_type == DType::kF32 && reinterpret_cast<uintptr_t>(w) % alignof(float) == 0;
  thread_local std::vector<float> row;
  if (!in_place && row.size() < static_cast<size_t>(n_in)) row.resize(static_cast<size_t>(n_in));
  for (int64_t o = 0; o < n_out; ++o) {
    const uint8_t* src = wb + static_cast<uint64_t>(o) * row_bytes;
    const float* wr;
    if (in_place) {
      wr = reinterpret_cast<const float*>(src);
    } else {
      // The type was validated when the model was loaded; a failure here is a bug.
      Status s = dequantize_row_ref(w_type, src, row.data(), n_in);
      STRATA_DCHECK(s.is_ok());
      (void)s;
      wr = row.data();
    }
    for (int64_t r = 0; r < n_rows; ++r) y[r * y_stride + o] = dot_f32(wr, x + r * x_stride, n_in);
  }
}

}  // namespace strata
