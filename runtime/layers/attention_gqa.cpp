// Grouped-query attention over the KV cache. A prompt batch (a run of
// kMinRunTokens or more consecutive tokens of one sequence) is attended as
// matrix products per query head and chunk of tokens: scores = Q K^T and
// out = softmax(scores) V on oneDNN, with the sequence's keys and values
// gathered once per layer. Other tokens (decode) take one (token, head) at a
// time over the paged cache, as does everything under --prefill-gemm native.
#include "runtime/layers/attention_gqa.h"

#include <algorithm>

#include "cpu_kernels/dnnl_gemm.h"
#include "cpu_kernels/gemm_choice.h"
#include "cpu_kernels/softmax.h"
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

constexpr int64_t kMinRunTokens = kDnnlMinRows;
constexpr int64_t kChunkTokens = 64;

// Attention of tokens [r0, r1) (one sequence) as matrix products into o. A
// chunk oneDNN fails on is done one (token, head) at a time instead, so the
// output is complete either way.
void attend_run(const GqaConfig& c, uint32_t layer, const float* q, const TokenPlaces& places, const KvCache& cache,
                int64_t r0, int64_t r1, ComputeContext* ctx, float* o) {
  const int64_t H = c.n_head, Hkv = c.n_head_kv, dk = c.head_k, dv = c.head_v, group = H / Hkv;
  const uint32_t seq = uint32_t(places.seq[r0]);
  int64_t P = 0;
  for (int64_t t = r0; t < r1; ++t) P = std::max<int64_t>(P, int64_t(places.pos[t]) + 1);
  const int64_t kw = cache.k_width(), vw = cache.v_width();
  std::vector<float> keys(size_t(P * kw)), vals(size_t(P * vw));
  cache.get_k(layer, seq, P, keys.data());
  cache.get_v(layer, seq, P, vals.data());
  const int64_t n_chunks = (r1 - r0 + kChunkTokens - 1) / kChunkTokens;
  for_each_item(ctx, H * n_chunks, kChunkTokens * P * (dk + dv), kChunkTokens * P, [&](int64_t i, float* s) {
    const int64_t h = i % H, g = h / group;
    const int64_t ta = r0 + (i / H) * kChunkTokens, tb = std::min(r1, ta + kChunkTokens), m = tb - ta;
    int64_t n = 0;
    for (int64_t t = ta; t < tb; ++t) n = std::max<int64_t>(n, int64_t(places.pos[t]) + 1);
    float* out = o + (ta * H + h) * dv;
    bool ok = dnnl_matmul_f32(m, n, dk, q + (ta * H + h) * dk, H * dk, keys.data() + g * dk, 1, kw, s, n).is_ok();
    if (ok) {
      for (int64_t r = 0; r < m; ++r) {
        float* row = s + r * n;
        const int64_t n_kv = int64_t(places.pos[ta + r]) + 1;
        for (int64_t j = 0; j < n_kv; ++j) row[j] *= c.kq_scale;
        softmax_inplace(row, n_kv);
        std::fill(row + n_kv, row + n, 0.0f);
      }
      ok = dnnl_matmul_f32(m, dv, n, s, n, vals.data() + g * dv, vw, 1, out, H * dv).is_ok();
    }
    if (ok) return;
    for (int64_t t = ta; t < tb; ++t) {
      attention_head_paged(q + (t * H + h) * dk, cache, layer, seq, g * dk, g * dv, false, dk, dv,
                           int64_t(places.pos[t]) + 1, c.kq_scale, s, o + (t * H + h) * dv);
    }
  });
}

}  // namespace

void attention_gqa(const GqaWeights& w, const GqaConfig& c, uint32_t layer, const float* x,
                   const TokenPlaces& places, KvCache& cache, float* out) {
  const int64_t T = places.n_tokens, H = c.n_head, Hkv = c.n_head_kv, dk = c.head_k, dv = c.head_v;
  std::vector<float> q(size_t(T * H * dk)), k(size_t(T * Hkv * dk)), v(size_t(T * Hkv * dv));
  const Matrix* qkv[] = {&w.wq, &w.wk, &w.wv};
  float* const qkv_out[] = {q.data(), k.data(), v.data()};
  mul_shared_input(qkv, x, T, qkv_out);
  add_bias(q.data(), T, w.bq);
  add_bias(k.data(), T, w.bk);
  add_bias(v.data(), T, w.bv);
  if (!w.q_norm.empty()) rmsnorm_rows(q.data(), T * H, dk, dk, w.q_norm, c.rms_eps, q.data());
  if (!w.k_norm.empty()) rmsnorm_rows(k.data(), T * Hkv, dk, dk, w.k_norm, c.rms_eps, k.data());
  rope_rows(c.rope, places, q.data(), H * dk, 0, H, dk);
  rope_rows(c.rope, places, k.data(), Hkv * dk, 0, Hkv, dk);

  for (int64_t t = 0; t < T; ++t) {
    const uint32_t s = uint32_t(places.seq[t]);
    cache.put_k(layer, s, places.pos[t], k.data() + t * Hkv * dk);
    cache.put_v(layer, s, places.pos[t], v.data() + t * Hkv * dv);
  }

  // Heads h of a group share kv head h / (H / Hkv).
  const int64_t group = H / Hkv;
  std::vector<float> o(size_t(T * H * dv));
  const int64_t max_kv = T > 0 ? int64_t(*std::max_element(places.pos, places.pos + T)) + 1 : 1;
  // Runs of a prompt batch as matrix products; the other tokens listed.
  const bool blocked = w.wq.ctx && w.wq.ctx->kernels == CpuKernels::kFast && gemm_policy() != GemmPolicy::kNative &&
                       cache.v_width() > 0;
  std::vector<int64_t> single;
  for (int64_t r0 = 0; r0 < T;) {
    int64_t r1 = r0 + 1;
    while (r1 < T && places.seq[r1] == places.seq[r0]) ++r1;
    if (blocked && r1 - r0 >= kMinRunTokens) {
      attend_run(c, layer, q.data(), places, cache, r0, r1, w.wq.ctx, o.data());
    } else {
      for (int64_t t = r0; t < r1; ++t) single.push_back(t);
    }
    r0 = r1;
  }
  // Every (token, kv head) is independent: split over the pool.
  for_head_runs(w.wq.ctx, int64_t(single.size()), Hkv, group, max_kv * (dk + dv), max_kv,
                [&](int64_t i, int64_t g, int64_t h0, int64_t h1, float* scores) {
                  const int64_t t = single[size_t(i)];
                  attention_heads_paged(q.data() + (t * H + h0) * dk, dk, h1 - h0, cache, layer,
                                        uint32_t(places.seq[t]), g * dk, g * dv, false, dk, dv,
                                        int64_t(places.pos[t]) + 1, c.kq_scale, scores, o.data() + (t * H + h0) * dv,
                                        dv);
                });
  w.wo.mul(o.data(), T, out);
}

}  // namespace strata
