// f32 dot and axpy, and the attention tiles built on them (dots, axpys) over
// f32 or f16 rows, with AVX2 + FMA + F16C (called only when the CPU and OS
// have them).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cpu_kernels/vec_f32.h"
#include "runtime/base/half.h"

namespace strata::vec_f32_detail {

float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

void axpy_avx2(float alpha, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

namespace {

// Lane l of the result is the sum of v[l]'s eight lanes, by the same tree for
// every l: pairs of 32-bit lanes, then of 64-bit halves of each 128-bit lane,
// then the two 128-bit lanes.
// Inlined on purpose, as in the AVX-512 tiles: a call would take the
// accumulators through memory.
[[gnu::always_inline]] inline __m256 sum_each(const __m256 v[8]) {
  __m256 a[4], b[2];
  for (int i = 0; i < 4; ++i) {
    a[i] = _mm256_add_ps(_mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  for (int i = 0; i < 2; ++i) {
    const __m256d x = _mm256_castps_pd(a[2 * i]), y = _mm256_castps_pd(a[2 * i + 1]);
    b[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)), _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
  }
  return _mm256_add_ps(_mm256_permute2f128_ps(b[0], b[1], 0x20), _mm256_permute2f128_ps(b[0], b[1], 0x31));
}

// Lanes [0, n) of a load or store mask (n <= 8).
__m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Eight entries of a row as floats; the _tail forms read the first n (< 8,
// `mask` its lanes) and give 0 in the others.
__m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
__m256 load8_tail(const float* p, int64_t, __m256i mask) { return _mm256_maskload_ps(p, mask); }
__m256 load8_tail(const uint16_t* p, int64_t n, __m256i) {
  uint16_t b[8] = {};
  std::memcpy(b, p, size_t(n) * sizeof(uint16_t));
  return load8(b);
}
float entry(float x) { return x; }
float entry(uint16_t x) { return f16_to_f32(x); }

// Tiles of 2 query rows by 4 key rows, one accumulator per pair over d; the
// rows past the ends repeat the last one and their sums are dropped.
template <class K>
void dots_t(const float* q, int64_t q_stride, int64_t n_q, const K* k, int64_t k_stride, int64_t n_k, int64_t d,
            float scale, float* s, int64_t s_stride) {
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256i tail = tail_mask(d % 8);
  for (int64_t i0 = 0; i0 < n_q; i0 += 2) {
    const float* qr[2];
    for (int h = 0; h < 2; ++h) qr[h] = q + std::min<int64_t>(i0 + h, n_q - 1) * q_stride;
    for (int64_t t0 = 0; t0 < n_k; t0 += 4) {
      const K* kr[4];
      for (int p = 0; p < 4; ++p) kr[p] = k + std::min<int64_t>(t0 + p, n_k - 1) * k_stride;
      __m256 acc[8];
      for (__m256& a : acc) a = _mm256_setzero_ps();
      // Eight floats of every row from j on, by `load` (whole, or the tail masked).
      const auto step = [&](int64_t j, auto load) {
        const __m256 q0 = load(qr[0] + j), q1 = load(qr[1] + j);
        for (int p = 0; p < 4; ++p) {
          const __m256 kv = load(kr[p] + j);
          acc[p] = _mm256_fmadd_ps(q0, kv, acc[p]);
          acc[4 + p] = _mm256_fmadd_ps(q1, kv, acc[4 + p]);
        }
      };
      int64_t j = 0;
      for (; j + 8 <= d; j += 8) step(j, [](const auto* x) { return load8(x); });
      if (j < d) step(j, [&](const auto* x) { return load8_tail(x, d - j, tail); });
      alignas(32) float r[8];
      _mm256_store_ps(r, _mm256_mul_ps(sum_each(acc), vscale));
      const int64_t nh = std::min<int64_t>(2, n_q - i0), np = std::min<int64_t>(4, n_k - t0);
      for (int64_t h = 0; h < nh; ++h) std::copy(r + h * 4, r + h * 4 + np, s + (i0 + h) * s_stride + t0);
    }
  }
}

// out rows [0, NH) += sum_t p_h[t] * v_t over NC * 8 floats, held in registers.
template <int NH, int NC, class V>
void axpys_tile(const float* p, int64_t p_stride, const V* v, int64_t v_stride, int64_t n_v, float* out,
                int64_t out_stride) {
  __m256 acc[NH][NC];
  for (int h = 0; h < NH; ++h) {
    for (int c = 0; c < NC; ++c) acc[h][c] = _mm256_loadu_ps(out + h * out_stride + 8 * c);
  }
  for (int64_t t = 0; t < n_v; ++t) {
    for (int h = 0; h < NH; ++h) {
      const __m256 w = _mm256_set1_ps(p[h * p_stride + t]);
      for (int c = 0; c < NC; ++c) acc[h][c] = _mm256_fmadd_ps(w, load8(v + t * v_stride + 8 * c), acc[h][c]);
    }
  }
  for (int h = 0; h < NH; ++h) {
    for (int c = 0; c < NC; ++c) _mm256_storeu_ps(out + h * out_stride + 8 * c, acc[h][c]);
  }
}

template <int NH, class V>
void axpys_rows(const float* p, int64_t p_stride, const V* v, int64_t v_stride, int64_t n_v, int64_t d8, float* out,
                int64_t out_stride) {
  int64_t j = 0;
  for (; j + 32 <= d8; j += 32) axpys_tile<NH, 4>(p, p_stride, v + j, v_stride, n_v, out + j, out_stride);
  for (; j < d8; j += 8) axpys_tile<NH, 1>(p, p_stride, v + j, v_stride, n_v, out + j, out_stride);
}

// Tiles of 2 output rows by 32 floats held in registers over every value
// row. The last d % 8 floats take axpy_avx2's scalar tail, term by term.
template <class V>
void axpys_t(const float* p, int64_t p_stride, int64_t n_q, const V* v, int64_t v_stride, int64_t n_v, int64_t d,
             float* out, int64_t out_stride) {
  const int64_t d8 = d / 8 * 8;
  int64_t i = 0;
  for (; i + 2 <= n_q; i += 2) {
    axpys_rows<2>(p + i * p_stride, p_stride, v, v_stride, n_v, d8, out + i * out_stride, out_stride);
  }
  if (i < n_q) axpys_rows<1>(p + i * p_stride, p_stride, v, v_stride, n_v, d8, out + i * out_stride, out_stride);
  if (d8 == d) return;
  for (int64_t t = 0; t < n_v; ++t) {
    for (int64_t r = 0; r < n_q; ++r) {
      const float alpha = p[r * p_stride + t];
      for (int64_t c = d8; c < d; ++c) out[r * out_stride + c] += alpha * entry(v[t * v_stride + c]);
    }
  }
}

}  // namespace

void dots_avx2(const float* q, int64_t q_stride, int64_t n_q, const float* k, int64_t k_stride, int64_t n_k, int64_t d,
               float scale, float* s, int64_t s_stride) {
  dots_t(q, q_stride, n_q, k, k_stride, n_k, d, scale, s, s_stride);
}
void dots_f16_avx2(const float* q, int64_t q_stride, int64_t n_q, const uint16_t* k, int64_t k_stride, int64_t n_k,
                   int64_t d, float scale, float* s, int64_t s_stride) {
  dots_t(q, q_stride, n_q, k, k_stride, n_k, d, scale, s, s_stride);
}
void axpys_avx2(const float* p, int64_t p_stride, int64_t n_q, const float* v, int64_t v_stride, int64_t n_v, int64_t d,
                float* out, int64_t out_stride) {
  axpys_t(p, p_stride, n_q, v, v_stride, n_v, d, out, out_stride);
}
void axpys_f16_avx2(const float* p, int64_t p_stride, int64_t n_q, const uint16_t* v, int64_t v_stride, int64_t n_v,
                    int64_t d, float* out, int64_t out_stride) {
  axpys_t(p, p_stride, n_q, v, v_stride, n_v, d, out, out_stride);
}

void to_f16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

void from_f16_avx2(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load8(x + i));
  for (; i < n; ++i) y[i] = f16_to_f32(x[i]);
}

}  // namespace strata::vec_f32_detail
