// RoPE with YaRN. The YaRN formulas (ramp between interpolated and
// extrapolated frequencies over a correction range, magnitude scale
// 1 + 0.1 ln(s)) are those of Peng et al. 2023 in the form ggml evaluates them,
// so files behave as they do under llama.cpp.
#include "cpu_kernels/rope.h"

#include <algorithm>
#include <cmath>

namespace strata {
namespace {

// The dimension at which a frequency makes `n_rot` rotations over n_ctx_orig positions.
float corr_dim(int32_t n_dims, int32_t n_ctx_orig, float n_rot, float base) {
  return static_cast<float>(n_dims) * std::log(static_cast<float>(n_ctx_orig) / (n_rot * 2.0f * static_cast<float>(M_PI))) /
         (2.0f * std::log(base));
}

// 1 below the range (keep the extrapolated frequency), 0 above it.
float yarn_ramp(float low, float high, int64_t i0) {
  const float y = (static_cast<float>(i0 / 2) - low) / std::max(0.001f, high - low);
  return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

}  // namespace

void rope_yarn_corr_dims(int32_t n_dims, int32_t n_ctx_orig, float freq_base, float beta_fast, float beta_slow,
                         float dims[2]) {
  const float start = std::floor(corr_dim(n_dims, n_ctx_orig, beta_fast, freq_base));
  const float end = std::ceil(corr_dim(n_dims, n_ctx_orig, beta_slow, freq_base));
  dims[0] = std::max(0.0f, start);
  dims[1] = std::min(static_cast<float>(n_dims - 1), end);
}

void rope_cos_sin(const RopeParams& p, int32_t pos, float* cs) {
  float corr[2] = {0.0f, 0.0f};
  float mscale = p.attn_factor;
  if (p.ext_factor != 0.0f) {
    rope_yarn_corr_dims(p.n_dims, p.n_ctx_orig, p.freq_base, p.beta_fast, p.beta_slow, corr);
    mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
  }
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_dims));
  float theta = static_cast<float>(pos);
  for (int32_t i0 = 0; i0 < p.n_dims; i0 += 2) {
    const float ff = p.freq_factors ? p.freq_factors[i0 / 2] : 1.0f;
    const float theta_extrap = theta / ff;
    const float theta_interp = p.freq_scale * theta_extrap;
    float t = theta_interp;
    if (p.ext_factor != 0.0f) {
      const float mix = yarn_ramp(corr[0], corr[1], i0) * p.ext_factor;
      t = theta_interp * (1.0f - mix) + theta_extrap * mix;
    }
    cs[i0] = std::cos(t) * mscale;
    cs[i0 + 1] = std::sin(t) * mscale;
    theta *= theta_scale;
  }
}

void rope_apply(const RopeParams& p, const float* cs, float* x, int64_t n_heads, int64_t head_stride) {
  const int32_t half = p.n_dims / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_stride;
    for (int32_t i = 0; i < half; ++i) {
      const float c = cs[2 * i], s = cs[2 * i + 1];
      const int32_t a = p.style == RopeStyle::kNeox ? i : 2 * i;
      const int32_t b = p.style == RopeStyle::kNeox ? i + half : 2 * i + 1;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

}  // namespace strata
