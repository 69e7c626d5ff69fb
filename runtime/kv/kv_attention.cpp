// Block-by-block attention heads over the paged KV cache (f32 or f16 rows):
// each block's scores for every head, then each block's values into every
// head's output.
#include "runtime/kv/kv_attention.h"

#include <algorithm>
#include <cstdint>

#include "cpu_kernels/softmax.h"
#include "cpu_kernels/vec_f32.h"
#include "runtime/base/check.h"

namespace strata {
namespace {

// Asks for the lines of n rows of d entries (stride entries apart) before
// they are used: the block-by-block loop computes between its loads and, on
// its own, kept too few misses in flight. One thread, 32 query heads over 4
// kv heads of 128, 8 layers, f32 rows, asking one block ahead, per token and
// layer: 4,096 positions from DRAM 2,238 -> 1,749 us, 512 positions 152 ->
// 91 us, 64 (in cache) 8.3 -> 8.9 us.
// Inlined on purpose: GCC counts a prefetch as no side effect, so it took a
// function of prefetches alone for "const" and deleted the calls to it.
template <class T>
[[gnu::always_inline]] inline void prefetch_rows(const T* p, int64_t stride, int64_t n, int64_t d) {
  for (int64_t r = 0; r < n; ++r) {
    const char* row = reinterpret_cast<const char*>(p + r * stride);
    const int64_t skew = int64_t(reinterpret_cast<uintptr_t>(row) % 64);  // the first line starts before the row
    for (int64_t b = -skew; b < d * int64_t(sizeof(T)); b += 64) __builtin_prefetch(row + b);
  }
}

// attention_heads_paged on rows of T (float or uint16_t), with the ops for them.
template <class T, class Dots, class Axpys>
void heads_paged(Dots dots, Axpys axpys, const float* q, int64_t q_stride, int64_t n_q, const KvCache& cache,
                 uint32_t layer, uint32_t seq, int64_t k_off, int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v,
                 int64_t n_kv, float scale, float* scores, float* out, int64_t out_stride) {
  const int64_t B = cache.block_size(), ks = cache.k_stride(), vs = v_in_k ? ks : cache.v_stride();
  // Each head's entries lie within one part of the cache's rows.
  STRATA_CHECK(ks > 0 && vs > 0 && k_off % ks + d_k <= ks && v_off % vs + d_v <= vs);
  const auto k_rows = [&](int64_t t0) { return cache.k<T>(layer, seq, int32_t(t0), k_off); };
  const auto v_rows = [&](int64_t t0) {
    return v_in_k ? cache.k<T>(layer, seq, int32_t(t0), v_off) : cache.v<T>(layer, seq, int32_t(t0), v_off);
  };
  for (int64_t t0 = 0; t0 < n_kv; t0 += B) {
    if (t0 + B < n_kv) prefetch_rows(k_rows(t0 + B), ks, std::min(B, n_kv - t0 - B), d_k);
    dots(q, q_stride, n_q, k_rows(t0), ks, std::min(B, n_kv - t0), d_k, scale, scores + t0, n_kv);
  }
  for (int64_t i = 0; i < n_q; ++i) {
    softmax_inplace(scores + i * n_kv, n_kv);
    std::fill(out + i * out_stride, out + i * out_stride + d_v, 0.0f);
  }
  for (int64_t t0 = 0; t0 < n_kv; t0 += B) {
    if (t0 + B < n_kv) prefetch_rows(v_rows(t0 + B), vs, std::min(B, n_kv - t0 - B), d_v);
    axpys(scores + t0, n_kv, n_q, v_rows(t0), vs, std::min(B, n_kv - t0), d_v, out, out_stride);
  }
}

}  // namespace

void attention_heads_paged(const float* q, int64_t q_stride, int64_t n_q, const KvCache& cache, uint32_t layer,
                           uint32_t seq, int64_t k_off, int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v,
                           int64_t n_kv, float scale, float* scores, float* out, int64_t out_stride) {
  const VecF32Ops& ops = vec_f32_ops();
  if (cache.type() == KvType::kF16) {
    heads_paged<uint16_t>(ops.dots_f16, ops.axpys_f16, q, q_stride, n_q, cache, layer, seq, k_off, v_off, v_in_k, d_k,
                          d_v, n_kv, scale, scores, out, out_stride);
  } else {
    heads_paged<float>(ops.dots, ops.axpys, q, q_stride, n_q, cache, layer, seq, k_off, v_off, v_in_k, d_k, d_v, n_kv,
                       scale, scores, out, out_stride);
  }
}

void attention_head_paged(const float* q, const KvCache& cache, uint32_t layer, uint32_t seq, int64_t k_off,
                          int64_t v_off, bool v_in_k, int64_t d_k, int64_t d_v, int64_t n_kv, float scale,
                          float* scores, float* out) {
  attention_heads_paged(q, d_k, 1, cache, layer, seq, k_off, v_off, v_in_k, d_k, d_v, n_kv, scale, scores, out, d_v);
}

}  // namespace strata
