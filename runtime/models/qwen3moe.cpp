// qwen3moe: qwen3 attention; softmax routing with the top-k weights
// renormalized to sum to one; no shared expert.
#include "runtime/models/arch_config.h"

namespace strata {

ArchConfig qwen3moe_config(const HParams& hp) {
  ArchConfig c = gqa_arch_config(hp, RopeStyle::kNeox);
  c.qk_norm = true;
  c.moe.norm_w = true;
  return c;
}

}  // namespace strata
