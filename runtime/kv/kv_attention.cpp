// Block-by-block attention head over the paged KV cache.
#include "runtime/kv/kv_attention.h"

#include <algorithm>

#include "cpu_kernels/softmax.h"
#include "cpu_kernels/vec_f32.h"

namespace strata {

void attention_head_paged(const float* q, const KvCache& cache, uint32_t layer, uint32_t seq, int64_t k_off,
                          int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v, int64_t n_kv, float scale,
                          float* scores, float* out) {
  const VecF32Ops& ops = vec_f32_ops();
  const int64_t B = cache.block_size(), kw = cache.k_width();
  const int64_t vw = v_in_k ? kw : int64_t(cache.v_width());
  for (int64_t t0 = 0; t0 < n_kv; t0 += B) {
    const int64_t n = std::min(B, n_kv - t0);
    const float* k = cache.k(layer, seq, int32_t(t0)) + k_off;
    for (int64_t t = 0; t < n; ++t) scores[t0 + t] = scale * ops.dot(q, k + t * kw, d_k);
  }
  softmax_inplace(scores, n_kv);
  for (int64_t j = 0; j < d_v; ++j) out[j] = 0.0f;
  for (int64_t t0 = 0; t0 < n_kv; t0 += B) {
    const int64_t n = std::min(B, n_kv - t0);
    const float* v = (v_in_k ? cache.k(layer, seq, int32_t(t0)) : cache.v(layer, seq, int32_t(t0))) + v_off;
    for (int64_t t = 0; t < n; ++t) ops.axpy(scores[t0 + t], v + t * vw, out, d_v);
  }
}

}  // namespace strata
