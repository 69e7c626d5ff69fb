// qwen2: NeoX-style RoPE and biases on q/k/v (bound when the file has them).
#include "runtime/models/arch_config.h"

namespace strata {

ArchConfig qwen2_config(const HParams& hp) { return gqa_arch_config(hp, RopeStyle::kNeox); }

}  // namespace strata
