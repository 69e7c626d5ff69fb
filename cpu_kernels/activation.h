// Element-wise activations: SiLU, sigmoid and the SiLU-gated product (SwiGLU).
#pragma once

#include <cmath>
#include <cstdint>

#include "cpu_kernels/exp_poly.h"

namespace strata {

// x * sigmoid(x) through e = e^-|x| (exp_poly.h), so loops over it vectorize:
// sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) below; -0 below
// kExpPolyMin.
inline float silu(float x) {
  const float e = exp_nonpositive(-std::fabs(x));
  const float s = 1.0f / (1.0f + e);
  // Every value computed, then selected: no branch on the sign, and loops
  // over it vectorize. NaN stays NaN.
  const float xe = x * e;
  const float y = (x >= 0.0f ? x : xe) * s;
  return x < kExpPolyMin ? -0.0f : y;  // e = 0 there, and x e would be NaN at -inf
}
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// out[i] = silu(gate[i]) * up[i] for i < n; out may alias gate or up.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

}  // namespace strata
