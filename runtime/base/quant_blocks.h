// GGUF quantized block layouts, byte-for-byte as stored in files. Plain
// structs of fixed-width integers so host C++ and CUDA share them; halves are
// stored as their raw 16 bits (see half.h for conversion).
#pragma once

#include <cstdint>

namespace strata {

using f16_bits = uint16_t;  // IEEE binary16 bit pattern

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK4_NL = 32;
inline constexpr int kQK_MXFP4 = 32;
inline constexpr int kQK_NVFP4 = 64;
inline constexpr int kQK1_0 = 128;
inline constexpr int kQK_K = 256;       // super-block of the k-quants
inline constexpr int kKScaleBytes = 12;  // packed 6-bit scales/mins of Q4_K/Q5_K

// x = d * (q - 8), q in [0,16); qs[j] holds element j (low nibble) and j+16 (high).
struct BlockQ4_0 { f16_bits d; uint8_t qs[kQK4_0 / 2]; };
// x = d * q + m
struct BlockQ4_1 { f16_bits d; f16_bits m; uint8_t qs[kQK4_1 / 2]; };
// 5th bit of element j in bit j of qh (little-endian uint32); x = d * (q - 16)
struct BlockQ5_0 { f16_bits d; uint8_t qh[4]; uint8_t qs[kQK5_0 / 2]; };
struct BlockQ5_1 { f16_bits d; f16_bits m; uint8_t qh[4]; uint8_t qs[kQK5_1 / 2]; };
struct BlockQ8_0 { f16_bits d; int8_t qs[kQK8_0]; };
// s = d * sum(qs): lets integer dot products fold in a Q4_1/Q5_1 offset.
struct BlockQ8_1 { f16_bits d; f16_bits s; int8_t qs[kQK8_1]; };

// 16 sub-blocks of 16; scales[i] = 4-bit scale | 4-bit min << 4.
struct BlockQ2_K { uint8_t scales[kQK_K / 16]; uint8_t qs[kQK_K / 4]; f16_bits d; f16_bits dmin; };
// 16 sub-blocks of 16; 6-bit signed scales packed in 12 bytes; hmask holds bit 3.
struct BlockQ3_K { uint8_t hmask[kQK_K / 8]; uint8_t qs[kQK_K / 4]; uint8_t scales[12]; f16_bits d; };
// 8 sub-blocks of 32; 6-bit scales and mins packed in 12 bytes.
struct BlockQ4_K { f16_bits d; f16_bits dmin; uint8_t scales[kKScaleBytes]; uint8_t qs[kQK_K / 2]; };
struct BlockQ5_K { f16_bits d; f16_bits dmin; uint8_t scales[kKScaleBytes]; uint8_t qh[kQK_K / 8]; uint8_t qs[kQK_K / 2]; };
// 16 sub-blocks of 16 with int8 scales; 6-bit quants split into ql (4 bits) and qh (2 bits).
struct BlockQ6_K { uint8_t ql[kQK_K / 2]; uint8_t qh[kQK_K / 4]; int8_t scales[kQK_K / 16]; f16_bits d; };
// Activation format for k-quant dot products; bsums are sums of groups of 16.
struct BlockQ8_K { float d; int8_t qs[kQK_K]; int16_t bsums[kQK_K / 16]; };

// The i-quants use codebook grids; layouts only, decoding lives in cpu_kernels.
struct BlockIQ2_XXS { f16_bits d; uint16_t qs[kQK_K / 8]; };
struct BlockIQ2_XS { f16_bits d; uint16_t qs[kQK_K / 8]; uint8_t scales[kQK_K / 32]; };
struct BlockIQ2_S { f16_bits d; uint8_t qs[kQK_K / 4]; uint8_t qh[kQK_K / 32]; uint8_t scales[kQK_K / 32]; };
struct BlockIQ3_XXS { f16_bits d; uint8_t qs[3 * kQK_K / 8]; };
struct BlockIQ3_S { f16_bits d; uint8_t qs[kQK_K / 4]; uint8_t qh[kQK_K / 32]; uint8_t signs[kQK_K / 8]; uint8_t scales[kQK_K / 64]; };
struct BlockIQ1_S { f16_bits d; uint8_t qs[kQK_K / 8]; uint16_t qh[kQK_K / 32]; };
struct BlockIQ1_M { uint8_t qs[kQK_K / 8]; uint8_t qh[kQK_K / 16]; uint8_t scales[kQK_K / 32]; };
// IQ1_M has no d field: its f16 bits are the top nibbles of the four
// little-endian uint16 scale words (word k's bits 12-15 are d's bits 4k..4k+3).
inline uint16_t iq1m_d_bits(const uint8_t* scales) {
  uint16_t d = 0;
  for (int k = 0; k < 4; ++k) d |= static_cast<uint16_t>((scales[2 * k + 1] >> 4) << (4 * k));
  return d;
}
inline void set_iq1m_d_bits(uint8_t* scales, uint16_t d) {
  for (int k = 0; k < 4; ++k) {
    scales[2 * k + 1] = static_cast<uint8_t>((scales[2 * k + 1] & 0x0F) | (((d >> (4 * k)) & 0xF) << 4));
  }
}
// Non-linear 4-bit: x = d * kvalues_iq4nl[q].
struct BlockIQ4_NL { f16_bits d; uint8_t qs[kQK4_NL / 2]; };
// 8 sub-blocks of 32 with 6-bit scales split into scales_l (4 bits) and scales_h (2 bits).
struct BlockIQ4_XS { f16_bits d; uint16_t scales_h; uint8_t scales_l[kQK_K / 64]; uint8_t qs[kQK_K / 2]; };
struct BlockTQ1_0 { uint8_t qs[(kQK_K - 4 * kQK_K / 64) / 5]; uint8_t qh[kQK_K / 64]; f16_bits d; };
struct BlockTQ2_0 { uint8_t qs[kQK_K / 4]; f16_bits d; };
struct BlockMXFP4 { uint8_t e; uint8_t qs[kQK_MXFP4 / 2]; };
// Four sub-blocks of 16, each with an unsigned E4M3 scale.
struct BlockNVFP4 { uint8_t d[4]; uint8_t qs[kQK_NVFP4 / 2]; };
// One sign bit per weight with one half-precision scale.
struct BlockQ1_0 { f16_bits d; uint8_t qs[kQK1_0 / 8]; };

// Sizes are the file format: a mismatch here corrupts every tensor.
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ2_XXS) == 66);
static_assert(sizeof(BlockIQ2_XS) == 74);
static_assert(sizeof(BlockIQ2_S) == 82);
static_assert(sizeof(BlockIQ3_XXS) == 98);
static_assert(sizeof(BlockIQ3_S) == 110);
static_assert(sizeof(BlockIQ1_S) == 50);
static_assert(sizeof(BlockIQ1_M) == 56);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockIQ4_XS) == 136);
static_assert(sizeof(BlockTQ1_0) == 54);
static_assert(sizeof(BlockTQ2_0) == 66);
static_assert(sizeof(BlockMXFP4) == 17);
static_assert(sizeof(BlockNVFP4) == 36);
static_assert(sizeof(BlockQ1_0) == 18);

// Non-linear 4-bit codebook shared by IQ4_NL and IQ4_XS.
inline constexpr int8_t kValuesIQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace strata
