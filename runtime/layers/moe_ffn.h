// Mixture-of-experts FFN: router, expert selection (softmax or sigmoid
// scores, DeepSeek-V3's selection-only bias, group-limited top-k, weight
// normalization and scaling), routed experts through an ExpertExecutor, and
// the always-on shared expert(s) (qwen2moe's gated by a sigmoid).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "offload/expert_executor.h"
#include "runtime/layers/dense_ffn.h"
#include "runtime/layers/matrix.h"
#include "runtime/model/arch.h"

namespace strata {

// How a group of experts is scored for group-limited routing.
enum class GroupScore : uint8_t {
  kTop2Sum,  // sum of the group's two best scores (DeepSeek-V3 "noaux_tc")
  kMax,      // the group's best score (DeepSeek-V2 "group_limited_greedy")
};

struct MoeConfig {
  ExpertGating gating = ExpertGating::kSoftmax;  // scores = softmax or sigmoid of router logits
  int32_t n_expert = 0;
  int32_t n_used = 0;
  bool norm_w = false;      // divide the chosen weights by their sum
  float w_scale = 1.0f;     // then multiply them by this (routed_scaling_factor)
  int32_t n_groups = 0;     // > 1: keep only the n_group_used best groups
  int32_t n_group_used = 0;
  GroupScore group_score = GroupScore::kTop2Sum;
};

struct MoeWeights {
  Matrix router;                         // ffn_gate_inp {E, n_expert}
  std::vector<float> exp_probs_b;        // selection bias [n_expert]; empty: none
  ExpertLayer experts;                   // ffn_{gate,up,down}_exps
  std::optional<DenseFfnWeights> shared; // ffn_{gate,up,down}_shexp
  std::vector<float> shared_gate;        // qwen2moe ffn_gate_inp_shexp [E]; empty: ungated
};

// Routing of one row: from n_expert router logits (and the optional bias),
// the n_used chosen experts, best first, and their weights.
//   ids, weights: n_used entries;  scratch: 2 * n_expert floats.
// Ties go to the lower expert id, so routing is deterministic.
void moe_route(const MoeConfig& c, const float* logits, const float* bias, int32_t* ids, float* weights,
               float* scratch);

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
