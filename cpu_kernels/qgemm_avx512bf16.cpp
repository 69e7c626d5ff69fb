// BF16 weights against bf16 activations with AVX512_BF16's vdpbf16ps (32
// products per instruction, accumulated in f32), for CPUs that have it.
// Tiles of up to 4 weight rows x 8 activation rows (more than 4 in two
// passes: float_tile_passes), one accumulator per pair, so a pair's value
// does not depend on the tiling (as in every qgemm kernel).
#include <immintrin.h>

#include <algorithm>

#include "cpu_kernels/qgemm_internal.h"

namespace strata::qgemm_detail {
namespace {

struct Bf16Tiles {
  static constexpr int kMaxTile = 8;
  template <int MW, int NR, bool kAhead>
  static void tile(const uint8_t* const* wr, const ActPack& x, int64_t r0, int64_t n, float* out, int64_t stride) {
    const uint16_t* xr[NR];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) xr[i] = x.bf16(r0 + i);
    const size_t row_bytes = static_cast<size_t>(2 * n);
    const auto step = [&]<int R>(int i0, int64_t e, int64_t count, int64_t pf, __m512(&a)[MW][R]) {
      const __mmask32 k = count >= 32 ? 0xFFFFFFFFu : static_cast<__mmask32>((1u << count) - 1);
      if constexpr (kAhead) prefetch_rows<MW>(wr, static_cast<size_t>(2 * pf), row_bytes);
      __m512bh xv[R];
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) xv[i] = (__m512bh)_mm512_maskz_loadu_epi16(k, xr[i0 + i] + e);
#pragma GCC unroll 4
      for (int m = 0; m < MW; ++m) {
        const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(k, wr[m] + 2 * e);
#pragma GCC unroll 4
        for (int i = 0; i < R; ++i) a[m][i] = _mm512_dpbf16_ps(a[m][i], wv, xv[i]);
      }
    };
    float_tile_passes<MW, NR, 4, 32, __m512>(n, step, [](__m512 v) { return _mm512_reduce_add_ps(v); }, out, stride);
  }
};

void gemm_bf16(const GemmArgs& a) { gemm_weight_row_groups<Bf16Tiles>(a); }

}  // namespace

GemmFn avx512_bf16_kernel() { return gemm_bf16; }

}  // namespace strata::qgemm_detail
