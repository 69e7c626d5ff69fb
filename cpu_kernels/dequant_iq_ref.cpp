// Scalar dequantizers for the codebook ("grid") i-quants: IQ2_XXS, IQ2_XS,
// IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M; bit-exact with ggml's dequantize_row_*.
//
// Each group of 8 (IQ2, IQ1) or 4 (IQ3) weights is one codebook entry from
// iq_grids.h times a per-32 scale, with sign bits stored separately (IQ1 has
// no signs: its grid is {-1,0,1} plus a +-1/8 shift).
#include "cpu_kernels/iq_grids.h"
#include "cpu_kernels/quant_ref_internal.h"
#include "runtime/base/dtype.h"
#include "runtime/base/half.h"

namespace strata::quant_detail {
namespace {

using namespace iq_grids;

// The IQ2/IQ3 sign codes store 7 sign bits per 8 weights; the 8th is implied
// by even parity (an even number of negatives), which is what ggml's
// ksigns_iq2xs table spells out.
constexpr uint8_t even_parity_signs(uint32_t s7) {
  return static_cast<uint8_t>(s7 | ((std::popcount(s7) & 1u) << 7));
}

inline uint8_t grid_byte(uint64_t entry, int j) { return static_cast<uint8_t>(entry >> (8 * j)); }
inline float sign_of(uint8_t signs, int j) { return (signs >> j) & 1 ? -1.0f : 1.0f; }

constexpr float kIQ1Delta = 0.125f;

// IQ2_XXS: per 32 weights two uint32: bytes of the first are 4 grid indices,
// the second holds 4 x 7 sign bits and a 4-bit scale in the top nibble.
void dequant_iq2_xxs(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ2_XXS)) {
    const auto b = load_block<BlockIQ2_XXS>(src);
    const float d = f16_to_f32(b.d);
    const auto* qs = reinterpret_cast<const uint8_t*>(b.qs);
    for (int ib32 = 0; ib32 < kQK_K / 32; ++ib32) {
      const uint32_t idx = load_le<uint32_t>(qs + 8 * ib32);
      const uint32_t aux = load_le<uint32_t>(qs + 8 * ib32 + 4);
      const float db = d * (0.5f + (aux >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l) {
        const uint64_t grid = kGridIQ2XXS[(idx >> (8 * l)) & 0xFF];
        const uint8_t signs = even_parity_signs((aux >> (7 * l)) & 127);
        for (int j = 0; j < 8; ++j) *y++ = db * grid_byte(grid, j) * sign_of(signs, j);
      }
    }
  }
}

// IQ2_XS: per 8 weights a uint16 = 9-bit grid index | 7 sign bits << 9; two
// 4-bit scales per 32 (low nibble for the first 16 weights).
void dequant_iq2_xs(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ2_XS)) {
    const auto b = load_block<BlockIQ2_XS>(src);
    const float d = f16_to_f32(b.d);
    for (int ib32 = 0; ib32 < kQK_K / 32; ++ib32) {
      const float db[2] = {d * (0.5f + (b.scales[ib32] & 0xF)) * 0.25f, d * (0.5f + (b.scales[ib32] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const uint16_t q = b.qs[4 * ib32 + l];
        const uint64_t grid = kGridIQ2XS[q & 511];
        const uint8_t signs = even_parity_signs(q >> 9);
        for (int j = 0; j < 8; ++j) *y++ = db[l / 2] * grid_byte(grid, j) * sign_of(signs, j);
      }
    }
  }
}

// IQ2_S: qs[0..31] low 8 bits of 10-bit grid indices, qs[32..63] explicit
// sign bytes, qh[ib32] bits 2l..2l+1 the index's top 2 bits.
void dequant_iq2_s(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ2_S)) {
    const auto b = load_block<BlockIQ2_S>(src);
    const float d = f16_to_f32(b.d);
    const uint8_t* qs = b.qs;
    const uint8_t* signs = b.qs + kQK_K / 8;
    for (int ib32 = 0; ib32 < kQK_K / 32; ++ib32, qs += 4, signs += 4) {
      const float db[2] = {d * (0.5f + (b.scales[ib32] & 0xF)) * 0.25f, d * (0.5f + (b.scales[ib32] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const uint64_t grid = kGridIQ2S[qs[l] | ((b.qh[ib32] << (8 - 2 * l)) & 0x300)];
        for (int j = 0; j < 8; ++j) *y++ = db[l / 2] * grid_byte(grid, j) * sign_of(signs[l], j);
      }
    }
  }
}

// IQ3_XXS: qs[0..63] grid indices (4 weights each), then per 32 weights a
// uint32 of 4 x 7 sign bits and a 4-bit scale on top.
void dequant_iq3_xxs(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ3_XXS)) {
    const auto b = load_block<BlockIQ3_XXS>(src);
    const float d = f16_to_f32(b.d);
    const uint8_t* qs = b.qs;
    const uint8_t* scales_and_signs = b.qs + kQK_K / 4;
    for (int ib32 = 0; ib32 < kQK_K / 32; ++ib32, qs += 8) {
      const uint32_t aux = load_le<uint32_t>(scales_and_signs + 4 * ib32);
      const float db = d * (0.5f + (aux >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint8_t signs = even_parity_signs((aux >> (7 * l)) & 127);
        const uint32_t g1 = kGridIQ3XXS[qs[2 * l]];
        const uint32_t g2 = kGridIQ3XXS[qs[2 * l + 1]];
        for (int j = 0; j < 4; ++j) {
          y[j] = db * grid_byte(g1, j) * sign_of(signs, j);
          y[j + 4] = db * grid_byte(g2, j) * sign_of(signs, j + 4);
        }
      }
    }
  }
}

// IQ3_S: 9-bit grid indices (qs low 8 bits, qh bit k of byte ib32 for qs[k]
// of that 32), explicit sign bytes, odd 4-bit scales 1 + 2*s per 32.
void dequant_iq3_s(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ3_S)) {
    const auto b = load_block<BlockIQ3_S>(src);
    const float d = f16_to_f32(b.d);
    const uint8_t* qs = b.qs;
    const uint8_t* signs = b.signs;
    for (int ib32 = 0; ib32 < kQK_K / 32; ++ib32, qs += 8, signs += 4) {
      const int s4 = (b.scales[ib32 / 2] >> (4 * (ib32 % 2))) & 0xF;
      const float db = d * (1 + 2 * s4);
      const uint8_t qh = b.qh[ib32];
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint32_t g1 = kGridIQ3S[qs[2 * l] | ((qh << (8 - 2 * l)) & 256)];
        const uint32_t g2 = kGridIQ3S[qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256)];
        for (int j = 0; j < 4; ++j) {
          y[j] = db * grid_byte(g1, j) * sign_of(signs[l], j);
          y[j + 4] = db * grid_byte(g2, j) * sign_of(signs[l], j + 4);
        }
      }
    }
  }
}

// IQ1_S: 11-bit indices into a {-1,0,1} grid (qs low 8 bits, qh bits 3l..3l+2
// of the 32's uint16), a 3-bit odd scale in qh bits 12-14 and the sign of the
// +-1/8 shift in bit 15.
void dequant_iq1_s(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ1_S)) {
    const auto b = load_block<BlockIQ1_S>(src);
    const float d = f16_to_f32(b.d);
    const uint8_t* qs = b.qs;
    for (int ib = 0; ib < kQK_K / 32; ++ib, qs += 4) {
      const uint16_t qh = b.qh[ib];
      const float dl = d * (2 * ((qh >> 12) & 7) + 1);
      const float delta = (qh & 0x8000) ? -kIQ1Delta : kIQ1Delta;
      for (int l = 0; l < 4; ++l) {
        const uint64_t grid = kGridIQ1S[qs[l] | (((qh >> (3 * l)) & 7) << 8)];
        for (int j = 0; j < 8; ++j) *y++ = dl * (static_cast<int8_t>(grid_byte(grid, j)) + delta);
      }
    }
  }
}

// IQ1_M: no separate d; its f16 bits are the top nibbles of the four uint16
// scale words (word k's bits 12-15 are bits 4k..4k+3 of d). Each 16 weights
// has a 3-bit odd scale; per 8 weights qh nibble = 3 index bits | shift sign.
void dequant_iq1_m(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ1_M)) {
    const auto b = load_block<BlockIQ1_M>(src);
    uint16_t sc[4];
    for (int k = 0; k < 4; ++k) sc[k] = load_le<uint16_t>(b.scales + 2 * k);
    const float d = f16_to_f32(iq1m_d_bits(b.scales));
    const uint8_t* qs = b.qs;
    const uint8_t* qh = b.qh;
    for (int ib = 0; ib < kQK_K / 32; ++ib, qs += 4, qh += 2) {
      const float dl1 = d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 7) + 1);
      const float dl2 = d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1);
      const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                          qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
      const float delta[4] = {(qh[0] & 0x08) ? -kIQ1Delta : kIQ1Delta, (qh[0] & 0x80) ? -kIQ1Delta : kIQ1Delta,
                              (qh[1] & 0x08) ? -kIQ1Delta : kIQ1Delta, (qh[1] & 0x80) ? -kIQ1Delta : kIQ1Delta};
      for (int l = 0; l < 4; ++l) {
        const float dl = l < 2 ? dl1 : dl2;
        const uint64_t grid = kGridIQ1S[idx[l]];
        for (int j = 0; j < 8; ++j) *y++ = dl * (static_cast<int8_t>(grid_byte(grid, j)) + delta[l]);
      }
    }
  }
}

}  // namespace

bool is_iq_grid_type(DType t) {
  switch (t) {
    case DType::kIQ2_XXS:
    case DType::kIQ2_XS:
    case DType::kIQ2_S:
    case DType::kIQ3_XXS:
    case DType::kIQ3_S:
    case DType::kIQ1_S:
    case DType::kIQ1_M: return true;
    default: return false;
  }
}

bool dequantize_iq_grid_blocks(DType t, const uint8_t* src, float* dst, int64_t n_blocks) {
  switch (t) {
    case DType::kIQ2_XXS: dequant_iq2_xxs(src, dst, n_blocks); return true;
    case DType::kIQ2_XS: dequant_iq2_xs(src, dst, n_blocks); return true;
    case DType::kIQ2_S: dequant_iq2_s(src, dst, n_blocks); return true;
    case DType::kIQ3_XXS: dequant_iq3_xxs(src, dst, n_blocks); return true;
    case DType::kIQ3_S: dequant_iq3_s(src, dst, n_blocks); return true;
    case DType::kIQ1_S: dequant_iq1_s(src, dst, n_blocks); return true;
    case DType::kIQ1_M: dequant_iq1_m(src, dst, n_blocks); return true;
    default: return false;
  }
}

}  // namespace strata::quant_detail
