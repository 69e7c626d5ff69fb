// RMSNorm over rows: the pre-attention/pre-FFN norms, the final norm, qwen3's
// per-head q/k norms and MLA's latent norms.
#pragma once

#include <cstdint>
#include <vector>

namespace strata {

// y row r = rms_norm(x row r) * w for r < n_rows; rows of n floats, `stride`
// floats apart in both x and y (x and y may be the same buffer).
// w: n floats (an empty vector: no weight).
void rmsnorm_rows(const float* x, int64_t n_rows, int64_t n, int64_t stride, const std::vector<float>& w, float eps,
                  float* y);

}  // namespace strata
