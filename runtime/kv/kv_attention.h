// Attention of query heads over a sequence's rows in the block-paged KV
// cache: the formula of attention_head_ref (cpu_kernels) on the vector ops of
// the active CPU path (vec_f32.h), reading each block's contiguous run of
// rows in place instead of one contiguous array, so no sequence's history is
// ever copied.
#pragma once

#include <cstdint>

#include "runtime/kv/kv_cache.h"

namespace strata {

// out[j] = sum_t p_t * v_t[j],  p = softmax_t(scale * q . k_t),  t < n_kv, where
//   k_t = cache.k(layer, seq, t, k_off)   (d_k entries),
//   v_t = cache.v(layer, seq, t, v_off)   (d_v entries), or, with v_in_k,
//         cache.k(layer, seq, t, v_off)   (MLA reads values from the latent key row);
//   each within one head's part of the rows (an always-on check).
//   scores: n_kv floats of scratch;  out: d_v floats, overwritten.
// An f16 cache's entries are widened to f32 (vec_f32.h's _f16 ops): the
// output bits are those of an f32 cache holding the widened rows.
// Preconditions: 1 <= n_kv <= reserved positions of seq; out does not overlap
// q or scores. Scores, softmax and the weighted sum run in position order, so
// the result does not depend on the block size.
void attention_head_paged(const float* q, const KvCache& cache, uint32_t layer, uint32_t seq, int64_t k_off,
                          int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v, int64_t n_kv, float scale,
                          float* scores, float* out);

// attention_head_paged for n_q query heads that share the keys and values
// (the heads of one GQA group, or MLA's heads over the one latent row): query
// i at q + i * q_stride, its output at out + i * out_stride. Each position's
// key and value rows are read once for all n_q heads, so a long history
// streams through the caches once instead of n_q times; every head's
// arithmetic, and so its output bits, is that of attention_head_paged.
//   scores: n_q * n_kv floats of scratch.
void attention_heads_paged(const float* q, int64_t q_stride, int64_t n_q, const KvCache& cache, uint32_t layer,
                           uint32_t seq, int64_t k_off, int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v,
                           int64_t n_kv, float scale, float* scores, float* out, int64_t out_stride);

}  // namespace strata
