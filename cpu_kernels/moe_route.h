// MoE routing of one row, as the reference implementations of each family
// define it: scores are softmax or sigmoid of the router logits; a per-expert
// bias (DeepSeek-V3) shifts only which experts are chosen, never their
// weights; group-limited routing first keeps the best n_group_used groups.
// Used by the model's MoE layer and by the CPU device's route op.
#pragma once

#include <cstdint>

namespace strata {

struct MoeRouteParams {
  bool sigmoid = false;     // scores: sigmoid (else softmax) of the logits
  int32_t n_expert = 0;
  int32_t n_used = 0;
  bool norm_w = false;      // divide the chosen weights by their sum
  float w_scale = 1.0f;     // then multiply them by this (routed_scaling_factor)
  int32_t n_groups = 0;     // > 1: keep only the n_group_used best groups
  int32_t n_group_used = 0;
  bool group_top2 = true;   // a group scores the sum of its two best (DeepSeek-V3), else its best (V2)
};

// From n_expert router logits (and the optional bias), the n_used chosen
// experts, best first, and their weights.
//   ids, weights: n_used entries;  scratch: 2 * n_expert floats.
// Ties go to the lower expert id, so routing is deterministic.
void moe_route_row(const MoeRouteParams& c, const float* logits, const float* bias, int32_t* ids, float* weights,
                   float* scratch);

}  // namespace strata
