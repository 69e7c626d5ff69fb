// MoE routing of one row (see moe_route.h).
#include "cpu_kernels/moe_route.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_kernels/activation.h"
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

void moe_route_row(const MoeRouteParams& c, const float* logits, const float* bias, int32_t* ids, float* weights,
                   float* scratch) {
  const int32_t n = c.n_expert;
  float* probs = scratch;
  float* sel = scratch + n;
  for (int32_t i = 0; i < n; ++i) probs[i] = logits[i];
  if (c.sigmoid) {
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
      gscore[size_t(g)] = !c.group_top2 || per < 2 ? a : a + b;
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

}  // namespace strata
