// Mixture-of-experts FFN: router, expert selection (softmax or sigmoid
// scores, DeepSeek-V3's selection-only bias, group-limited top-k, weight
// normalization and scaling), routed experts through an ExpertExecutor, and
// the always-on shared expert(s) (qwen2moe's gated by a sigmoid).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "cpu_kernels/moe_route.h"
#include "offload/expert_executor.h"
#include "runtime/layers/dense_ffn.h"
#include "runtime/layers/matrix.h"
#include "runtime/model/arch.h"

namespace strata {

// The MoE layers' routing: the CPU kernels' parameters (moe_route_row),
// which the devices' route op takes as well.
using MoeConfig = MoeRouteParams;

struct MoeWeights {
  Matrix router;                         // ffn_gate_inp {E, n_expert}
  std::vector<float> exp_probs_b;        // selection bias [n_expert]; empty: none
  ExpertLayer experts;                   // ffn_{gate,up,down}_exps
  std::optional<DenseFfnWeights> shared; // ffn_{gate,up,down}_shexp
  std::vector<float> shared_gate;        // qwen2moe ffn_gate_inp_shexp [E]; empty: ungated
};

// Where a MoE layer's time went (seconds, added to), for profiles.
struct MoeTiming {
  double experts_s = 0;  // the executor's run (routed experts)
  double shared_s = 0;   // shared expert(s)
};

// out[r] = routed experts' weighted sum + shared expert, for n_rows rows of E
// floats. out is overwritten and must not overlap x. timing: null, or where
// to add the time of the routed and shared experts.
Status moe_ffn(const MoeWeights& w, const MoeConfig& c, const float* x, int64_t n_rows, ExpertExecutor& executor,
               float* out, MoeTiming* timing = nullptr);

}  // namespace strata
