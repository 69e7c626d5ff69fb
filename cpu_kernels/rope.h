// Rotary position embedding (RoPE) as ggml computes it: normal (adjacent
// pairs) and NeoX (split halves) layouts, linear scaling, YaRN, and per-pair
// frequency factors.
#pragma once

#include <cstdint>

namespace strata {

enum class RopeStyle : uint8_t {
  kNormal,  // rotates (x[2i], x[2i+1]): llama (q/k rows permuted by the converter), deepseek2
  kNeox,    // rotates (x[i], x[i + n_dims/2]): qwen2, qwen2moe, qwen3, qwen3moe
};

struct RopeParams {
  int32_t n_dims = 0;  // rotated dims per head (even); dims past it pass through
  RopeStyle style = RopeStyle::kNormal;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;    // 1 / scaling factor (linear and YaRN); 1 = none
  float ext_factor = 0.0f;    // YaRN ramp weight: 1 with YaRN, 0 without
  float attn_factor = 1.0f;   // multiplies cos and sin; with ext_factor != 0 they are
                              // also multiplied by 1 + 0.1 ln(1/freq_scale) (YaRN's mscale)
  float beta_fast = 32.0f;    // YaRN correction range, in rotations
  float beta_slow = 1.0f;
  int32_t n_ctx_orig = 0;     // context the model was trained at (YaRN corr dims)
  const float* freq_factors = nullptr;  // n_dims/2 divisors of each pair's frequency, or null
};

// YaRN's correction range [low, high] in pair units, clamped to [0, n_dims-1].
void rope_yarn_corr_dims(int32_t n_dims, int32_t n_ctx_orig, float freq_base, float beta_fast, float beta_slow,
                         float dims[2]);

// cos and sin of every rotated pair at position `pos`:
//   cs[2*i] = cos(theta_i) * m, cs[2*i+1] = sin(theta_i) * m for i < n_dims/2,
// where theta_i = pos * freq_base^(-2i/n_dims) / freq_factors[i], YaRN-mixed
// with its interpolated value, and m the magnitude scale described above.
void rope_cos_sin(const RopeParams& p, int32_t pos, float* cs);

// Rotates the first n_dims of each of n_heads heads in place; head h starts at
// x + h * head_stride. cs comes from rope_cos_sin for this token's position.
void rope_apply(const RopeParams& p, const float* cs, float* x, int64_t n_heads, int64_t head_stride);

}  // namespace strata
