// llama (dense, and Mixtral-style with experts): the converter permutes the
// q/k rows so that the normal (adjacent-pair) RoPE applies. Mixtral's router
// is a softmax over the chosen experts, i.e. softmax over all experts
// renormalized over the top-k.
#include "runtime/models/arch_config.h"

namespace strata {

ArchConfig llama_config(const HParams& hp) {
  ArchConfig c = gqa_arch_config(hp, RopeStyle::kNormal);
  c.moe.norm_w = true;
  return c;
}

}  // namespace strata
