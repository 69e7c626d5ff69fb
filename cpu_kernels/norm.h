// Normalizations over one row of floats.
#pragma once

#include <cstdint>

namespace strata {

// RMSNorm of one row: y[i] = x[i] / sqrt(mean(x^2) + eps) * (w ? w[i] : 1).
//   x, y: n floats (may be the same buffer); w: n floats or null.
// The sum of squares is accumulated in double, as ggml does, so long rows
// keep their precision.
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y);

}  // namespace strata
