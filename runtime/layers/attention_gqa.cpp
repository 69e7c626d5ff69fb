// Grouped-query attention over the f32 KV cache.
#include "runtime/layers/attention_gqa.h"

#include <algorithm>

#include "runtime/kv/kv_attention.h"
#include "runtime/layers/compute_context.h"
#include "runtime/layers/rmsnorm.h"
#include "runtime/layers/rope.h"

namespace strata {
namespace {

void add_bias(float* y, int64_t n_rows, const std::vector<float>& b) {
  if (b.empty()) return;
  const int64_t n = static_cast<int64_t>(b.size());
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += b[i];
  }
}

}  // namespace

void attention_gqa(const GqaWeights& w, const GqaConfig& c, uint32_t layer, const float* x,
                   const TokenPlaces& places, KvCache& cache, float* out) {
  const int64_t T = places.n_tokens, H = c.n_head, Hkv = c.n_head_kv, dk = c.head_k, dv = c.head_v;
  std::vector<float> q(size_t(T * H * dk)), k(size_t(T * Hkv * dk)), v(size_t(T * Hkv * dv));
  w.wq.mul(x, T, q.data());
  w.wk.mul(x, T, k.data());
  w.wv.mul(x, T, v.data());
  add_bias(q.data(), T, w.bq);
  add_bias(k.data(), T, w.bk);
  add_bias(v.data(), T, w.bv);
  if (!w.q_norm.empty()) rmsnorm_rows(q.data(), T * H, dk, dk, w.q_norm, c.rms_eps, q.data());
  if (!w.k_norm.empty()) rmsnorm_rows(k.data(), T * Hkv, dk, dk, w.k_norm, c.rms_eps, k.data());
  rope_rows(c.rope, places, q.data(), H * dk, 0, H, dk);
  rope_rows(c.rope, places, k.data(), Hkv * dk, 0, Hkv, dk);

  for (int64_t t = 0; t < T; ++t) {
    const uint32_t s = uint32_t(places.seq[t]);
    std::copy(k.data() + t * Hkv * dk, k.data() + (t + 1) * Hkv * dk, cache.k(layer, s, places.pos[t]));
    std::copy(v.data() + t * Hkv * dv, v.data() + (t + 1) * Hkv * dv, cache.v(layer, s, places.pos[t]));
  }

  // Heads h of a group share kv head h / (H / Hkv).
  const int64_t group = H / Hkv;
  std::vector<float> o(size_t(T * H * dv));
  const int64_t max_kv = T > 0 ? int64_t(*std::max_element(places.pos, places.pos + T)) + 1 : 1;
  // Every (token, head) is independent: split over the pool.
  for_each_item(w.wq.ctx, T * H, max_kv * (dk + dv), max_kv, [&](int64_t i, float* scores) {
    const int64_t t = i / H, h = i % H, g = h / group;
    const int64_t n_kv = int64_t(places.pos[t]) + 1;
    attention_head_paged(q.data() + i * dk, cache, layer, uint32_t(places.seq[t]), g * dk, g * dv, false, dk, dv, n_kv,
                         c.kq_scale, scores, o.data() + i * dv);
  });
  w.wo.mul(o.data(), T, out);
}

}  // namespace strata
