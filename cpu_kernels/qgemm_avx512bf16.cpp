// BF16 weights against bf16 activations with AVX512_BF16's vdpbf16ps (32
// products per instruction, accumulated in f32), for CPUs that have it.
// Tiles of up to 4 weight rows x 4 activation rows, one accumulator per pair,
// so a pair's value does not depend on the tiling (as in every qgemm kernel).
#include <immintrin.h>

#include <algorithm>

#include "cpu_kernels/qgemm_internal.h"

namespace strata::qgemm_detail {
namespace {

template <int MW, int NR>
void tile(const uint8_t* const* wr, const ActPack& x, int64_t r0, int64_t n, float* out, int64_t stride) {
  __m512 acc[MW][NR];
  for (int m = 0; m < MW; ++m)
    for (int i = 0; i < NR; ++i) acc[m][i] = _mm512_setzero_ps();
  for (int64_t e = 0; e < n; e += 32) {
    const __mmask32 k = n - e >= 32 ? 0xFFFFFFFFu : static_cast<__mmask32>((1u << (n - e)) - 1);
    __m512bh xv[NR];
    for (int i = 0; i < NR; ++i) xv[i] = (__m512bh)_mm512_maskz_loadu_epi16(k, x.bf16(r0 + i) + e);
    for (int m = 0; m < MW; ++m) {
      const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(k, wr[m] + 2 * e);
      for (int i = 0; i < NR; ++i) acc[m][i] = _mm512_dpbf16_ps(acc[m][i], wv, xv[i]);
    }
  }
  for (int m = 0; m < MW; ++m)
    for (int i = 0; i < NR; ++i) out[m + i * stride] = _mm512_reduce_add_ps(acc[m][i]);
}

template <int MW>
void rows(const uint8_t* const* wr, const ActPack& x, int64_t r, int64_t rce, int64_t n, float* out, int64_t stride) {
  for (; r + 4 <= rce; r += 4, out += 4 * stride) tile<MW, 4>(wr, x, r, n, out, stride);
  switch (rce - r) {
    case 3: tile<MW, 3>(wr, x, r, n, out, stride); break;
    case 2: tile<MW, 2>(wr, x, r, n, out, stride); break;
    case 1: tile<MW, 1>(wr, x, r, n, out, stride); break;
    default: break;
  }
}

void gemm_bf16(const GemmArgs& a) {
  constexpr int64_t kChunk = 64;
  for (int64_t rc = a.r_begin; rc < a.r_end; rc += kChunk) {
    const int64_t rce = std::min(a.r_end, rc + kChunk);
    float* yc = a.y + (rc - a.r_begin) * a.y_stride;
    for (int64_t o = a.o_begin; o < a.o_end; o += 4) {
      const int mw = static_cast<int>(std::min<int64_t>(4, a.o_end - o));
      const uint8_t* wr[4];
      for (int m = 0; m < 4; ++m) wr[m] = a.w + static_cast<size_t>(o + std::min(m, mw - 1)) * a.row_bytes;
      float* out = yc + (o - a.o_begin);
      switch (mw) {
        case 4: rows<4>(wr, *a.x, rc, rce, a.n_in, out, a.y_stride); break;
        case 3: rows<3>(wr, *a.x, rc, rce, a.n_in, out, a.y_stride); break;
        case 2: rows<2>(wr, *a.x, rc, rce, a.n_in, out, a.y_stride); break;
        default: rows<1>(wr, *a.x, rc, rce, a.n_in, out, a.y_stride); break;
      }
    }
  }
}

}  // namespace

GemmFn avx512_bf16_kernel() { return gemm_bf16; }

}  // namespace strata::qgemm_detail
