// Block-by-block attention heads over the paged KV cache: each block's scores
// for every head, then each block's values into every head's output.
#include "runtime/kv/kv_attention.h"

#include <algorithm>

#include "cpu_kernels/softmax.h"
#include "cpu_kernels/vec_f32.h"

namespace strata {

void attention_heads_paged(const float* q, int64_t q_stride, int64_t n_q, const KvCache& cache, uint32_t layer,
                           uint32_t seq, int64_t k_off, int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v,
                           int64_t n_kv, float scale, float* scores, float* out, int64_t out_stride) {
  const VecF32Ops& ops = vec_f32_ops();
  const int64_t B = cache.block_size(), kw = cache.k_width();
  const int64_t vw = v_in_k ? kw : int64_t(cache.v_width());
  for (int64_t t0 = 0; t0 < n_kv; t0 += B) {
    const float* k = cache.k(layer, seq, int32_t(t0)) + k_off;
    ops.dots(q, q_stride, n_q, k, kw, std::min(B, n_kv - t0), d_k, scale, scores + t0, n_kv);
  }
  for (int64_t i = 0; i < n_q; ++i) {
    softmax_inplace(scores + i * n_kv, n_kv);
    std::fill(out + i * out_stride, out + i * out_stride + d_v, 0.0f);
  }
  for (int64_t t0 = 0; t0 < n_kv; t0 += B) {
    const float* v = (v_in_k ? cache.k(layer, seq, int32_t(t0)) : cache.v(layer, seq, int32_t(t0))) + v_off;
    ops.axpys(scores + t0, n_kv, n_q, v, vw, std::min(B, n_kv - t0), d_v, out, out_stride);
  }
}

void attention_head_paged(const float* q, const KvCache& cache, uint32_t layer, uint32_t seq, int64_t k_off,
                          int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v, int64_t n_kv, float scale,
                          float* scores, float* out) {
  attention_heads_paged(q, d_k, 1, cache, layer, seq, k_off, v_off, v_in_k, d_k, d_v, n_kv, scale, scores, out, d_v);
}

}  // namespace strata
