// MoE FFN. Routing follows the reference implementations of each family:
// scores are softmax or sigmoid of the router logits; a per-expert bias
// (DeepSeek-V3) shifts only which experts are chosen, never their weights;
// group-limited routing first keeps the best n_group_used groups.
#include "runtime/layers/moe_ffn.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/softmax.h"

namespace strata {
namespace {

// Index of the largest of x[0..n) not yet taken; ties to the lower index.
int32_t best_untaken(const float* x, int32_t n, const std::vector<bool>& taken) {
  int32_t best = -1;
  for (int32_t i = 0; i < n; ++i) {
    if (taken[size_t(i)]) continue;
    if (best < 0 || x[i] > x[best]) best = i;
  }
  return best;
}

}  // namespace

void moe_route(const MoeConfig& c, const float* logits, const float* bias, int32_t* ids, float* weights,
               float* scratch) {
  const int32_t n = c.n_expert;
  float* probs = scratch;
  float* sel = scratch + n;
  for (int32_t i = 0; i < n; ++i) probs[i] = logits[i];
  if (c.gating == ExpertGating::kSigmoid) {
    for (int32_t i = 0; i < n; ++i) probs[i] = sigmoid(probs[i]);
  } else {
    softmax_inplace(probs, n);
  }
  for (int32_t i = 0; i < n; ++i) sel[i] = bias ? probs[i] + bias[i] : probs[i];

  if (c.n_groups > 1 && c.n_group_used < c.n_groups) {
    const int32_t per = n / c.n_groups;
    std::vector<float> gscore(size_t(c.n_groups));
    for (int32_t g = 0; g < c.n_groups; ++g) {
      const float* s = sel + g * per;
      float a = -INFINITY, b = -INFINITY;  // best and second best
      for (int32_t i = 0; i < per; ++i) {
        if (s[i] > a) {
          b = a;
          a = s[i];
        } else if (s[i] > b) {
          b = s[i];
        }
      }
      gscore[size_t(g)] = c.group_score == GroupScore::kMax || per < 2 ? a : a + b;
    }
    std::vector<bool> keep(size_t(c.n_groups), false);
    for (int32_t k = 0; k < c.n_group_used; ++k) keep[size_t(best_untaken(gscore.data(), c.n_groups, keep))] = true;
    for (int32_t g = 0; g < c.n_groups; ++g) {
      if (keep[size_t(g)]) continue;
      for (int32_t i = 0; i < per; ++i) sel[g * per + i] = -INFINITY;
    }
  }

  std::vector<bool> taken(size_t(n), false);
  float sum = 0.0f;
  for (int32_t k = 0; k < c.n_used; ++k) {
    const int32_t e = best_untaken(sel, n, taken);
    taken[size_t(e)] = true;
    ids[k] = e;
    weights[k] = probs[e];
    sum += probs[e];
  }
  if (c.norm_w) {
    // Guard against a zero sum as llama.cpp does (clamp to the smallest normal f16).
    sum = std::max(sum, 6.103515625e-5f);
    for (int32_t k = 0; k < c.n_used; ++k) weights[k] /= sum;
  }
  for (int32_t k = 0; k < c.n_used; ++k) weights[k] *= c.w_scale;
}

Status moe_ffn(const MoeWeights& w, const MoeConfig& c, const float* x, int64_t n_rows, ExpertExecutor& executor,
               float* out, MoeTiming* timing) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  const int64_t E = w.router.n_in, n = c.n_expert, k = c.n_used;
  std::vector<float> logits(size_t(n_rows * n)), scratch(size_t(2 * n)), weights(size_t(n_rows * k));
  std::vector<int32_t> ids(size_t(n_rows * k));
  w.router.mul(x, n_rows, logits.data());
  const float* bias = w.exp_probs_b.empty() ? nullptr : w.exp_probs_b.data();
  for (int64_t r = 0; r < n_rows; ++r) {
    moe_route(c, logits.data() + r * n, bias, ids.data() + r * k, weights.data() + r * k, scratch.data());
  }
  ExpertRouting routing;
  routing.x = x;
  routing.n_rows = n_rows;
  routing.n_used = c.n_used;
  routing.ids = ids.data();
  routing.weights = weights.data();
  auto t0 = Clock::now();
  STRATA_RETURN_IF_ERROR(executor.run(w.experts, routing, out));
  if (timing) timing->experts_s += since(t0);

  if (w.shared) {
    t0 = Clock::now();
    std::vector<float> sh(size_t(n_rows * E));
    dense_ffn(*w.shared, x, n_rows, sh.data());
    for (int64_t r = 0; r < n_rows; ++r) {
      const float g = w.shared_gate.empty() ? 1.0f : sigmoid(dot_f32(w.shared_gate.data(), x + r * E, E));
      for (int64_t i = 0; i < E; ++i) out[r * E + i] += g * sh[size_t(r * E + i)];
    }
    if (timing) timing->shared_s += since(t0);
  }
  return Status::ok();
}

}  // namespace strata
