// BF16 weights against bf16 activations with AVX512_BF16's vdpbf16ps (32
// products per instruction, accumulated in f32), for CPUs that have it.
// Tiles of up to 4 weight rows x 4 activation rows, one accumulator per pair,
// so a pair's value does not depend on the tiling (as in every qgemm kernel).
#include <immintrin.h>

#include <algorithm>

#include "cpu_kernels/qgemm_internal.h"

namespace strata::qgemm_detail {
namespace {

struct Bf16Tiles {
  static constexpr int kMaxTile = 4;
  template <int MW, int NR, bool kAhead>
  static void tile(const uint8_t* const* wr, const ActPack& x, int64_t r0, int64_t n, float* out, int64_t stride) {
    __m512 acc[MW][NR];
    for (int m = 0; m < MW; ++m)
      for (int i = 0; i < NR; ++i) acc[m][i] = _mm512_setzero_ps();
    for (int64_t e = 0; e < n; e += 32) {
      if constexpr (kAhead) prefetch_rows<MW>(wr, static_cast<size_t>(2 * e));
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
};

void gemm_bf16(const GemmArgs& a) { gemm_weight_row_groups<Bf16Tiles>(a); }

}  // namespace

GemmFn avx512_bf16_kernel() { return gemm_bf16; }

}  // namespace strata::qgemm_detail
