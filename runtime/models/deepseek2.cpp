// deepseek2 (DeepSeek-V2/V2-Lite/V3/R1, Kimi-K2): MLA attention with the
// normal RoPE style on the decoupled rope dims, YaRN, and DeepSeek routing.
//
// YaRN as the reference modeling code (and llama.cpp) applies it here: the
// rotation itself is not magnitude-scaled (YaRN's 1 + 0.1 ln(s) is cancelled
// through attn_factor), and the softmax temperature carries
// mscale^2 with mscale = 1 + yarn_log_multiplier * ln(s). The GGUF key stores
// 0.1 * mscale_all_dim, so mscale = 1 + 0.1 mscale_all_dim ln(s) as in
// DeepSeek's yarn_get_mscale. The score scale uses the uncompressed query
// width (nope + rope), not the latent width.
#include <cmath>

#include "runtime/layers/rope.h"
#include "runtime/models/arch_config.h"

namespace strata {

ArchConfig deepseek2_config(const HParams& hp) {
  ArchConfig c;
  c.attn = AttnKind::kMla;
  MlaConfig& m = c.mla;
  m.n_head = int32_t(hp.n_head);
  m.kv_lora = int32_t(hp.kv_lora_rank);
  m.n_rope = int32_t(hp.n_rot);
  m.n_nope = int32_t(hp.n_embd_head_k_mla - hp.n_rot);
  m.v_head = int32_t(hp.n_embd_head_v_mla);
  m.rms_eps = hp.rms_eps;
  m.rope = rope_params_from(hp, RopeStyle::kNormal, nullptr);
  float mscale = 1.0f;
  if (m.rope.ext_factor != 0.0f) {
    const float ln_s = std::log(1.0f / m.rope.freq_scale);
    m.rope.attn_factor = 1.0f / (1.0f + 0.1f * ln_s);
    mscale = 1.0f + hp.rope_yarn_log_mul * ln_s;
  }
  m.kq_scale = mscale * mscale / std::sqrt(float(hp.n_embd_head_k_mla));

  // Files without expert_gating_func predate sigmoid gating (V2): softmax.
  MoeConfig& r = c.moe;
  r.sigmoid = hp.expert_gating == ExpertGating::kSigmoid;
  r.n_expert = int32_t(hp.n_expert);
  r.n_used = int32_t(hp.n_expert_used);
  r.norm_w = hp.expert_weights_norm;
  r.w_scale = hp.expert_weights_scale;
  r.n_groups = int32_t(hp.n_expert_groups);
  r.n_group_used = int32_t(hp.n_group_used);
  // V3 (sigmoid, "noaux_tc") scores a group by its two best experts; V2
  // (softmax, "group_limited_greedy") by its best one.
  r.group_top2 = r.sigmoid;
  return c;
}

}  // namespace strata
