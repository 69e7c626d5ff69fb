// exp for arguments <= 0 from arithmetic alone, so loops that call it
// vectorize (a libm call per element does not): softmax after its max is
// subtracted, and SiLU through e^-|x|.
#pragma once

#include <cstdint>
#include <cstring>

namespace strata {

// exp(x) for x <= 0 within about 2 ulp; 0 below -87.3 (where 2^n would leave
// the normal range), which includes -inf; NaN stays NaN. x = n ln2 + r with
// |r| <= ln2 / 2, ln2 in two parts so n ln2 is exact, and exp(r) = 1 + r +
// r^2 p(r) with a degree-5 polynomial p. Callers build without FMA contraction,
// so every compiled copy rounds alike.
inline float exp_nonpositive(float x) {
  const float xc = x < -87.3f ? -87.3f : x;  // NaN passes through
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
  // n as an integer from t's low mantissa bits: no float-to-int conversion,
  // which a NaN would make undefined.
  int32_t tb;
  std::memcpy(&tb, &t, 4);
  const int32_t bits = ((tb & 0x007fffff) - 0x00400000 + 127) << 23;  // 2^n, n in [-126, 0]
  float scale;
  std::memcpy(&scale, &bits, 4);
  const float v = y * scale;
  return x < -87.3f ? 0.0f : v;  // a select of computed values, which vectorizes
}

}  // namespace strata
