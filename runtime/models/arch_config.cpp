// Dispatch from the architecture to its configuration, and the GQA defaults.
#include "runtime/models/arch_config.h"

#include <cmath>

#include "runtime/layers/rope.h"

namespace strata {

ArchConfig gqa_arch_config(const HParams& hp, RopeStyle style) {
  ArchConfig c;
  c.attn = AttnKind::kGqa;
  c.gqa.n_head = int32_t(hp.n_head);
  c.gqa.n_head_kv = int32_t(hp.n_head_kv);
  c.gqa.head_k = int32_t(hp.n_embd_head_k);
  c.gqa.head_v = int32_t(hp.n_embd_head_v);
  c.gqa.kq_scale = 1.0f / std::sqrt(float(hp.n_embd_head_k));
  c.gqa.rms_eps = hp.rms_eps;
  c.gqa.rope = rope_params_from(hp, style, nullptr);
  c.moe.sigmoid = false;
  c.moe.n_expert = int32_t(hp.n_expert);
  c.moe.n_used = int32_t(hp.n_expert_used);
  return c;
}

ArchConfig arch_config(const HParams& hp) {
  switch (hp.arch) {
    case Arch::kLlama: return llama_config(hp);
    case Arch::kQwen2: return qwen2_config(hp);
    case Arch::kQwen3: return qwen3_config(hp);
    case Arch::kQwen2Moe: return qwen2moe_config(hp);
    case Arch::kQwen3Moe: return qwen3moe_config(hp);
    case Arch::kDeepseek2: return deepseek2_config(hp);
  }
  return llama_config(hp);
}

}  // namespace strata
