// Numerically stable softmax (max subtracted before exp), written so the
// compiler vectorizes every loop: the max as an integer max of order-keeping
// bit patterns, exp as a polynomial (exp_poly.h), and the sum in eight
// double lanes. Built with clones for AVX2 and AVX-512 beside the baseline;
// nothing is contracted to FMA (CMakeLists.txt), so all of them give the
// same bits.
#include "cpu_kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu_kernels/exp_poly.h"

namespace strata {
namespace {

// A float's bits as an int32 whose signed order is the float order (NaN aside).
inline int32_t order_key(float v) {
  int32_t b;
  std::memcpy(&b, &v, 4);
  return b ^ ((b >> 31) & 0x7fffffff);
}

inline float from_order_key(int32_t k) {
  const int32_t b = k ^ ((k >> 31) & 0x7fffffff);
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}

}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default"))) void softmax_inplace(float* x, int64_t n) {
  int32_t kmax = order_key(-INFINITY);
  for (int64_t i = 0; i < n; ++i) kmax = std::max(kmax, order_key(x[i]));
  const float max = from_order_key(kmax);
  for (int64_t i = 0; i < n; ++i) x[i] = exp_nonpositive(x[i] - max);
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) lane[j] += x[i + j];
  }
  for (; i < n; ++i) lane[i % 8] += x[i];
  const double sum = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t k = 0; k < n; ++k) x[k] *= inv;
}

}  // namespace strata
