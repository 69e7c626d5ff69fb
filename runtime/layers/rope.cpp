// RoPE parameters per model and batched rotation.
#include "runtime/layers/rope.h"

#include <vector>

namespace strata {

RopeParams rope_params_from(const HParams& hp, RopeStyle style, const float* freq_factors) {
  RopeParams p;
  p.n_dims = static_cast<int32_t>(hp.n_rot);
  p.style = style;
  p.freq_base = hp.rope_freq_base;
  p.freq_factors = freq_factors;
  p.n_ctx_orig = static_cast<int32_t>(hp.rope_scaling_orig_ctx ? hp.rope_scaling_orig_ctx : hp.n_ctx_train);
  const float factor = hp.rope_scaling_factor > 0.0f ? hp.rope_scaling_factor : 1.0f;
  if (hp.rope_scaling_type == "linear") {
    p.freq_scale = 1.0f / factor;
  } else if (hp.rope_scaling_type == "yarn") {
    p.freq_scale = 1.0f / factor;
    p.ext_factor = 1.0f;
  }
  return p;
}

void rope_rows(const RopeParams& p, const TokenPlaces& places, float* x, int64_t row_stride, int64_t offset,
               int64_t n_heads, int64_t head_stride) {
  std::vector<float> cs(static_cast<size_t>(p.n_dims));
  for (int64_t t = 0; t < places.n_tokens; ++t) {
    rope_cos_sin(p, places.pos[t], cs.data());
    rope_apply(p, cs.data(), x + t * row_stride + offset, n_heads, head_stride);
  }
}

}  // namespace strata
