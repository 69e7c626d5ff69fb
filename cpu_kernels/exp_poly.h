// exp for arguments <= 0 from arithmetic alone, so loops that call it
// vectorize (a libm call per element does not): softmax after its max is
// subtracted, and SiLU through e^-|x|.
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu_kernels/nearest_int.h"

namespace strata {

// Below this exp_nonpositive() is 0 (e^x < 2^-126, where 2^n would leave the
// normal range).
inline constexpr float kExpPolyMin = -87.3f;

// exp(x) for x <= 0 within about 2 ulp; 0 below kExpPolyMin, which includes
// -inf; NaN stays NaN. x = n ln2 + r with |r| <= ln2 / 2, ln2 in two parts so
// n ln2 is exact, and exp(r) = 1 + r + r^2 p(r) with a degree-5 polynomial p.
// Callers build without FMA contraction, so every compiled copy rounds alike.
inline float exp_nonpositive(float x) {
  const float xc = x < kExpPolyMin ? kExpPolyMin : x;  // NaN passes through
  const int ni = nearest_int(xc * 1.44269504088896341f);
  const float n = static_cast<float>(ni);
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  const int32_t bits = (ni + 127) << 23;  // 2^n, n in [-126, 0]
  float scale;
  std::memcpy(&scale, &bits, 4);
  const float v = y * scale;
  return x < kExpPolyMin ? 0.0f : v;  // a select of computed values, which vectorizes
}

}  // namespace strata
