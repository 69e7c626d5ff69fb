// Grouped-query attention (llama, qwen2, qwen3 and their MoE variants):
// q/k/v projections with optional bias (qwen2) and optional per-head q/k
// RMSNorm before RoPE (qwen3), a K/V cache, and the output projection.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu_kernels/rope.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/layers/matrix.h"

namespace strata {

struct GqaWeights {
  Matrix wq, wk, wv, wo;                 // {E, H*dk}, {E, Hkv*dk}, {E, Hkv*dv}, {H*dv, E}
  std::vector<float> bq, bk, bv;         // qkv bias; empty: none
  std::vector<float> q_norm, k_norm;     // per-head RMSNorm weights (dk); empty: none
};

struct GqaConfig {
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_k = 0;    // dk
  int32_t head_v = 0;    // dv
  float kq_scale = 1.0f; // softmax(kq_scale * q.k)
  float rms_eps = 1e-6f;
  RopeParams rope;
};

// Floats per position this layer stores in the cache (key row, value row).
inline uint32_t gqa_k_width(const GqaConfig& c) { return uint32_t(c.n_head_kv) * uint32_t(c.head_k); }
inline uint32_t gqa_v_width(const GqaConfig& c) { return uint32_t(c.n_head_kv) * uint32_t(c.head_v); }

// out = attention(x) for the batch's tokens.
//   x: n_tokens x E floats (already normed);  out: n_tokens x E, overwritten.
// Writes each token's K/V row at (layer, seq, pos) of `cache`, then attends
// over positions 0..pos of its own sequence. Preconditions: the cache holds
// every earlier position of each sequence and is reserved past the batch.
void attention_gqa(const GqaWeights& w, const GqaConfig& c, uint32_t layer, const float* x,
                   const TokenPlaces& places, KvCache& cache, float* out);

}  // namespace strata
