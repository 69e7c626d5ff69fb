// AVX2 + FMA + F16C qgemm kernels (Haswell and later, Zen): 256-bit
// versions of the AVX-512 kernels with the same structure (see
// qgemm_avx512_kernels.inc): one weight row against tiles of up to 4
// activation rows, activation rows in chunks of 64, one accumulator per
// (weight row, activation row) pair updated once per block in block order.
// Integer products use vpmaddubsw (u8 x s8 pair sums, kept below 2^15 by
// every type: 4- to 6-bit unsigned quants, or |w| <= 128 with x carrying
// w's sign) then vpmaddwd against the scales.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "cpu_kernels/iq_grids.h"
#include "cpu_kernels/qgemm_internal.h"

namespace strata::qgemm_detail::avx2 {
namespace {

inline float half_to_float(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

#include "cpu_kernels/qgemm_avx2_packed.inc"
#include "cpu_kernels/qgemm_lowbit.inc"

inline __m256i dot_scaled(__m256i acc, __m256i wu8, __m256i xs8, __m256i sc16) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(wu8, xs8), sc16));
}
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
inline __m256i nib_lo(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
inline __m256i nib_hi(__m256i v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F)); }

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// int16 vector: a in lanes 0-7, b in lanes 8-15.
inline __m256i halves16(int a, int b) {
  return _mm256_setr_m128i(_mm_set1_epi16(static_cast<int16_t>(a)), _mm_set1_epi16(static_cast<int16_t>(b)));
}

// Bit j of every byte of qh, moved to bit 4 (the 5th quant bit of Q5_K).
inline __m256i bit_to_16(__m256i qh, int j) {
  const __m256i m = _mm256_set1_epi8(0x10);
  switch (j) {
    case 0: return _mm256_and_si256(_mm256_slli_epi16(qh, 4), m);
    case 1: return _mm256_and_si256(_mm256_slli_epi16(qh, 3), m);
    case 2: return _mm256_and_si256(_mm256_slli_epi16(qh, 2), m);
    case 3: return _mm256_and_si256(_mm256_slli_epi16(qh, 1), m);
    case 4: return _mm256_and_si256(qh, m);
    case 5: return _mm256_and_si256(_mm256_srli_epi16(qh, 1), m);
    case 6: return _mm256_and_si256(_mm256_srli_epi16(qh, 2), m);
    default: return _mm256_and_si256(_mm256_srli_epi16(qh, 3), m);
  }
}

// Q4_K / Q5_K (kHigh): weight bytes qs[32m..32m+31] hold sub-blocks 2m (low
// nibbles) and 2m+1 (high); sub-block j's activations sit at 32 * kQ4KPairPos[j].
template <bool kHigh>
struct Q45K {
  static constexpr int kBlock = kQK_K;
  static constexpr int64_t kRows = 1;
  static constexpr int kMaxTile = 4;
  template <int NR, bool kAhead>
  static void tile(const uint8_t* w, const ActPack& x, int64_t r0, int64_t nb, float* out, int64_t stride) {
    constexpr size_t kBytes = kHigh ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    constexpr int kQs = kHigh ? 48 : 16;
    __m256 acc[NR], accm[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps(), accm[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, w += kBytes) {
      if constexpr (kAhead) prefetch_tile_step<NR, kBytes>(w);
      uint64_t sc, m;
      scale_min_k4_words(w + 4, &sc, &m);
      // Scale j as an int16 broadcast: word j of the widened scales, picked by
      // a byte shuffle (no store-to-load round trip).
      const __m256i s16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc))));
      __m256i wq[8], scv[8];
      const __m256i qh = kHigh ? loadu(w + 16) : _mm256_setzero_si256();
      for (int j = 0; j < 8; j += 2) {
        const __m256i q = loadu(w + kQs + 16 * j);
        wq[j] = nib_lo(q);
        wq[j + 1] = nib_hi(q);
        if (kHigh) {
          wq[j] = _mm256_or_si256(wq[j], bit_to_16(qh, j));
          wq[j + 1] = _mm256_or_si256(wq[j + 1], bit_to_16(qh, j + 1));
        }
        scv[j] = _mm256_shuffle_epi8(s16, _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * j)));
        scv[j + 1] = _mm256_shuffle_epi8(s16, _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * (j + 1))));
      }
      const __m128i m8 = _mm_cvtsi64_si128(static_cast<int64_t>(m));
      const __m256i mdup = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
      const float d = half_to_float(w), dmin = half_to_float(w + 2);
      for (int i = 0; i < NR; ++i) {
        const int8_t* xq = x.q(r0 + i) + b * kQK_K;
        __m256i s = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) s = dot_scaled(s, wq[j], loadu(xq + 32 * kQ4KPairPos[j]), scv[j]);
        const float dx = x.d(r0 + i)[b];
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * dx), acc[i]);
        const __m256i bs = loadu(x.bsums(r0 + i) + 16 * b);
        accm[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mdup)), _mm256_set1_ps(dmin * dx), accm[i]);
      }
    }
    for (int i = 0; i < NR; ++i) out[i * stride] = hsum(acc[i]) - hsum(accm[i]);
  }
};

// Q6_K: chunk k of each 128-element half is elements 32k..32k+31: ql bytes
// 32*(k&1).. low (k<2) or high (k>=2) nibbles, qh bits 2k..2k+1.
struct Q6K {
  static constexpr int kBlock = kQK_K;
  static constexpr int64_t kRows = 1;
  static constexpr int kMaxTile = 4;
  template <int NR, bool kAhead>
  static void tile(const uint8_t* w, const ActPack& x, int64_t r0, int64_t nb, float* out, int64_t stride) {
    const __m256i m30 = _mm256_set1_epi8(0x30);
    __m256 acc[NR], accm[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps(), accm[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockQ6_K)) {
      if constexpr (kAhead) prefetch_tile_step<NR, sizeof(BlockQ6_K)>(w);
      const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 192));
      const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
      __m256i wq[8], scv[8];
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = loadu(w + 64 * h), ql1 = loadu(w + 64 * h + 32);
        const __m256i qh = loadu(w + 128 + 32 * h);
        wq[4 * h + 0] = _mm256_or_si256(nib_lo(ql0), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        wq[4 * h + 1] = _mm256_or_si256(nib_lo(ql1), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        wq[4 * h + 2] = _mm256_or_si256(nib_hi(ql0), _mm256_and_si256(qh, m30));
        wq[4 * h + 3] = _mm256_or_si256(nib_hi(ql1), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
      }
      alignas(16) int8_t scb[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(scb), sc8);
      for (int c = 0; c < 8; ++c) scv[c] = halves16(scb[2 * c], scb[2 * c + 1]);
      const float d = half_to_float(w + 208);
      for (int i = 0; i < NR; ++i) {
        const int8_t* xq = x.q(r0 + i) + b * kQK_K;
        __m256i s = _mm256_setzero_si256();
        for (int c = 0; c < 8; ++c) s = dot_scaled(s, wq[c], loadu(xq + 32 * c), scv[c]);
        const float dx = x.d(r0 + i)[b];
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * dx), acc[i]);
        const __m256i bs = loadu(x.bsums(r0 + i) + 16 * b);
        accm[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, sc16)), _mm256_set1_ps(32.0f * (d * dx)),
                                  accm[i]);
      }
    }
    for (int i = 0; i < NR; ++i) out[i * stride] = hsum(acc[i]) - hsum(accm[i]);
  }
};

// Q2_K and Q3_K (kQ3): qs bytes 32h..32h+31 hold elements 128h + 32k + l
// at bits 2k (natural order), so chunk c = 4h + k of 32 pairs with the
// activations at 32c and spans sub-blocks 2c and 2c + 1. Q2_K quants are
// 0..3 with unsigned scales and mins (low and high nibbles of scales[16]);
// Q3_K adds 4 where its hmask bit c is set (0..7) and takes the 4 back out
// with the activation sums against its signed scales. Pair sums <= 2*7*127.
template <bool kQ3>
struct Q23K {
  static constexpr int kBlock = kQK_K;
  static constexpr int64_t kRows = 1;
  static constexpr int kMaxTile = 4;
  static constexpr size_t kBytes = kQ3 ? sizeof(BlockQ3_K) : sizeof(BlockQ2_K);
  // Bit c of every byte of hm moved to bit 2 (16-bit shifts keep it in its byte).
  static __m256i bit_to_4(__m256i hm, int c) {
    const __m256i v =
        c <= 2 ? _mm256_sll_epi16(hm, _mm_cvtsi32_si128(2 - c)) : _mm256_srl_epi16(hm, _mm_cvtsi32_si128(c - 2));
    return _mm256_and_si256(v, _mm256_set1_epi8(4));
  }
  template <int NR, bool kAhead>
  static void tile(const uint8_t* w, const ActPack& x, int64_t r0, int64_t nb, float* out, int64_t stride) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc[NR], accm[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps(), accm[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, w += kBytes) {
      if constexpr (kAhead) prefetch_tile_step<NR, kBytes>(w);
      __m128i sc8, m8;
      k23_scales<kQ3>(w, &sc8, &m8);
      const __m256i m16 = _mm256_cvtepi8_epi16(m8);
      alignas(16) int8_t scb[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(scb), sc8);
      const uint8_t* qs = w + (kQ3 ? 32 : 16);
      const __m256i hm = kQ3 ? loadu(w) : _mm256_setzero_si256();
      __m256i wq[8], scv[8];
      for (int h = 0; h < 2; ++h) {
        const __m256i q = loadu(qs + 32 * h);
        for (int k = 0; k < 4; ++k) {
          const int c = 4 * h + k;
          wq[c] = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k)), m3);
          if constexpr (kQ3) wq[c] = _mm256_or_si256(wq[c], bit_to_4(hm, c));
          scv[c] = halves16(scb[2 * c], scb[2 * c + 1]);
        }
      }
      const float d = half_to_float(w + (kQ3 ? 108 : 80));
      const float dm = kQ3 ? 4.0f * d : half_to_float(w + 82);
      for (int i = 0; i < NR; ++i) {
        const int8_t* xq = x.q(r0 + i) + b * kQK_K;
        __m256i s = _mm256_setzero_si256();
        for (int c = 0; c < 8; ++c) s = dot_scaled(s, wq[c], loadu(xq + 32 * c), scv[c]);
        const float dx = x.d(r0 + i)[b];
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * dx), acc[i]);
        const __m256i bs = loadu(x.bsums(r0 + i) + 16 * b);
        accm[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, m16)), _mm256_set1_ps(dm * dx), accm[i]);
      }
    }
    for (int i = 0; i < NR; ++i) out[i * stride] = hsum(acc[i]) - hsum(accm[i]);
  }
};

// One decoded block of an i-quant (IQGrid, IQ1) against the rows of a tile:
// per chunk c of 32 weights the unsigned magnitudes u[c], a vector whose
// bytes carry the weights' signs (vpsignb puts them on the activations) and
// the int16 scales sc[c]; acc[i] gains d * x.d * the scaled integer sum.
template <int NR>
inline void iq_block_rows(const __m256i (&u)[8], const __m256i (&sg)[8], const __m256i (&sc)[8], float d,
                          const ActPack& x, int64_t r0, int64_t b, __m256 (&acc)[NR]) {
  for (int i = 0; i < NR; ++i) {
    const int8_t* xq = x.q(r0 + i) + b * kQK_K;
    __m256i s = _mm256_setzero_si256();
    for (int c = 0; c < 8; ++c) s = dot_scaled(s, u[c], _mm256_sign_epi8(loadu(xq + 32 * c), sg[c]), sc[c]);
    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * x.d(r0 + i)[b]), acc[i]);
  }
}

// The codebook i-quants IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S (kType),
// per 32 weights (chunk c): the grid entries by one gather (4 entries of 8,
// or 8 of 4, unsigned magnitudes <= 62), the 4 sign bytes spread into a +-1
// vector that vpsignb puts on the activations, so pair sums stay <=
// 2*62*127. Scales 2s + 1 per 32 (IQ2_XS, IQ2_S: per 16); the /8 (IQ3_XXS:
// /4, IQ3_S: none) goes on at the end, as in the scalar kernels.
template <DType kType>
struct IQGrid : IQGridType<kType> {
  static constexpr int kBlock = kQK_K;
  static constexpr int64_t kRows = 1;
  static constexpr int kMaxTile = 4;
  using Type = IQGridType<kType>;
  using Type::kXs, Type::kIQ3, Type::kS2, Type::kS3, Type::kBytes, Type::kFinal;
  // The block's 32 sign bytes (qgemm_lowbit.inc), byte k for group k of 8 weights.
  static __m256i sign_bytes(const uint8_t* w) {
    __m256i s;
    if constexpr (kS2 || kS3) {
      return loadu(w + (kS2 ? 34 : 74));  // stored as they are
    } else if constexpr (kXs) {
      const __m256i a = _mm256_srli_epi16(loadu(w + 2), 9), b = _mm256_srli_epi16(loadu(w + 34), 9);
      s = _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xD8);
    } else {
      // The 8 words of 4 codes each (IQ2_XXS: every other word of qs), code l at bits 7l.
      const __m256i aux =
          kIQ3 ? loadu(w + 66)
               : _mm256_permute4x64_epi64(
                     _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(loadu(w + 2)),
                                                           _mm256_castsi256_ps(loadu(w + 34)), 0xDD)),
                     0xD8);
      s = iq_codes_of_words(aux);
    }
    return iq_sign_bytes_of_codes(s);
  }
  // Sign bytes 4c..4c+3 of sb as -1/+1 in bytes 8g..8g+7 (g < 4).
  static __m256i sign_vector(__m256i sb, int c) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    const __m256i four = _mm256_permutevar8x32_epi32(sb, _mm256_set1_epi32(c));
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(four, spread), bit);
    return _mm256_or_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(1));
  }
  // Chunk c of the block at w: grid magnitudes and scales per int16 lane.
  static void decode(const uint8_t* w, int c, __m256i* g, __m256i* sc) {
    if constexpr (kS2) {
      // 10-bit indices: qs byte | bits 2l..2l+1 of qh byte c.
      const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(w[66 + c]), _mm_setr_epi32(0, 2, 4, 6)),
                                       _mm_set1_epi32(3));
      const __m128i idx = _mm_or_si128(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(int(load_u32(w + 2 + 4 * c)))),
                                       _mm_slli_epi32(hi, 8));
      *g = _mm256_i32gather_epi64(reinterpret_cast<const long long*>(iq_grids::kGridIQ2S), idx, 8);
      *sc = halves16(2 * (w[74 + c] & 15) + 1, 2 * (w[74 + c] >> 4) + 1);
    } else if constexpr (kS3) {
      // 9-bit indices: qs byte | bit e of qh byte c.
      const __m256i hi = _mm256_and_si256(
          _mm256_srlv_epi32(_mm256_set1_epi32(w[66 + c]), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
          _mm256_set1_epi32(1));
      const __m256i idx = _mm256_or_si256(
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + 2 + 8 * c))),
          _mm256_slli_epi32(hi, 8));
      *g = _mm256_i32gather_epi32(reinterpret_cast<const int*>(iq_grids::kGridIQ3S), idx, 4);
      *sc = _mm256_set1_epi16(int16_t(2 * ((w[106 + c / 2] >> (4 * (c % 2))) & 15) + 1));
    } else if constexpr (kXs) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + 2 + 8 * c));
      const __m128i idx = _mm_and_si128(_mm_cvtepu16_epi32(q), _mm_set1_epi32(511));
      *g = _mm256_i32gather_epi64(reinterpret_cast<const long long*>(iq_grids::kGridIQ2XS), idx, 8);
      *sc = halves16(2 * (w[66 + c] & 15) + 1, 2 * (w[66 + c] >> 4) + 1);
    } else {
      const uint32_t aux = load_u32(kIQ3 ? w + 66 + 4 * c : w + 6 + 8 * c);
      if constexpr (kIQ3) {
        const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + 2 + 8 * c)));
        *g = _mm256_i32gather_epi32(reinterpret_cast<const int*>(iq_grids::kGridIQ3XXS), idx, 4);
      } else {
        const __m128i idx = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(int(load_u32(w + 2 + 8 * c))));
        *g = _mm256_i32gather_epi64(reinterpret_cast<const long long*>(iq_grids::kGridIQ2XXS), idx, 8);
      }
      *sc = _mm256_set1_epi16(int16_t(2 * (aux >> 28) + 1));
    }
  }
  template <int NR, bool kAhead>
  static void tile(const uint8_t* w, const ActPack& x, int64_t r0, int64_t nb, float* out, int64_t stride) {
    __m256 acc[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, w += kBytes) {
      if constexpr (kAhead) prefetch_tile_step<NR, kBytes>(w);
      __m256i g[8], sg[8], sc[8];
      const __m256i sb = sign_bytes(w);
      for (int c = 0; c < 8; ++c) decode(w, c, &g[c], &sc[c]), sg[c] = sign_vector(sb, c);
      iq_block_rows<NR>(g, sg, sc, half_to_float(w), x, r0, b, acc);
    }
    for (int i = 0; i < NR; ++i) out[i * stride] = kFinal * hsum(acc[i]);
  }
};

// IQ1_S and IQ1_M (kM), per 32 weights (chunk c): the grid entries of
// -1/0/+1 by one gather, made 8g +- 1 (the shift's sign per 32; IQ1_M: per
// 8), so |q| <= 9 goes in as u8 and its sign onto the activations (q is odd,
// never 0). Scales 2s + 1 per 32 (IQ1_M: per 16); the /8 goes on at the end.
template <bool kM>
struct IQ1 {
  static constexpr int kBlock = kQK_K;
  static constexpr int64_t kRows = 1;
  static constexpr int kMaxTile = 4;
  static constexpr size_t kBytes = kM ? sizeof(BlockIQ1_M) : sizeof(BlockIQ1_S);
  // Chunk c of the block at w: weights as 8g +- 1 and scales per int16 lane.
  static void decode(const uint8_t* w, int c, __m256i* q, __m256i* sc) {
    __m128i idx;
    __m256i neg;  // all ones in the groups of 8 whose shift is negative
    if constexpr (kM) {
      // qh nibble l of the chunk: 3 high index bits, then the shift's sign.
      const uint32_t nib = load_u16(w + 32 + 2 * c);
      const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(int(nib)), _mm_setr_epi32(0, 4, 8, 12)),
                                       _mm_set1_epi32(7));
      idx = _mm_or_si128(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(int(load_u32(w + 4 * c)))), _mm_slli_epi32(hi, 8));
      const __m256i bit = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(nib), _mm256_setr_epi64x(3, 7, 11, 15)),
                                           _mm256_set1_epi64x(1));
      neg = _mm256_sub_epi64(_mm256_setzero_si256(), bit);
      const uint32_t word = load_u16(w + 48 + 2 * (c / 2)) >> (6 * (c % 2));
      *sc = halves16(2 * (word & 7) + 1, 2 * ((word >> 3) & 7) + 1);
    } else {
      const uint32_t qh = load_u16(w + 34 + 2 * c);
      const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(int(qh)), _mm_setr_epi32(0, 3, 6, 9)),
                                       _mm_set1_epi32(7));
      idx = _mm_or_si128(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(int(load_u32(w + 2 + 4 * c)))), _mm_slli_epi32(hi, 8));
      neg = _mm256_set1_epi8(qh & 0x8000 ? -1 : 0);
      *sc = _mm256_set1_epi16(int16_t(2 * ((qh >> 12) & 7) + 1));
    }
    const __m256i g = _mm256_i32gather_epi64(reinterpret_cast<const long long*>(iq_grids::kGridIQ1S), idx, 8);
    // 8g per byte: the 16-bit shift's carry into the next byte is masked off.
    const __m256i g8 = _mm256_and_si256(_mm256_slli_epi16(g, 3), _mm256_set1_epi8(int8_t(0xF8)));
    *q = _mm256_add_epi8(g8, _mm256_or_si256(neg, _mm256_set1_epi8(1)));
  }
  template <int NR, bool kAhead>
  static void tile(const uint8_t* w, const ActPack& x, int64_t r0, int64_t nb, float* out, int64_t stride) {
    __m256 acc[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, w += kBytes) {
      if constexpr (kAhead) prefetch_tile_step<NR, kBytes>(w);
      __m256i q[8], u[8], sc[8];
      for (int c = 0; c < 8; ++c) decode(w, c, &q[c], &sc[c]), u[c] = _mm256_abs_epi8(q[c]);
      // q's own signs go on the activations (q is odd, never 0).
      iq_block_rows<NR>(u, q, sc, kM ? _cvtsh_ss(iq1m_d_bits(w + 48)) : half_to_float(w), x, r0, b, acc);
    }
    for (int i = 0; i < NR; ++i) out[i * stride] = 0.125f * hsum(acc[i]);
  }
};

// IQ4_XS: qs bytes of sub-blocks (2p, 2p+1) give their low 16 (low nibbles)
// and high 16 (high nibbles), at 128*(p/2) + 32*(p%2) (+64) in kIQ4Halves.
struct IQ4XS {
  static constexpr int kBlock = kQK_K;
  static constexpr int64_t kRows = 1;
  static constexpr int kMaxTile = 4;
  template <int NR, bool kAhead>
  static void tile(const uint8_t* w, const ActPack& x, int64_t r0, int64_t nb, float* out, int64_t stride) {
    const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kValuesIQ4NL)));
    __m256 acc[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockIQ4_XS)) {
      if constexpr (kAhead) prefetch_tile_step<NR, sizeof(BlockIQ4_XS)>(w);
      const uint16_t sh = load_u16(w + 2);
      __m256i wv[8], scv[4];
      for (int p = 0; p < 4; ++p) {
        const __m256i q = loadu(w + 8 + 32 * p);
        wv[2 * p] = _mm256_shuffle_epi8(kv, nib_lo(q));
        wv[2 * p + 1] = _mm256_shuffle_epi8(kv, nib_hi(q));
        scv[p] = halves16(iq4xs_scale(sh, w + 4, 2 * p), iq4xs_scale(sh, w + 4, 2 * p + 1));
      }
      const float d = half_to_float(w);
      for (int i = 0; i < NR; ++i) {
        const int8_t* xq = x.q(r0 + i) + b * kQK_K;
        __m256i s = _mm256_setzero_si256();
        for (int p = 0; p < 4; ++p) {
          const int8_t* lo = xq + 128 * (p / 2) + 32 * (p % 2);
          s = dot_scaled(s, _mm256_abs_epi8(wv[2 * p]), _mm256_sign_epi8(loadu(lo), wv[2 * p]), scv[p]);
          s = dot_scaled(s, _mm256_abs_epi8(wv[2 * p + 1]), _mm256_sign_epi8(loadu(lo + 64), wv[2 * p + 1]), scv[p]);
        }
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * x.d(r0 + i)[b]), acc[i]);
      }
    }
    for (int i = 0; i < NR; ++i) out[i * stride] = hsum(acc[i]);
  }
};

// Q8_0: one block per step; |w| times x with w's sign.
struct Q80 {
  static constexpr int kBlock = 32;
  static constexpr int64_t kRows = 1;
  static constexpr int kMaxTile = 4;
  template <int NR, bool kAhead>
  static void tile(const uint8_t* w, const ActPack& x, int64_t r0, int64_t nb, float* out, int64_t stride) {
    __m256 acc[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockQ8_0)) {
      if constexpr (kAhead) prefetch_tile_step<NR, sizeof(BlockQ8_0)>(w);
      const __m256i wq = loadu(w + 2);
      const __m256i wa = _mm256_abs_epi8(wq);
      const float dw = half_to_float(w);
      for (int i = 0; i < NR; ++i) {
        const __m256i p = dot_u8s8(wa, _mm256_sign_epi8(loadu(x.q(r0 + i) + 32 * b), wq));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * x.d(r0 + i)[b]), acc[i]);
      }
    }
    for (int i = 0; i < NR; ++i) out[i * stride] = hsum(acc[i]);
  }
};

// Q4_0 and IQ4_NL (kNL): two blocks per step as (lo0 lo1) and (hi0 hi1),
// which is ActOrder::kQ4_0Halves; int32 lanes 0-3 belong to the first block,
// 4-7 to the second. A lone last block is (lo | hi), natural order. The
// weights are the quants minus 8, or IQ4_NL's codebook values (-127..113,
// none 0, so vpsignb puts their sign on the activations whole).
template <bool kNL>
struct Q40 {
  static constexpr int kBlock = 32;
  static constexpr int64_t kRows = 1;
  static constexpr int kMaxTile = 4;
  static __m256i values(__m256i nibbles) {
    if constexpr (kNL) {
      return _mm256_shuffle_epi8(
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kValuesIQ4NL))), nibbles);
    } else {
      return _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8));
    }
  }
  template <int NR, bool kAhead>
  static void tile(const uint8_t* w, const ActPack& x, int64_t r0, int64_t nb, float* out, int64_t stride) {
    __m256 acc[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2, w += 2 * sizeof(BlockQ4_0)) {
      if constexpr (kAhead) prefetch_tile_step<NR, 2 * sizeof(BlockQ4_0)>(w);
      if (b + 1 < nb) {
        const __m256i q = _mm256_setr_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2)),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 20)));
        const __m256i wl = values(nib_lo(q)), wh = values(nib_hi(q));
        const __m256i al = _mm256_abs_epi8(wl), ah = _mm256_abs_epi8(wh);
        const __m256 dw = _mm256_setr_m128(_mm_set1_ps(half_to_float(w)), _mm_set1_ps(half_to_float(w + 18)));
        for (int i = 0; i < NR; ++i) {
          const int8_t* xq = x.q(r0 + i) + 32 * b;
          const float* xd = x.d(r0 + i) + b;
          const __m256i p = _mm256_add_epi32(dot_u8s8(al, _mm256_sign_epi8(loadu(xq), wl)),
                                             dot_u8s8(ah, _mm256_sign_epi8(loadu(xq + 32), wh)));
          const __m256 dx = _mm256_setr_m128(_mm_set1_ps(xd[0]), _mm_set1_ps(xd[1]));
          acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, dx), acc[i]);
        }
      } else {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2));
        const __m128i m = _mm_set1_epi8(0x0F);
        const __m256i wq = values(_mm256_setr_m128i(_mm_and_si128(q, m), _mm_and_si128(_mm_srli_epi16(q, 4), m)));
        const __m256i wa = _mm256_abs_epi8(wq);
        const float dw = half_to_float(w);
        for (int i = 0; i < NR; ++i) {
          const __m256i p = dot_u8s8(wa, _mm256_sign_epi8(loadu(x.q(r0 + i) + 32 * b), wq));
          acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * x.d(r0 + i)[b]), acc[i]);
        }
      }
    }
    for (int i = 0; i < NR; ++i) out[i * stride] = hsum(acc[i]);
  }
};

// ---- float weights: 8 elements per step; the last partial step reads
// zero-padded copies (AVX2 has no masked 16-bit loads).

struct LoadF32 {
  static constexpr int kBytes = 4;
  static __m256 w(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  static __m256 w(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
  static __m256 w(const uint8_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
};

// Float weights: MW weight rows x up to 2 activation rows in registers (8
// accumulators and the loads in 16), more rows in passes of 2
// (float_tile_passes).
template <class L>
struct FloatTiles {
  static constexpr int kMaxTile = 8;
  template <int MW, int NR, bool kAhead>
  static void tile(const uint8_t* const* wr, const ActPack& x, int64_t r0, int64_t n, float* out, int64_t stride) {
    const bool bf16 = x.format() == ActFormat::kBF16;
    const int xbytes = bf16 ? 2 : 4;
    const uint8_t* xr[NR];
    for (int i = 0; i < NR; ++i) {
      xr[i] = bf16 ? reinterpret_cast<const uint8_t*>(x.bf16(r0 + i)) : reinterpret_cast<const uint8_t*>(x.f32(r0 + i));
    }
    const size_t row_bytes = static_cast<size_t>(L::kBytes * n);
    const auto step = [&]<int R>(int i0, int64_t e, int64_t count, int64_t pf, __m256(&a)[MW][R]) {
      if constexpr (kAhead) prefetch_rows<MW, kFmaRowAhead>(wr, static_cast<size_t>(L::kBytes * pf), row_bytes);
      const auto fma = [&](const uint8_t* const* wp, const uint8_t* const* xp) {
        __m256 xv[R];
#pragma GCC unroll 2
        for (int i = 0; i < R; ++i) xv[i] = bf16 ? LoadBF16::w(xp[i]) : LoadF32::w(xp[i]);
#pragma GCC unroll 4
        for (int m = 0; m < MW; ++m) {
          const __m256 wv = L::w(wp[m]);
#pragma GCC unroll 2
          for (int i = 0; i < R; ++i) a[m][i] = _mm256_fmadd_ps(wv, xv[i], a[m][i]);
        }
      };
      const uint8_t* wp[MW];
      const uint8_t* xp[R];
      if (count == 8) {
#pragma GCC unroll 4
        for (int m = 0; m < MW; ++m) wp[m] = wr[m] + L::kBytes * e;
#pragma GCC unroll 2
        for (int i = 0; i < R; ++i) xp[i] = xr[i0 + i] + xbytes * e;
        fma(wp, xp);
      } else {
        // The last, short step from zero-padded copies.
        alignas(32) uint8_t wt[MW][32] = {}, xt[R][32] = {};
        for (int m = 0; m < MW; ++m) {
          std::memcpy(wt[m], wr[m] + L::kBytes * e, static_cast<size_t>(L::kBytes * count)), wp[m] = wt[m];
        }
        for (int i = 0; i < R; ++i) {
          std::memcpy(xt[i], xr[i0 + i] + xbytes * e, static_cast<size_t>(xbytes * count)), xp[i] = xt[i];
        }
        fma(wp, xp);
      }
    };
    float_tile_passes<MW, NR, 2, 8, __m256>(n, step, [](__m256 v) { return hsum(v); }, out, stride);
  }
};

template <class L>
void gemm_float(const GemmArgs& a) {
  gemm_weight_row_groups<FloatTiles<L>>(a);
}

}  // namespace

void fill_table(KernelTable& t) {
  t.fn[static_cast<int>(DType::kQ2_K)] = gemm_row_tiles<Q23K<false>>;
  t.fn[static_cast<int>(DType::kQ3_K)] = gemm_row_tiles<Q23K<true>>;
  t.fn[static_cast<int>(DType::kQ4_K)] = gemm_row_tiles<Q45K<false>>;
  t.fn[static_cast<int>(DType::kIQ2_XXS)] = gemm_row_tiles<IQGrid<DType::kIQ2_XXS>>;
  t.fn[static_cast<int>(DType::kIQ2_XS)] = gemm_row_tiles<IQGrid<DType::kIQ2_XS>>;
  t.fn[static_cast<int>(DType::kIQ3_XXS)] = gemm_row_tiles<IQGrid<DType::kIQ3_XXS>>;
  t.fn[static_cast<int>(DType::kIQ2_S)] = gemm_row_tiles<IQGrid<DType::kIQ2_S>>;
  t.fn[static_cast<int>(DType::kIQ3_S)] = gemm_row_tiles<IQGrid<DType::kIQ3_S>>;
  t.fn[static_cast<int>(DType::kIQ1_S)] = gemm_row_tiles<IQ1<false>>;
  t.fn[static_cast<int>(DType::kIQ1_M)] = gemm_row_tiles<IQ1<true>>;
  t.fn[static_cast<int>(DType::kQ5_K)] = gemm_row_tiles<Q45K<true>>;
  t.fn[static_cast<int>(DType::kQ6_K)] = gemm_row_tiles<Q6K>;
  t.fn[static_cast<int>(DType::kIQ4_XS)] = gemm_row_tiles<IQ4XS>;
  t.fn[static_cast<int>(DType::kQ8_0)] = gemm_row_tiles<Q80>;
  t.fn[static_cast<int>(DType::kQ4_0)] = gemm_row_tiles<Q40<false>>;
  t.fn[static_cast<int>(DType::kIQ4_NL)] = gemm_row_tiles<Q40<true>>;
  t.fn[static_cast<int>(DType::kF32)] = gemm_float<LoadF32>;
  t.fn[static_cast<int>(DType::kF16)] = gemm_float<LoadF16>;
  t.fn[static_cast<int>(DType::kBF16)] = gemm_float<LoadBF16>;
  fill_packed(t);
}

}  // namespace strata::qgemm_detail::avx2

namespace strata::qgemm_detail {

namespace {

KernelTable make_avx2(bool vnni) {
  KernelTable k{vnni ? "avx2-vnni" : "avx2", {}, {}};
  avx2::fill_table(k);
  if (vnni) avx2_vnni::fill_table(k);
  return k;
}

}  // namespace

const KernelTable& avx2_kernels(bool vnni) {
  static const KernelTable tables[2] = {make_avx2(false), make_avx2(true)};
  return tables[vnni ? 1 : 0];
}

}  // namespace strata::qgemm_detail
