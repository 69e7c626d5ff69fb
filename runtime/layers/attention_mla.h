// Multi-head latent attention (deepseek2: DeepSeek-V2/V3/R1, Kimi-K2) in the
// split-tensor layout. The cache keeps, per position, only the normed latent
// (kv_lora) and the roped shared key (n_rope) - not per-head K and V. Queries
// are absorbed: q_nope goes through attn_k_b into latent space, attention runs
// as one latent "kv head" shared by all heads, and attn_v_b lifts each head's
// latent output to v_head dims.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu_kernels/rope.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/layers/matrix.h"

namespace strata {

struct MlaWeights {
  Matrix wq;                        // {E, H*(nope+rope)} when there is no q-LoRA (V2-Lite)
  Matrix wq_a;                      // {E, q_lora} with q-LoRA
  std::vector<float> q_a_norm;      // q_lora
  Matrix wq_b;                      // {q_lora, H*(nope+rope)}
  Matrix wkv_a_mqa;                 // {E, kv_lora + rope}
  std::vector<float> kv_a_norm;     // kv_lora
  Matrix wk_b;                      // {nope, kv_lora, H}: per head, latent <- q_nope
  Matrix wv_b;                      // {kv_lora, v_head, H}: per head, v <- latent
  Matrix wo;                        // {H*v_head, E}
};

struct MlaConfig {
  int32_t n_head = 0;
  int32_t kv_lora = 0;
  int32_t n_nope = 0;   // qk_nope_head_dim
  int32_t n_rope = 0;   // qk_rope_head_dim (= rope n_dims)
  int32_t v_head = 0;
  float kq_scale = 1.0f;
  float rms_eps = 1e-6f;
  RopeParams rope;
};

inline uint32_t mla_k_width(const MlaConfig& c) { return uint32_t(c.kv_lora + c.n_rope); }

// out = attention(x) for the batch's tokens; x: n_tokens x E (normed), out:
// n_tokens x E, overwritten. Writes [latent | k_pe] rows at (layer, seq, pos)
// and attends over positions 0..pos of each token's sequence.
void attention_mla(const MlaWeights& w, const MlaConfig& c, uint32_t layer, const float* x,
                   const TokenPlaces& places, KvCache& cache, float* out);

}  // namespace strata
