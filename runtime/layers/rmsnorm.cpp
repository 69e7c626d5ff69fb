// Row-wise RMSNorm over the norm kernel.
#include "runtime/layers/rmsnorm.h"

#include "cpu_kernels/norm.h"

namespace strata {

void rmsnorm_rows(const float* x, int64_t n_rows, int64_t n, int64_t stride, const std::vector<float>& w, float eps,
                  float* y) {
  const float* wp = w.empty() ? nullptr : w.data();
  for (int64_t r = 0; r < n_rows; ++r) rms_norm(x + r * stride, wp, n, eps, y + r * stride);
}

}  // namespace strata
