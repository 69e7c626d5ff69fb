// Scalar dequantizers for the plain, legacy, k-quant, IQ4, ternary and FP4
// GGUF types (the grid i-quants live in dequant_iq_ref.cpp), bit-exact with ggml.
//
// Every decoder keeps ggml's operation order (e.g. Q4_K is `(d*sc)*q - dmin*m`,
// Q6_K is `(d*sc)*q`), and this file is built with -ffp-contract=off, because
// fusing a multiply-add would change the last bit.
#include <cstring>

#include "cpu_kernels/quant_ref.h"
#include "cpu_kernels/quant_ref_internal.h"
#include "runtime/base/half.h"

namespace strata {
namespace {

using namespace quant_detail;

void dequant_f16(const uint8_t* src, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(load_le<uint16_t>(src + 2 * i));
}

void dequant_bf16(const uint8_t* src, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(load_le<uint16_t>(src + 2 * i));
}

// Legacy 32-element blocks: byte j holds element j (low nibble) and j+16 (high).
void dequant_q4_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ4_0), y += kQK4_0) {
    const auto b = load_block<BlockQ4_0>(src);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int x0 = (b.qs[j] & 0x0F) - 8;
      const int x1 = (b.qs[j] >> 4) - 8;
      y[j] = x0 * d;
      y[j + kQK4_0 / 2] = x1 * d;
    }
  }
}

void dequant_q4_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ4_1), y += kQK4_1) {
    const auto b = load_block<BlockQ4_1>(src);
    const float d = f16_to_f32(b.d);
    const float m = f16_to_f32(b.m);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      const int x0 = b.qs[j] & 0x0F;
      const int x1 = b.qs[j] >> 4;
      y[j] = x0 * d + m;
      y[j + kQK4_1 / 2] = x1 * d + m;
    }
  }
}

// Q5: the 5th bit of element j is bit j of the little-endian uint32 qh.
void dequant_q5_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ5_0), y += kQK5_0) {
    const auto b = load_block<BlockQ5_0>(src);
    const float d = f16_to_f32(b.d);
    const uint32_t qh = load_le<uint32_t>(b.qh);
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const int h0 = ((qh >> j) & 1) << 4;
      const int h1 = ((qh >> (j + 16)) & 1) << 4;
      const int x0 = ((b.qs[j] & 0x0F) | h0) - 16;
      const int x1 = ((b.qs[j] >> 4) | h1) - 16;
      y[j] = x0 * d;
      y[j + kQK5_0 / 2] = x1 * d;
    }
  }
}

void dequant_q5_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ5_1), y += kQK5_1) {
    const auto b = load_block<BlockQ5_1>(src);
    const float d = f16_to_f32(b.d);
    const float m = f16_to_f32(b.m);
    const uint32_t qh = load_le<uint32_t>(b.qh);
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      const int h0 = ((qh >> j) & 1) << 4;
      const int h1 = ((qh >> (j + 16)) & 1) << 4;
      const int x0 = (b.qs[j] & 0x0F) | h0;
      const int x1 = (b.qs[j] >> 4) | h1;
      y[j] = x0 * d + m;
      y[j + kQK5_1 / 2] = x1 * d + m;
    }
  }
}

void dequant_q8_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ8_0), y += kQK8_0) {
    const auto b = load_block<BlockQ8_0>(src);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = b.qs[j] * d;
  }
}

// Q8_1's `s` (d * sum of qs) only serves integer dot products; values ignore it.
void dequant_q8_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ8_1), y += kQK8_1) {
    const auto b = load_block<BlockQ8_1>(src);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK8_1; ++j) y[j] = b.qs[j] * d;
  }
}

// Q2_K: 16 sub-blocks of 16. Each 128-element half uses 32 qs bytes; element
// 32*k + l of the half is bits 2k..2k+1 of byte l (k = 0..3, l = 0..31).
void dequant_q2_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ2_K)) {
    const auto b = load_block<BlockQ2_K>(src);
    const float d = f16_to_f32(b.d);
    const float dmin = f16_to_f32(b.dmin);
    const uint8_t* q = b.qs;
    int is = 0;
    for (int n = 0; n < kQK_K; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = b.scales[is++];
          const float dl = d * (sc & 0xF);
          const float ml = dmin * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((q[16 * half + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

// Q3_K: 16 sub-blocks of 16 with signed 6-bit scales (stored +32): low 4 bits
// in scales[j] (j<8) / high nibble of scales[j-8], top 2 bits at bit 2*(j/4)
// of scales[8 + j%4]. The quant's bit 2 is in hmask bit (element / 32) of byte
// (element % 32); a *clear* bit subtracts 4.
void dequant_q3_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ3_K)) {
    const auto b = load_block<BlockQ3_K>(src);
    const float d_all = f16_to_f32(b.d);
    int scales[16];
    for (int j = 0; j < 16; ++j) {
      const int lo = j < 8 ? (b.scales[j] & 0xF) : (b.scales[j - 8] >> 4);
      const int hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
      scales[j] = (lo | (hi << 4)) - 32;
    }
    const uint8_t* q = b.qs;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < kQK_K; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * scales[is++];
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            *y++ = dl * (((q[l] >> shift) & 3) - ((b.hmask[l] & m) ? 0 : 4));
          }
        }
      }
    }
  }
}

// Q4_K: 8 sub-blocks of 32; each 64 elements share 32 qs bytes (low nibbles
// first sub-block, high nibbles the second).
void dequant_q4_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ4_K)) {
    const auto b = load_block<BlockQ4_K>(src);
    const float d = f16_to_f32(b.d);
    const float dmin = f16_to_f32(b.dmin);
    const uint8_t* q = b.qs;
    for (int is = 0; is < 8; is += 2, q += 32) {
      uint8_t sc, m;
      get_scale_min_k4(is, b.scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, b.scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

// Q5_K: Q4_K plus a 5th bit; sub-block s takes bit s of qh[l].
void dequant_q5_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ5_K)) {
    const auto b = load_block<BlockQ5_K>(src);
    const float d = f16_to_f32(b.d);
    const float dmin = f16_to_f32(b.dmin);
    const uint8_t* ql = b.qs;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      get_scale_min_k4(is, b.scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, b.scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + ((b.qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0)) - m2;
    }
  }
}

// Q6_K: per 128 elements, 64 ql bytes (low 4 bits) and 32 qh bytes (2 bits
// each); element 32*k + l takes ql[l + 32*(k&1)] nibble k>>1 and qh[l] bits 2k.
void dequant_q6_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ6_K)) {
    const auto b = load_block<BlockQ6_K>(src);
    const float d = f16_to_f32(b.d);
    const uint8_t* ql = b.ql;
    const uint8_t* qh = b.qh;
    const int8_t* sc = b.scales;
    for (int n = 0; n < kQK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

void dequant_q8_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ8_K), y += kQK_K) {
    const auto b = load_block<BlockQ8_K>(src);
    for (int j = 0; j < kQK_K; ++j) y[j] = b.d * b.qs[j];
  }
}

void dequant_iq4_nl(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ4_NL), y += kQK4_NL) {
    const auto b = load_block<BlockIQ4_NL>(src);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK4_NL / 2; ++j) {
      y[j] = d * kValuesIQ4NL[b.qs[j] & 0xF];
      y[j + kQK4_NL / 2] = d * kValuesIQ4NL[b.qs[j] >> 4];
    }
  }
}

// IQ4_XS: 8 sub-blocks of 32 laid out like IQ4_NL blocks, 6-bit scale (stored
// +32) = nibble of scales_l[ib/2] | 2 bits of scales_h at 2*ib, << 4.
void dequant_iq4_xs(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockIQ4_XS)) {
    const auto b = load_block<BlockIQ4_XS>(src);
    const float d = f16_to_f32(b.d);
    const uint8_t* qs = b.qs;
    for (int ib = 0; ib < kQK_K / 32; ++ib, y += 32, qs += 16) {
      const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b.scales_h >> (2 * ib)) & 3) << 4);
      const float dl = d * (ls - 32);
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * kValuesIQ4NL[qs[j] & 0xF];
        y[j + 16] = dl * kValuesIQ4NL[qs[j] >> 4];
      }
    }
  }
}

// TQ1_0: ternary digits packed 5 per byte as a base-3 fixed-point fraction
// (byte = ceil(value * 256 / 243)); multiplying by 3^n moves digit n to the
// top, where (byte * 3) >> 8 reads it. qs[0..31] cover elements 0..159
// (digit n of byte m is element 32n + m), qs[32..47] elements 160..239 (16n + m),
// qh[0..3] elements 240..255 with 4 digits each (4n + m).
void dequant_tq1_0(const uint8_t* src, float* y, int64_t nb) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockTQ1_0)) {
    const auto b = load_block<BlockTQ1_0>(src);
    const float d = f16_to_f32(b.d);
    auto trit = [](uint8_t byte, uint8_t pow3) {
      const uint8_t q = static_cast<uint8_t>(byte * pow3);
      return static_cast<int>((static_cast<uint16_t>(q) * 3) >> 8) - 1;
    };
    for (int n = 0; n < 5; ++n)
      for (int m = 0; m < 32; ++m) *y++ = trit(b.qs[m], kPow3[n]) * d;
    for (int n = 0; n < 5; ++n)
      for (int m = 0; m < 16; ++m) *y++ = trit(b.qs[32 + m], kPow3[n]) * d;
    for (int n = 0; n < 4; ++n)
      for (int m = 0; m < 4; ++m) *y++ = trit(b.qh[m], kPow3[n]) * d;
  }
}

// TQ2_0: 2 bits per element, q - 1 in {-1, 0, 1, 2}; element 32*k + m of each
// 128 is bits 2k of byte m.
void dequant_tq2_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockTQ2_0)) {
    const auto b = load_block<BlockTQ2_0>(src);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK_K / 4; j += 32)
      for (int shift = 0; shift < 8; shift += 2)
        for (int m = 0; m < 32; ++m) *y++ = (((b.qs[j + m] >> shift) & 3) - 1) * d;
  }
}

void dequant_mxfp4(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockMXFP4), y += kQK_MXFP4) {
    const auto b = load_block<BlockMXFP4>(src);
    const float d = e8m0_to_f32_half(b.e);
    for (int j = 0; j < kQK_MXFP4 / 2; ++j) {
      y[j] = kValuesMXFP4[b.qs[j] & 0x0F] * d;
      y[j + kQK_MXFP4 / 2] = kValuesMXFP4[b.qs[j] >> 4] * d;
    }
  }
}

// NVFP4: 4 sub-blocks of 16, each with its own UE4M3 scale and 8 qs bytes.
void dequant_nvfp4(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockNVFP4)) {
    const auto b = load_block<BlockNVFP4>(src);
    for (int s = 0; s < 4; ++s, y += 16) {
      const float d = ue4m3_to_f32_half(b.d[s]);
      for (int j = 0; j < 8; ++j) {
        y[j] = kValuesMXFP4[b.qs[8 * s + j] & 0x0F] * d;
        y[j + 8] = kValuesMXFP4[b.qs[8 * s + j] >> 4] * d;
      }
    }
  }
}

// Q1_0: bit j (LSB first) set -> +d, clear -> -d.
void dequant_q1_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ1_0), y += kQK1_0) {
    const auto b = load_block<BlockQ1_0>(src);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK1_0; ++j) y[j] = ((b.qs[j / 8] >> (j % 8)) & 1) ? d : -d;
  }
}

using DequantFn = void (*)(const uint8_t* src, float* dst, int64_t n_blocks);

// The decoder of each non-grid type, or nullptr.
DequantFn dequant_fn(DType t) {
  switch (t) {
    case DType::kF16: return dequant_f16;
    case DType::kBF16: return dequant_bf16;
    case DType::kQ4_0: return dequant_q4_0;
    case DType::kQ4_1: return dequant_q4_1;
    case DType::kQ5_0: return dequant_q5_0;
    case DType::kQ5_1: return dequant_q5_1;
    case DType::kQ8_0: return dequant_q8_0;
    case DType::kQ8_1: return dequant_q8_1;
    case DType::kQ2_K: return dequant_q2_k;
    case DType::kQ3_K: return dequant_q3_k;
    case DType::kQ4_K: return dequant_q4_k;
    case DType::kQ5_K: return dequant_q5_k;
    case DType::kQ6_K: return dequant_q6_k;
    case DType::kQ8_K: return dequant_q8_k;
    case DType::kIQ4_NL: return dequant_iq4_nl;
    case DType::kIQ4_XS: return dequant_iq4_xs;
    case DType::kTQ1_0: return dequant_tq1_0;
    case DType::kTQ2_0: return dequant_tq2_0;
    case DType::kMXFP4: return dequant_mxfp4;
    case DType::kNVFP4: return dequant_nvfp4;
    case DType::kQ1_0: return dequant_q1_0;
    default: return nullptr;
  }
}

}  // namespace

bool can_dequantize(DType t) {
  return t == DType::kF32 || dequant_fn(t) != nullptr || is_iq_grid_type(t);
}

Status dequantize_row_ref(DType t, const void* src, float* dst, int64_t n_elems) {
  STRATA_RETURN_IF_ERROR(check_row_args("dequantize_row_ref", t, can_dequantize(t), n_elems, src, dst));
  if (n_elems == 0) return Status::ok();
  const auto* bytes = static_cast<const uint8_t*>(src);
  const int64_t n_blocks = n_elems / dtype_traits(t).block_elems;
  if (t == DType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(n_elems) * sizeof(float));
  } else if (DequantFn fn = dequant_fn(t)) {
    fn(bytes, dst, n_blocks);
  } else if (!dequantize_iq_grid_blocks(t, bytes, dst, n_blocks)) {
    return internal_error("dequantize_row_ref: type claimed but not dispatched");
  }
  return Status::ok();
}

}  // namespace strata
