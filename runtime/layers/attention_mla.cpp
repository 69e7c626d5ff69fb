// MLA, absorbed form, for prefill and decode alike: per token and head the
// score is q_nope.(W_kb latent) + q_pe.k_pe = (W_kb^T q_nope).latent + q_pe.k_pe,
// so keys never leave latent space; values likewise are W_vb (sum_t p_t latent_t).
#include "runtime/layers/attention_mla.h"

#include <algorithm>

#include "runtime/kv/kv_attention.h"
#include "runtime/layers/compute_context.h"
#include "runtime/layers/rmsnorm.h"
#include "runtime/layers/rope.h"

namespace strata {

void attention_mla(const MlaWeights& w, const MlaConfig& c, uint32_t layer, const float* x,
                   const TokenPlaces& places, KvCache& cache, float* out) {
  const int64_t T = places.n_tokens, H = c.n_head, L = c.kv_lora, R = c.n_rope, N = c.n_nope, V = c.v_head;
  const int64_t qk = N + R, kw = L + R;

  // The products of x (q's or its low-rank a, and kv's a) in one split over the pool.
  std::vector<float> q(size_t(T * H * qk)), kv(size_t(T * kw));
  const bool q_lora = !w.wq_a.empty();
  std::vector<float> q_low(q_lora ? size_t(T * w.wq_a.n_out) : 0);
  const Matrix* of_x[] = {q_lora ? &w.wq_a : &w.wq, &w.wkv_a_mqa};
  float* const of_x_out[] = {q_lora ? q_low.data() : q.data(), kv.data()};
  mul_shared_input(of_x, x, T, of_x_out);
  if (q_lora) {
    rmsnorm_rows(q_low.data(), T, w.wq_a.n_out, w.wq_a.n_out, w.q_a_norm, c.rms_eps, q_low.data());
    w.wq_b.mul(q_low.data(), T, q.data());
  }
  rmsnorm_rows(kv.data(), T, L, kw, w.kv_a_norm, c.rms_eps, kv.data());
  rope_rows(c.rope, places, kv.data(), kw, L, 1, R);
  rope_rows(c.rope, places, q.data(), H * qk, N, H, qk);
  for (int64_t t = 0; t < T; ++t) cache.put_k(layer, uint32_t(places.seq[t]), places.pos[t], kv.data() + t * kw);

  // Absorbed queries [T][H][L + R]: W_kb^T q_nope, then q_pe.
  std::vector<float> qa(size_t(T * H * kw));
  for (int64_t h = 0; h < H; ++h) {
    w.wk_b.slice(h).mul_strided(q.data() + h * qk, H * qk, T, qa.data() + h * kw, H * kw);
    for (int64_t t = 0; t < T; ++t) {
      const float* pe = q.data() + (t * H + h) * qk + N;
      std::copy(pe, pe + R, qa.data() + (t * H + h) * kw + L);
    }
  }

  std::vector<float> ol(size_t(T * H * L));
  const int64_t max_kv = T > 0 ? int64_t(*std::max_element(places.pos, places.pos + T)) + 1 : 1;
  // Every token is independent, and its heads share the latent rows: split over the pool.
  for_head_runs(w.wkv_a_mqa.ctx, T, 1, H, max_kv * (kw + L), max_kv,
                [&](int64_t t, int64_t, int64_t h0, int64_t h1, float* scores) {
                  attention_heads_paged(qa.data() + (t * H + h0) * kw, kw, h1 - h0, cache, layer,
                                        uint32_t(places.seq[t]), 0, 0, true, kw, L, int64_t(places.pos[t]) + 1,
                                        c.kq_scale, scores, ol.data() + (t * H + h0) * L, L);
                });

  std::vector<float> o(size_t(T * H * V));
  for (int64_t h = 0; h < H; ++h) w.wv_b.slice(h).mul_strided(ol.data() + h * L, H * L, T, o.data() + h * V, H * V);
  w.wo.mul(o.data(), T, out);
}

}  // namespace strata
