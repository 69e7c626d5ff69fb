// Element-wise activations: SiLU, sigmoid and the SiLU-gated product (SwiGLU).
#pragma once

#include <cmath>
#include <cstdint>

namespace strata {

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// out[i] = silu(gate[i]) * up[i] for i < n; out may alias gate or up.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

}  // namespace strata
