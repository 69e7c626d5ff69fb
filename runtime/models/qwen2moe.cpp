// qwen2moe: qwen2 attention; experts chosen by softmax over all experts with
// the top-k weights NOT renormalized (norm_topk_prob false); one shared
// expert scaled by sigmoid(ffn_gate_inp_shexp . x).
#include "runtime/models/arch_config.h"

namespace strata {

ArchConfig qwen2moe_config(const HParams& hp) {
  ArchConfig c = gqa_arch_config(hp, RopeStyle::kNeox);
  c.moe.norm_w = false;
  return c;
}

}  // namespace strata
