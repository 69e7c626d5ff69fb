// What differs between architectures, as data the shared layers consume:
// attention kind and its parameters (RoPE style, scales), and MoE routing
// rules. One configure function per architecture, each in
// runtime/models/<arch>.cpp; everything else is shared.
#pragma once

#include <cstdint>

#include "runtime/layers/attention_gqa.h"
#include "runtime/layers/attention_mla.h"
#include "runtime/layers/moe_ffn.h"
#include "runtime/model/arch.h"

namespace strata {

enum class AttnKind : uint8_t { kGqa, kMla };

struct ArchConfig {
  AttnKind attn = AttnKind::kGqa;
  bool qk_norm = false;  // GQA: per-head RMSNorm of q and k before RoPE (qwen3)
  GqaConfig gqa;  // when attn == kGqa
  MlaConfig mla;  // when attn == kMla
  MoeConfig moe;  // MoE layers' routing (unused by dense models)
};

// The configuration of hp.arch.
ArchConfig arch_config(const HParams& hp);

// Shared starting point of the GQA architectures: heads from hp, kq_scale
// 1/sqrt(head_k), RoPE from hp in `style`, softmax routing without
// normalization (each architecture then states what it changes).
ArchConfig gqa_arch_config(const HParams& hp, RopeStyle style);

ArchConfig llama_config(const HParams& hp);
ArchConfig qwen2_config(const HParams& hp);
ArchConfig qwen3_config(const HParams& hp);
ArchConfig qwen2moe_config(const HParams& hp);
ArchConfig qwen3moe_config(const HParams& hp);
ArchConfig deepseek2_config(const HParams& hp);

}  // namespace strata
