// Scaled dot-product attention of one query head over cached keys/values,
// scalar. Causality is the caller's: it passes only the n_kv visible entries.
#pragma once

#include <cstdint>

namespace strata {

// out[j] = sum_t p_t * v_t[j],  p = softmax_t(scale * q . k_t),  t < n_kv.
//   q: d_k floats.
//   k_t = k + t*k_stride: d_k floats;  v_t = v + t*v_stride: d_v floats
//         (K and V may live in the same rows, as MLA's latent cache does).
//   scores: n_kv floats of scratch;  out: d_v floats, overwritten.
// Preconditions: n_kv >= 1; out does not overlap q, k, v, scores.
void attention_head_ref(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                        int64_t d_k, int64_t d_v, int64_t n_kv, float scale, float* scores, float* out);

}  // namespace strata
