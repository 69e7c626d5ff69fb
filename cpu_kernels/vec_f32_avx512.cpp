// f32 dot and axpy, and the attention tiles built on them (dots, axpys) over
// f32 or f16 rows, with AVX-512F/BW/VL (called only when the CPU and OS have
// them). Tails use masked loads.
#include <immintrin.h>

#include <algorithm>

#include "cpu_kernels/vec_f32.h"

namespace strata::vec_f32_detail {

float dot_avx512(const float* a, const float* b, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

void axpy_avx512(float alpha, const float* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

namespace {

__mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

// Sixteen entries of a key or value row as floats; lanes off in m are 0.
__m512 load16(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
__m512 load16(__mmask16 m, const uint16_t* p) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

// Lane l of the result is the sum of v[l]'s sixteen lanes, by the same tree
// for every l: pairs of 32-bit lanes, then of 64-bit halves of each 128-bit
// lane, then of 128-bit lanes (twice).
// Inlined on purpose: a call takes the accumulators through memory (one
// token-layer of attention at 64 positions, 8.8 -> 12.9 us).
[[gnu::always_inline]] inline __m512 sum_each(const __m512 v[16]) {
  __m512 a[8], b[4];
  for (int i = 0; i < 8; ++i) {
    a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
    b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  const __m512 e0 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(b[0], b[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 e1 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(b[2], b[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Tiles of 4 query rows by 4 key rows, one accumulator per pair over d; the
// rows past the ends repeat the last one and their sums are dropped.
template <class K>
void dots_t(const float* q, int64_t q_stride, int64_t n_q, const K* k, int64_t k_stride, int64_t n_k, int64_t d,
            float scale, float* s, int64_t s_stride) {
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t i0 = 0; i0 < n_q; i0 += 4) {
    const float* qr[4];
    for (int h = 0; h < 4; ++h) qr[h] = q + std::min<int64_t>(i0 + h, n_q - 1) * q_stride;
    for (int64_t t0 = 0; t0 < n_k; t0 += 4) {
      const K* kr[4];
      for (int p = 0; p < 4; ++p) kr[p] = k + std::min<int64_t>(t0 + p, n_k - 1) * k_stride;
      __m512 acc[16];
      for (__m512& a : acc) a = _mm512_setzero_ps();
      for (int64_t j = 0; j < d; j += 16) {
        const __mmask16 m = tail_mask(d - j);
        __m512 qv[4], kv[4];
        for (int h = 0; h < 4; ++h) qv[h] = _mm512_maskz_loadu_ps(m, qr[h] + j);
        for (int p = 0; p < 4; ++p) kv[p] = load16(m, kr[p] + j);
        for (int h = 0; h < 4; ++h) {
          for (int p = 0; p < 4; ++p) acc[h * 4 + p] = _mm512_fmadd_ps(qv[h], kv[p], acc[h * 4 + p]);
        }
      }
      alignas(64) float r[16];
      _mm512_store_ps(r, _mm512_mul_ps(sum_each(acc), vscale));
      const int64_t nh = std::min<int64_t>(4, n_q - i0), np = std::min<int64_t>(4, n_k - t0);
      for (int64_t h = 0; h < nh; ++h) std::copy(r + h * 4, r + h * 4 + np, s + (i0 + h) * s_stride + t0);
    }
  }
}

// Tiles of 4 output rows by 64 floats held in registers over every value
// row; the lanes past d are neither read nor written. The 4-row tile and the
// one-row rest are written out apart: one template on the row count made GCC
// keep the accumulators on the stack (one token-layer at 64 positions,
// 9.1 -> 13.1 us).
template <class V>
void axpys_t(const float* p, int64_t p_stride, int64_t n_q, const V* v, int64_t v_stride, int64_t n_v, int64_t d,
             float* out, int64_t out_stride) {
  for (int64_t j0 = 0; j0 < d; j0 += 64) {
    __mmask16 m[4];
    for (int c = 0; c < 4; ++c) m[c] = d - j0 > 16 * c ? tail_mask(d - j0 - 16 * c) : __mmask16(0);
    int64_t i0 = 0;
    for (; i0 + 4 <= n_q; i0 += 4) {
      __m512 acc[4][4];
      for (int h = 0; h < 4; ++h) {
        for (int c = 0; c < 4; ++c) acc[h][c] = _mm512_maskz_loadu_ps(m[c], out + (i0 + h) * out_stride + j0 + 16 * c);
      }
      for (int64_t t = 0; t < n_v; ++t) {
        __m512 x[4];
        for (int c = 0; c < 4; ++c) x[c] = load16(m[c], v + t * v_stride + j0 + 16 * c);
        for (int h = 0; h < 4; ++h) {
          const __m512 w = _mm512_set1_ps(p[(i0 + h) * p_stride + t]);
          for (int c = 0; c < 4; ++c) acc[h][c] = _mm512_fmadd_ps(w, x[c], acc[h][c]);
        }
      }
      for (int h = 0; h < 4; ++h) {
        for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(out + (i0 + h) * out_stride + j0 + 16 * c, m[c], acc[h][c]);
      }
    }
    for (; i0 < n_q; ++i0) {
      __m512 acc[4];
      for (int c = 0; c < 4; ++c) acc[c] = _mm512_maskz_loadu_ps(m[c], out + i0 * out_stride + j0 + 16 * c);
      for (int64_t t = 0; t < n_v; ++t) {
        const __m512 w = _mm512_set1_ps(p[i0 * p_stride + t]);
        for (int c = 0; c < 4; ++c) {
          acc[c] = _mm512_fmadd_ps(w, load16(m[c], v + t * v_stride + j0 + 16 * c), acc[c]);
        }
      }
      for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(out + i0 * out_stride + j0 + 16 * c, m[c], acc[c]);
    }
  }
}

}  // namespace

void dots_avx512(const float* q, int64_t q_stride, int64_t n_q, const float* k, int64_t k_stride, int64_t n_k,
                 int64_t d, float scale, float* s, int64_t s_stride) {
  dots_t(q, q_stride, n_q, k, k_stride, n_k, d, scale, s, s_stride);
}
void dots_f16_avx512(const float* q, int64_t q_stride, int64_t n_q, const uint16_t* k, int64_t k_stride, int64_t n_k,
                     int64_t d, float scale, float* s, int64_t s_stride) {
  dots_t(q, q_stride, n_q, k, k_stride, n_k, d, scale, s, s_stride);
}
void axpys_avx512(const float* p, int64_t p_stride, int64_t n_q, const float* v, int64_t v_stride, int64_t n_v,
                  int64_t d, float* out, int64_t out_stride) {
  axpys_t(p, p_stride, n_q, v, v_stride, n_v, d, out, out_stride);
}
void axpys_f16_avx512(const float* p, int64_t p_stride, int64_t n_q, const uint16_t* v, int64_t v_stride,
                      int64_t n_v, int64_t d, float* out, int64_t out_stride) {
  axpys_t(p, p_stride, n_q, v, v_stride, n_v, d, out, out_stride);
}

}  // namespace strata::vec_f32_detail
