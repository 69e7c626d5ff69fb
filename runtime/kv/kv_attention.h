// Attention of one query head over a sequence's rows in the block-paged KV
// cache: the same arithmetic as attention_head_ref (cpu_kernels), reading
// each block's contiguous run of rows in place instead of one contiguous
// array, so no sequence's history is ever copied.
#pragma once

#include <cstdint>

#include "runtime/kv/kv_cache.h"

namespace strata {

// out[j] = sum_t p_t * v_t[j],  p = softmax_t(scale * q . k_t),  t < n_kv, where
//   k_t = cache.k(layer, seq, t) + k_off   (d_k floats),
//   v_t = cache.v(layer, seq, t) + v_off   (d_v floats), or, with v_in_k,
//         cache.k(layer, seq, t) + v_off   (MLA reads values from the latent key row).
//   scores: n_kv floats of scratch;  out: d_v floats, overwritten.
// Preconditions: 1 <= n_kv <= reserved positions of seq; out does not overlap
// q or scores. Scores, softmax and the weighted sum run in position order, so
// the result does not depend on the block size.
void attention_head_paged(const float* q, const KvCache& cache, uint32_t layer, uint32_t seq, int64_t k_off,
                          int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v, int64_t n_kv, float scale,
                          float* scores, float* out);

}  // namespace strata
