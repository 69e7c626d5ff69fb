// Portable qgemm kernels: the exact integer block math of every supported
// weight type against ActPack activations. They are the reference the SIMD
// paths are tested against, so they favour plainness over speed: per
// (weight row, activation row) pair, the integer sum of each block is exact
// and is scaled and accumulated in block order.
#include <bit>
#include <cstring>
#include <type_traits>

#include "cpu_kernels/iq_grids.h"
#include "cpu_kernels/qgemm_internal.h"
#include "runtime/base/half.h"

namespace strata::qgemm_detail {
namespace {

// Q4_K: x = d*sc*q - dmin*m per sub-block of 32, q in [0,16). Q5_K is the
// same with a 5th bit (bit j of qh[l] for sub-block j).
template <class Block>
float dot_k4_family(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  constexpr bool kFifthBit = std::is_same_v<Block, BlockQ5_K>;
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  const int16_t* xs = x.bsums(r);
  float sumf = 0.0f, summ = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(Block), xq += kQK_K, xs += 16) {
    Block blk;
    std::memcpy(&blk, w, sizeof blk);
    uint8_t sc[8], m[8];
    unpack_scale_min_k4(blk.scales, sc, m);
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      const uint8_t* qs = blk.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      const int8_t* a = xq + 32 * kQ4KPairPos[j];
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) {
        int q = (qs[l] >> shift) & 0xF;
        if constexpr (kFifthBit) q |= ((blk.qh[l] >> j) & 1) << 4;
        s += q * a[l];
      }
      isum += sc[j] * s;
      msum += m[j] * (xs[2 * j] + xs[2 * j + 1]);
    }
    sumf += (f16_to_f32(blk.d) * xd[b]) * static_cast<float>(isum);
    summ += (f16_to_f32(blk.dmin) * xd[b]) * static_cast<float>(msum);
  }
  return sumf - summ;
}

float dot_q4_k(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  return dot_k4_family<BlockQ4_K>(w, x, r, nb);
}

float dot_q5_k(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  return dot_k4_family<BlockQ5_K>(w, x, r, nb);
}

// Q2_K: x = d*(sc & 15)*q - dmin*(sc >> 4) per sub-block of 16, q in [0,4):
// element 32k + l of each 128-element half is bits 2k..2k+1 of that half's
// qs byte l (k < 4, l < 32), so sub-block s covers elements 16s..16s+15.
float dot_q2_k(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  const int16_t* xs = x.bsums(r);
  float sumf = 0.0f, summ = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockQ2_K), xq += kQK_K, xs += 16) {
    BlockQ2_K blk;
    std::memcpy(&blk, w, sizeof blk);
    int32_t isum = 0, msum = 0;
    for (int is = 0; is < 16; ++is) {
      const int half = is / 8, k = is % 8 / 2;
      int32_t s = 0;
      for (int l = 16 * (is % 2); l < 16 * (is % 2) + 16; ++l) {
        s += ((blk.qs[32 * half + l] >> (2 * k)) & 3) * xq[128 * half + 32 * k + l];
      }
      isum += (blk.scales[is] & 0xF) * s;
      msum += (blk.scales[is] >> 4) * xs[is];
    }
    sumf += (f16_to_f32(blk.d) * xd[b]) * static_cast<float>(isum);
    summ += (f16_to_f32(blk.dmin) * xd[b]) * static_cast<float>(msum);
  }
  return sumf - summ;
}

// Q3_K: x = d*(sc - 32)*(q - 4 (1 - h)) per sub-block of 16, q as Q2_K's and
// h bit e / 32 of hmask byte e % 32 for element e. Computed as (q + 4h) - 4,
// the -4 folded in through the 16-element activation sums.
float dot_q3_k(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  const int16_t* xs = x.bsums(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockQ3_K), xq += kQK_K, xs += 16) {
    BlockQ3_K blk;
    std::memcpy(&blk, w, sizeof blk);
    int32_t isum = 0;
    for (int is = 0; is < 16; ++is) {
      const int half = is / 8, k = is % 8 / 2;
      int32_t s = 0;
      for (int l = 16 * (is % 2); l < 16 * (is % 2) + 16; ++l) {
        const int q = ((blk.qs[32 * half + l] >> (2 * k)) & 3) | (((blk.hmask[l] >> (4 * half + k)) & 1) << 2);
        s += q * xq[128 * half + 32 * k + l];
      }
      const int lo = is < 8 ? blk.scales[is] & 0xF : blk.scales[is - 8] >> 4;
      const int hi = (blk.scales[8 + is % 4] >> (2 * (is / 4))) & 3;
      isum += ((lo | (hi << 4)) - 32) * (s - 4 * xs[is]);
    }
    sumf += (f16_to_f32(blk.d) * xd[b]) * static_cast<float>(isum);
  }
  return sumf;
}

// The codebook i-quants: each group of 8 weights (IQ3_XXS: two groups of 4)
// is a grid entry of unsigned magnitudes times the signs of its sign byte,
// scaled per 32 (IQ2_XS: per 16) by d * (2s + 1) / 8 (IQ3_XXS: / 4). The
// sign byte is 7 stored bits and an 8th that makes the negatives even.
// sign_of(byte, j): the sign of weight j of a group (bit j set: negative).
uint32_t iq_sign_byte(uint32_t s7) { return s7 | ((std::popcount(s7) & 1u) << 7); }
int sign_of(uint32_t byte, int j) { return (byte >> j) & 1 ? -1 : 1; }
int iq_sign(uint32_t s7, int j) { return sign_of(iq_sign_byte(s7), j); }

// IQ2_XXS: per 32 weights two uint32, the first 4 grid indices (bytes), the
// second 4 x 7 sign bits and the 4-bit scale on top.
float dot_iq2_xxs(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockIQ2_XXS), xq += kQK_K) {
    int32_t isum = 0;
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t idx = load_u32(w + 2 + 8 * ib), aux = load_u32(w + 6 + 8 * ib);
      int32_t s = 0;
      for (int l = 0; l < 4; ++l) {
        const uint64_t g = iq_grids::kGridIQ2XXS[(idx >> (8 * l)) & 0xFF];
        for (int j = 0; j < 8; ++j) {
          s += iq_sign((aux >> (7 * l)) & 127, j) * int((g >> (8 * j)) & 0xFF) * xq[32 * ib + 8 * l + j];
        }
      }
      isum += int32_t(2 * (aux >> 28) + 1) * s;
    }
    sumf += (f16_to_f32(load_u16(w)) * xd[b]) * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

// IQ3_XXS: 64 grid indices (4 weights each), then per 32 weights a uint32 of
// 4 x 7 sign bits (one per 8 weights) and the 4-bit scale on top.
float dot_iq3_xxs(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockIQ3_XXS), xq += kQK_K) {
    int32_t isum = 0;
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t aux = load_u32(w + 66 + 4 * ib);
      int32_t s = 0;
      for (int e = 0; e < 32; ++e) {
        const uint32_t g = iq_grids::kGridIQ3XXS[w[2 + 8 * ib + e / 4]];
        s += iq_sign((aux >> (7 * (e / 8))) & 127, e % 8) * int((g >> (8 * (e % 4))) & 0xFF) * xq[32 * ib + e];
      }
      isum += int32_t(2 * (aux >> 28) + 1) * s;
    }
    sumf += (f16_to_f32(load_u16(w)) * xd[b]) * static_cast<float>(isum);
  }
  return 0.25f * sumf;
}

// IQ2_XS and IQ2_S (kS): per 8 weights a grid entry and a sign byte; per 32
// a scale byte, low nibble for the first 16. IQ2_XS: a uint16 per 8, 9-bit
// grid index | 7 sign bits << 9. IQ2_S: 10-bit indices (qs byte, 2 more bits
// from qh) and sign bytes stored whole.
template <bool kS>
float dot_iq2_xs_family(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += kS ? sizeof(BlockIQ2_S) : sizeof(BlockIQ2_XS), xq += kQK_K) {
    int32_t isum = 0;
    for (int g8 = 0; g8 < 32; ++g8) {
      uint64_t g;
      uint32_t signs;
      if constexpr (kS) {
        g = iq_grids::kGridIQ2S[w[2 + g8] | (((w[66 + g8 / 4] >> (2 * (g8 % 4))) & 3) << 8)];
        signs = w[34 + g8];
      } else {
        const uint16_t q = load_u16(w + 2 + 2 * g8);
        g = iq_grids::kGridIQ2XS[q & 511];
        signs = iq_sign_byte(q >> 9);
      }
      int32_t s = 0;
      for (int j = 0; j < 8; ++j) s += sign_of(signs, j) * int((g >> (8 * j)) & 0xFF) * xq[8 * g8 + j];
      const uint8_t sc = w[(kS ? 74 : 66) + g8 / 4];
      isum += (2 * ((g8 / 2) % 2 ? sc >> 4 : sc & 0xF) + 1) * s;
    }
    sumf += (f16_to_f32(load_u16(w)) * xd[b]) * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

// IQ3_S: 64 grid entries of 4 with 9-bit indices (qs byte, bit e of qh byte
// ib for entry e of sub-block ib), explicit sign bytes, and per 32 a scale
// nibble: x = d * (2s + 1) * grid value * sign.
float dot_iq3_s(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockIQ3_S), xq += kQK_K) {
    int32_t isum = 0;
    for (int ib = 0; ib < 8; ++ib) {
      const uint8_t qh = w[66 + ib];
      int32_t s = 0;
      for (int e = 0; e < 32; ++e) {
        const uint32_t g = iq_grids::kGridIQ3S[w[2 + 8 * ib + e / 4] | (((qh >> (e / 4)) & 1) << 8)];
        s += sign_of(w[74 + 4 * ib + e / 8], e % 8) * int((g >> (8 * (e % 4))) & 0xFF) * xq[32 * ib + e];
      }
      isum += (2 * ((w[106 + ib / 2] >> (4 * (ib % 2))) & 0xF) + 1) * s;
    }
    sumf += (f16_to_f32(load_u16(w)) * xd[b]) * static_cast<float>(isum);
  }
  return sumf;
}

// IQ1_S and IQ1_M: each group of 8 weights is a grid entry of -1/0/+1 plus
// a shift of +-1/8, scaled by d * (2s + 1); computed as 8g +- 1 in integers
// and /8 at the end.
// IQ1_S: per 32 a uint16 of 4 x 3 high index bits, the 3-bit scale and the
// shift's sign on top.
float dot_iq1_s(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockIQ1_S), xq += kQK_K) {
    int32_t isum = 0;
    for (int ib = 0; ib < 8; ++ib) {
      const uint16_t qh = load_u16(w + 34 + 2 * ib);
      const int shift = qh & 0x8000 ? -1 : 1;
      int32_t s = 0;
      for (int l = 0; l < 4; ++l) {
        const uint64_t g = iq_grids::kGridIQ1S[w[2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)];
        for (int j = 0; j < 8; ++j) s += (8 * int8_t((g >> (8 * j)) & 0xFF) + shift) * xq[32 * ib + 8 * l + j];
      }
      isum += (2 * ((qh >> 12) & 7) + 1) * s;
    }
    sumf += (f16_to_f32(load_u16(w)) * xd[b]) * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

// IQ1_M: per group k of 8 the qh nibble k holds 3 high index bits and the
// shift's sign; per 16 weights (m) a 3-bit scale at bits 3 (m % 4) of scale
// word m / 4, whose top nibbles are d.
float dot_iq1_m(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockIQ1_M), xq += kQK_K) {
    int32_t isum = 0;
    for (int k = 0; k < 32; ++k) {
      const int nib = (w[32 + k / 2] >> (4 * (k % 2))) & 0xF;
      const uint64_t g = iq_grids::kGridIQ1S[w[k] | ((nib & 7) << 8)];
      const int shift = nib & 8 ? -1 : 1;
      int32_t s = 0;
      for (int j = 0; j < 8; ++j) s += (8 * int8_t((g >> (8 * j)) & 0xFF) + shift) * xq[8 * k + j];
      const int m = k / 2;
      isum += (2 * ((load_u16(w + 48 + 2 * (m / 4)) >> (3 * (m % 4))) & 7) + 1) * s;
    }
    sumf += (f16_to_f32(iq1m_d_bits(w + 48)) * xd[b]) * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

// Q6_K: x = d*sc*(q - 32) per sub-block of 16; the -32 is folded in through
// the 16-element activation sums.
float dot_q6_k(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  const int16_t* xs = x.bsums(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockQ6_K), xq += kQK_K, xs += 16) {
    BlockQ6_K blk;
    std::memcpy(&blk, w, sizeof blk);
    int32_t isum = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = blk.ql + 64 * half;
      const uint8_t* qh = blk.qh + 32 * half;
      for (int k = 0; k < 4; ++k) {  // element 32k + l of this half
        for (int h16 = 0; h16 < 2; ++h16) {
          int32_t s = 0;
          for (int l = 16 * h16; l < 16 * h16 + 16; ++l) {
            const int lo = (ql[l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF;
            const int hi = (qh[l] >> (2 * k)) & 3;
            s += (lo | (hi << 4)) * xq[128 * half + 32 * k + l];
          }
          const int is = 8 * half + 2 * k + h16;
          isum += blk.scales[is] * (s - 32 * xs[is]);
        }
      }
    }
    sumf += (f16_to_f32(blk.d) * xd[b]) * static_cast<float>(isum);
  }
  return sumf;
}

// IQ4_XS: x = d*(ls-32)*kValuesIQ4NL[q] per sub-block of 32.
float dot_iq4_xs(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockIQ4_XS), xq += kQK_K) {
    BlockIQ4_XS blk;
    std::memcpy(&blk, w, sizeof blk);
    int32_t isum = 0;
    for (int j = 0; j < 8; ++j) {
      // ActOrder::kIQ4Halves: per 128, the low 16 of sub-blocks 0-3 then their high 16.
      const int8_t* lo = xq + 128 * (j / 4) + 16 * (j % 4);
      const int8_t* hi = lo + 64;
      const uint8_t* qs = blk.qs + 16 * j;
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) s += kValuesIQ4NL[qs[l] & 0xF] * lo[l] + kValuesIQ4NL[qs[l] >> 4] * hi[l];
      isum += iq4xs_scale(blk.scales_h, blk.scales_l, j) * s;
    }
    sumf += (f16_to_f32(blk.d) * xd[b]) * static_cast<float>(isum);
  }
  return sumf;
}

float dot_q8_0(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockQ8_0), xq += 32) {
    BlockQ8_0 blk;
    std::memcpy(&blk, w, sizeof blk);
    int32_t s = 0;
    for (int l = 0; l < 32; ++l) s += blk.qs[l] * xq[l];
    sumf += (f16_to_f32(blk.d) * xd[b]) * static_cast<float>(s);
  }
  return sumf;
}

// Q4_0: x = d*(q-8); byte l holds element l (low nibble) and l+16 (high).
// IQ4_NL (kNL): the same layout with x = d*kValuesIQ4NL[q].
template <bool kNL>
float dot_q4_0_family(const uint8_t* w, const ActPack& x, int64_t r, int64_t nb) {
  const auto value = [](int q) { return kNL ? int(kValuesIQ4NL[q]) : q - 8; };
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += sizeof(BlockQ4_0)) {
    BlockQ4_0 blk;
    std::memcpy(&blk, w, sizeof blk);
    // ActOrder::kQ4_0Halves: a pair of blocks is (lo0, lo1, hi0, hi1) in 16s;
    // a lone trailing block is natural (lo, hi).
    const int64_t pair = b / 2;
    const bool paired = 2 * pair + 1 < nb;
    const int8_t* lo = paired ? xq + 64 * pair + 16 * (b % 2) : xq + 32 * b;
    const int8_t* hi = paired ? lo + 32 : lo + 16;
    int32_t s = 0;
    for (int l = 0; l < 16; ++l) s += value(blk.qs[l] & 0xF) * lo[l] + value(blk.qs[l] >> 4) * hi[l];
    sumf += (f16_to_f32(blk.d) * xd[b]) * static_cast<float>(s);
  }
  return sumf;
}

// Float weights: 8 running sums, combined pairwise at the end (as dot_f32).
template <typename Load>
float dot_float(Load load, const float* a, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) acc[i & 7] += load(i) * a[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

float dot_f32w(const uint8_t* w, const ActPack& x, int64_t r, int64_t n) {
  return dot_float([w](int64_t i) { float v; std::memcpy(&v, w + 4 * i, 4); return v; }, x.f32(r), n);
}
float dot_f16w(const uint8_t* w, const ActPack& x, int64_t r, int64_t n) {
  return dot_float([w](int64_t i) { return f16_to_f32(load_u16(w + 2 * i)); }, x.f32(r), n);
}
// bf16 x bf16 products are exact in f32; only the accumulation rounds.
float dot_bf16w(const uint8_t* w, const ActPack& x, int64_t r, int64_t n) {
  const uint16_t* a = x.bf16(r);
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) acc[i & 7] += bf16_to_f32(load_u16(w + 2 * i)) * bf16_to_f32(a[i]);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

using DotFn = float (*)(const uint8_t*, const ActPack&, int64_t, int64_t);

template <DotFn Dot, int Block>
void gemm(const GemmArgs& a) {
  const int64_t nb = a.n_in / Block;
  for (int64_t o = a.o_begin; o < a.o_end; ++o) {
    const uint8_t* wr = a.w + static_cast<size_t>(o) * a.row_bytes;
    for (int64_t r = a.r_begin; r < a.r_end; ++r) {
      a.y[(r - a.r_begin) * a.y_stride + (o - a.o_begin)] = Dot(wr, *a.x, r, nb);
    }
  }
}

// Packed kernels (qgemm_packed.h): lane `lane` of each 16-row group against
// row r, with the arithmetic of the GGUF kernel of the type, operation for
// operation, so the two agree bit for bit.
using PackedDotFn = float (*)(const uint8_t* grp, int lane, const ActPack& x, int64_t r, int64_t nb);

template <PackedDotFn Dot>
void gemm_packed(const GemmArgs& a) {
  const int64_t nb = a.n_in / kQK_K;
  for (int64_t o = a.o_begin; o < a.o_end; ++o) {
    const uint8_t* grp = a.w + static_cast<size_t>(o / kPackRows) * a.row_bytes;
    for (int64_t r = a.r_begin; r < a.r_end; ++r) {
      a.y[(r - a.r_begin) * a.y_stride + (o - a.o_begin)] = Dot(grp, static_cast<int>(o % kPackRows), *a.x, r, nb);
    }
  }
}

// As dot_q4_k and dot_q5_k.
template <bool kFifthBit>
float packed_dot_k4(const uint8_t* grp, int lane, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  const int16_t* xs = x.bsums(r);
  float sumf = 0.0f, summ = 0.0f;
  for (int64_t b = 0; b < nb; ++b, xq += kQK_K, xs += 16) {
    using P = std::conditional_t<kFifthBit, PackedQ5K, PackedQ4K>;
    const uint8_t* p = grp + b * P::kBytes;
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      const int8_t* act = xq + 32 * kQ4KPairPos[j];
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) {
        int q = packed_nibble(p + P::kQs + 256 * j, lane, l);
        if constexpr (kFifthBit) {
          q |= ((p[P::kQh + 64 * j + 4 * lane + (l % 4)] >> (2 * (l / 8) + (l % 8) / 4)) & 1) << 4;
        }
        s += q * act[l];
      }
      isum += p[PackedQ4K::kSc + 16 * j + lane] * s;
      msum += p[PackedQ4K::kMin + 32 * (j / 2) + 2 * lane + (j % 2)] * (xs[2 * j] + xs[2 * j + 1]);
    }
    const float d = f16_to_f32(load_u16(p + PackedQ4K::kD + 2 * lane));
    const float dmin = f16_to_f32(load_u16(p + PackedQ4K::kDmin + 2 * lane));
    sumf += (d * xd[b]) * static_cast<float>(isum);
    summ += (dmin * xd[b]) * static_cast<float>(msum);
  }
  return sumf - summ;
}

// As dot_q2_k and dot_q3_k (kQ3).
template <bool kQ3>
float packed_dot_q23k(const uint8_t* grp, int lane, const ActPack& x, int64_t r, int64_t nb) {
  using P = std::conditional_t<kQ3, PackedQ3K, PackedQ2K>;
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  const int16_t* xs = x.bsums(r);
  float sumf = 0.0f, summ = 0.0f;
  for (int64_t b = 0; b < nb; ++b, xq += kQK_K, xs += 16) {
    const uint8_t* p = grp + b * P::kBytes;
    int32_t isum = 0, msum = 0;
    for (int is = 0; is < 16; ++is) {
      const int j = is / 2, u = is % 2;
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) {
        int q = packed_q23k_low(p, j, u, lane, l);
        if constexpr (kQ3) q |= packed_q3k_high(p, j, u, lane, l) << 2;
        s += q * xq[16 * is + l];
      }
      const uint8_t sc = p[P::kSc + packed_sub_scale(is, lane)];
      if constexpr (kQ3) {
        isum += static_cast<int8_t>(sc) * (s - 4 * xs[is]);
      } else {
        isum += (sc & 0xF) * s;
        msum += (sc >> 4) * xs[is];
      }
    }
    sumf += (f16_to_f32(load_u16(p + P::kD + 2 * lane)) * xd[b]) * static_cast<float>(isum);
    if constexpr (!kQ3) {
      summ += (f16_to_f32(load_u16(p + PackedQ2K::kDmin + 2 * lane)) * xd[b]) * static_cast<float>(msum);
    }
  }
  return sumf - summ;
}

// As dot_q6_k.
float packed_dot_q6_k(const uint8_t* grp, int lane, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  const int16_t* xs = x.bsums(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, xq += kQK_K, xs += 16) {
    const uint8_t* p = grp + b * PackedQ6K::kBytes;
    int32_t isum = 0;
    for (int is = 0; is < 16; ++is) {  // sub-blocks of 16
      const int j = is / 2;
      int32_t s = 0;
      for (int l = 16 * (is % 2); l < 16 * (is % 2) + 16; ++l) {
        const int c = l / 8, t = l % 4, upper = (l % 8) / 4;
        const uint8_t lo = p[PackedQ6K::kQl + 256 * j + 64 * c + 4 * lane + t];
        const uint8_t hb = p[PackedQ6K::kQh + 128 * j + 64 * (c / 2) + 4 * lane + t];
        const int q = ((lo >> (4 * upper)) & 0xF) | (((hb >> (4 * (c % 2) + 2 * upper)) & 3) << 4);
        s += q * xq[32 * j + l];
      }
      const int sc = static_cast<int8_t>(p[PackedQ6K::kSc + packed_sub_scale(is, lane)]);
      isum += sc * (s - 32 * xs[is]);
    }
    sumf += (f16_to_f32(load_u16(p + PackedQ6K::kD + 2 * lane)) * xd[b]) * static_cast<float>(isum);
  }
  return sumf;
}

// As dot_q8_0 (quants stored + 128).
float packed_dot_q8_0(const uint8_t* grp, int lane, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = grp + b * PackedQ8_0::kBytes;
    for (int j = 0; j < 8; ++j, xq += 32) {
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) {
        s += (static_cast<int>(p[PackedQ8_0::kQs + 512 * j + 64 * (l / 4) + 4 * lane + l % 4]) - 128) * xq[l];
      }
      sumf += (f16_to_f32(load_u16(p + PackedQ8_0::kD + 32 * j + 2 * lane)) * xd[8 * b + j]) * static_cast<float>(s);
    }
  }
  return sumf;
}

// As dot_q4_0_family<false> (n_in is a multiple of 256, so every block is paired).
float packed_dot_q4_0(const uint8_t* grp, int lane, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < 8 * nb; ++b) {
    const uint8_t* p = grp + (b / 8) * PackedQ4_0::kBytes;
    const uint8_t* qs = p + PackedQ4_0::kQs + 256 * (b % 8) + 4 * lane;
    const int8_t* lo = xq + 64 * (b / 2) + 16 * (b % 2);
    const int8_t* hi = lo + 32;
    int32_t s = 0;
    for (int l = 0; l < 16; ++l) {
      const uint8_t q = qs[64 * (l / 4) + l % 4];
      s += ((q & 0xF) - 8) * lo[l] + ((q >> 4) - 8) * hi[l];
    }
    sumf += (f16_to_f32(load_u16(p + PackedQ4_0::kD + 32 * (b % 8) + 2 * lane)) * xd[b]) * static_cast<float>(s);
  }
  return sumf;
}

// As dot_iq4_xs (quant l of sub-block j is element 32 j + l; the activations
// are in ActOrder::kIQ4Halves).
float packed_dot_iq4_xs(const uint8_t* grp, int lane, const ActPack& x, int64_t r, int64_t nb) {
  const int8_t* xq = x.q(r);
  const float* xd = x.d(r);
  float sumf = 0.0f;
  for (int64_t b = 0; b < nb; ++b, xq += kQK_K) {
    const uint8_t* p = grp + b * PackedIQ4XS::kBytes;
    int32_t isum = 0;
    for (int j = 0; j < 8; ++j) {
      const int8_t* lo = xq + 128 * (j / 4) + 16 * (j % 4);
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) {
        const int v = kValuesIQ4NL[packed_nibble(p + PackedIQ4XS::kQs + 256 * j, lane, l)];
        s += v * (l < 16 ? lo[l] : lo[64 + l - 16]);
      }
      isum += (p[PackedIQ4XS::kSc + 16 * j + lane] - 32) * s;
    }
    sumf += (f16_to_f32(load_u16(p + PackedIQ4XS::kD + 2 * lane)) * xd[b]) * static_cast<float>(isum);
  }
  return sumf;
}

KernelTable make_table() {
  KernelTable t{"scalar", {}, {}};
  t.fn[static_cast<int>(DType::kQ2_K)] = gemm<dot_q2_k, kQK_K>;
  t.fn[static_cast<int>(DType::kQ3_K)] = gemm<dot_q3_k, kQK_K>;
  t.fn[static_cast<int>(DType::kQ4_K)] = gemm<dot_q4_k, kQK_K>;
  t.fn[static_cast<int>(DType::kIQ2_XXS)] = gemm<dot_iq2_xxs, kQK_K>;
  t.fn[static_cast<int>(DType::kIQ2_XS)] = gemm<dot_iq2_xs_family<false>, kQK_K>;
  t.fn[static_cast<int>(DType::kIQ3_XXS)] = gemm<dot_iq3_xxs, kQK_K>;
  t.fn[static_cast<int>(DType::kIQ2_S)] = gemm<dot_iq2_xs_family<true>, kQK_K>;
  t.fn[static_cast<int>(DType::kIQ3_S)] = gemm<dot_iq3_s, kQK_K>;
  t.fn[static_cast<int>(DType::kIQ1_S)] = gemm<dot_iq1_s, kQK_K>;
  t.fn[static_cast<int>(DType::kIQ1_M)] = gemm<dot_iq1_m, kQK_K>;
  t.fn[static_cast<int>(DType::kQ5_K)] = gemm<dot_q5_k, kQK_K>;
  t.fn[static_cast<int>(DType::kQ6_K)] = gemm<dot_q6_k, kQK_K>;
  t.fn[static_cast<int>(DType::kIQ4_XS)] = gemm<dot_iq4_xs, kQK_K>;
  t.fn[static_cast<int>(DType::kQ8_0)] = gemm<dot_q8_0, 32>;
  t.fn[static_cast<int>(DType::kQ4_0)] = gemm<dot_q4_0_family<false>, 32>;
  t.fn[static_cast<int>(DType::kIQ4_NL)] = gemm<dot_q4_0_family<true>, 32>;
  t.fn[static_cast<int>(DType::kF32)] = gemm<dot_f32w, 1>;
  t.fn[static_cast<int>(DType::kF16)] = gemm<dot_f16w, 1>;
  t.fn[static_cast<int>(DType::kBF16)] = gemm<dot_bf16w, 1>;
  t.packed[static_cast<int>(DType::kQ2_K)] = gemm_packed<packed_dot_q23k<false>>;
  t.packed[static_cast<int>(DType::kQ3_K)] = gemm_packed<packed_dot_q23k<true>>;
  t.packed[static_cast<int>(DType::kQ4_K)] = gemm_packed<packed_dot_k4<false>>;
  t.packed[static_cast<int>(DType::kQ5_K)] = gemm_packed<packed_dot_k4<true>>;
  t.packed[static_cast<int>(DType::kQ6_K)] = gemm_packed<packed_dot_q6_k>;
  t.packed[static_cast<int>(DType::kQ8_0)] = gemm_packed<packed_dot_q8_0>;
  t.packed[static_cast<int>(DType::kIQ4_XS)] = gemm_packed<packed_dot_iq4_xs>;
  t.packed[static_cast<int>(DType::kQ4_0)] = gemm_packed<packed_dot_q4_0>;
  return t;
}

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable t = make_table();
  return t;
}

}  // namespace strata::qgemm_detail
