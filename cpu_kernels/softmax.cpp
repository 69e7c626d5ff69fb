// Numerically stable softmax (max subtracted before exp), written so the
// compiler vectorizes every loop: the max as an integer max of order-keeping
// bit patterns, exp as a polynomial with no library call, and the sum in eight
// double lanes. Built with clones for AVX2 and AVX-512 beside the baseline;
// nothing is contracted to FMA (CMakeLists.txt), so all of them give the
// same bits.
#include "cpu_kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// exp(x) for x <= 0 within about 2 ulp; 0 below -87.3 (where 2^n would leave
// the normal range), which includes -inf. x = n ln2 + r with |r| <= ln2 / 2,
// ln2 in two parts so n ln2 is exact, and exp(r) = 1 + r + r^2 p(r) with a
// degree-5 minimax p.
inline float exp_nonpositive(float x) {
  const float xc = std::max(x, -87.3f);
  const float t = xc * 1.44269504088896341f + 12582912.0f;  // round to nearest: 1.5 * 2^23
  const float n = t - 12582912.0f;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 0]
  float scale;
  std::memcpy(&scale, &bits, 4);
  return x < -87.3f ? 0.0f : y * scale;
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
