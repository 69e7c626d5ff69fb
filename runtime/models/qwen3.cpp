// qwen3: NeoX-style RoPE; per-head RMSNorm of q and k before RoPE (the
// attn_q_norm/attn_k_norm tensors), no q/k/v bias.
#include "runtime/models/arch_config.h"

namespace strata {

ArchConfig qwen3_config(const HParams& hp) {
  ArchConfig c = gqa_arch_config(hp, RopeStyle::kNeox);
  c.qk_norm = true;
  return c;
}

}  // namespace strata
