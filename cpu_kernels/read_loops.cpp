#include "cpu_kernels/read_loops.h"

#include <immintrin.h>

#include <algorithm>

#include "cpu_kernels/qgemm_internal.h"

namespace strata {
namespace {

// Two lines per 128 bytes, 4 KiB ahead, with the qgemm kernels' locality hint.
constexpr size_t kAhead = 4096;
template <bool kPrefetch>
inline void prefetch_128(const uint64_t* p) {
  if constexpr (kPrefetch) {
    __builtin_prefetch(reinterpret_cast<const char*>(p) + kAhead, 0, qgemm_detail::kPrefetchLocality);
    __builtin_prefetch(reinterpret_cast<const char*>(p) + kAhead + 64, 0, qgemm_detail::kPrefetchLocality);
  }
}

template <bool kPrefetch>
uint64_t sum_sse2(const uint64_t* p, uint64_t n) {
  __m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
  for (uint64_t i = 0; i < n; i += 16) {
    prefetch_128<kPrefetch>(p + i);
    for (uint64_t j = i; j < i + 16; j += 8) {
      a = _mm_add_epi64(a, _mm_load_si128(reinterpret_cast<const __m128i*>(p + j)));
      b = _mm_add_epi64(b, _mm_load_si128(reinterpret_cast<const __m128i*>(p + j + 2)));
      c = _mm_add_epi64(c, _mm_load_si128(reinterpret_cast<const __m128i*>(p + j + 4)));
      d = _mm_add_epi64(d, _mm_load_si128(reinterpret_cast<const __m128i*>(p + j + 6)));
    }
  }
  alignas(16) uint64_t o[2];
  _mm_store_si128(reinterpret_cast<__m128i*>(o), _mm_add_epi64(_mm_add_epi64(a, b), _mm_add_epi64(c, d)));
  return o[0] + o[1];
}

template <bool kPrefetch>
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t* p, uint64_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (uint64_t i = 0; i < n; i += 16) {
    prefetch_128<kPrefetch>(p + i);
    a = _mm256_add_epi64(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    c = _mm256_add_epi64(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    d = _mm256_add_epi64(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  alignas(32) uint64_t o[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(o), _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  return (o[0] + o[1]) + (o[2] + o[3]);
}

template <bool kPrefetch>
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint64_t* p, uint64_t n) {
  __m512i a = _mm512_setzero_si512(), b = a;
  for (uint64_t i = 0; i < n; i += 16) {
    prefetch_128<kPrefetch>(p + i);
    a = _mm512_add_epi64(a, _mm512_load_si512(p + i));
    b = _mm512_add_epi64(b, _mm512_load_si512(p + i + 8));
  }
  alignas(64) uint64_t o[8];
  _mm512_store_si512(o, _mm512_add_epi64(a, b));
  return ((o[0] + o[1]) + (o[2] + o[3])) + ((o[4] + o[5]) + (o[6] + o[7]));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

std::vector<ReadLoop> read_loops() {
  std::vector<ReadLoop> loops;
  if (__builtin_cpu_supports("avx512f")) {
    loops.push_back({"avx512", sum_avx512<false>});
    loops.push_back({"avx512+prefetch", sum_avx512<true>});
  }
  if (__builtin_cpu_supports("avx2")) {
    loops.push_back({"avx2", sum_avx2<false>});
    loops.push_back({"avx2+prefetch", sum_avx2<true>});
  } else {
    loops.push_back({"sse2", sum_sse2<false>});
    loops.push_back({"sse2+prefetch", sum_sse2<true>});
  }
  return loops;
}

const ReadLoop& read_loop_of_pass(const std::vector<ReadLoop>& loops, int pass, int n_untimed) {
  return loops[static_cast<size_t>(std::max(0, pass - n_untimed)) % loops.size()];
}

BestReadLoop best_read_loop(const std::vector<double>& gbps, size_t n_loops) {
  BestReadLoop best;
  for (size_t l = 0; l < n_loops; ++l) {
    std::vector<double> mine;
    for (size_t i = l; i < gbps.size(); i += n_loops) mine.push_back(gbps[i]);
    if (mine.empty()) continue;
    const double m = median(mine);
    if (best.gbps.empty() || m > best.median_gbps) best = {l, std::move(mine), m};
  }
  return best;
}

}  // namespace strata
