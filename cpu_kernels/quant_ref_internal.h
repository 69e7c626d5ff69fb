// Helpers shared by the scalar reference (de)quantizer files only; not an API.
// Block loads, packed-scale decoding and the small fp8-style scale formats.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "runtime/base/dtype.h"
#include "runtime/base/quant_blocks.h"
#include "runtime/base/status.h"

namespace strata::quant_detail {

static_assert(std::endian::native == std::endian::little,
              "GGUF blocks are little-endian; the reference codecs read them natively");

// Validates a row call: `supported` false -> unsupported; negative or
// non-multiple `n_elems` or a null buffer -> invalid_argument.
inline Status check_row_args(const char* op, DType t, bool supported, int64_t n_elems,
                             const void* src, const void* dst) {
  const DTypeTraits& tr = dtype_traits(t);
  const std::string name = tr.known ? std::string(tr.name) : "type id " + std::to_string(static_cast<uint32_t>(t));
  if (!supported) return unsupported(std::string(op) + ": no scalar codec for " + name);
  if (n_elems < 0 || n_elems % tr.block_elems != 0) {
    return invalid_argument(std::string(op) + ": expected n_elems to be a non-negative multiple of " +
                            std::to_string(tr.block_elems) + " for " + name + ", got " + std::to_string(n_elems));
  }
  if (n_elems > 0 && (src == nullptr || dst == nullptr)) {
    return invalid_argument(std::string(op) + ": expected non-null buffers for " + name);
  }
  return Status::ok();
}

// Blocks sit at arbitrary byte offsets in a mapped file; copy one out so every
// field read is aligned and alias-safe.
template <typename Block>
inline Block load_block(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(Block));
  return b;
}

template <typename Word>
inline Word load_le(const uint8_t* p) {
  Word w;
  std::memcpy(&w, p, sizeof(Word));
  return w;
}

// Q4_K/Q5_K pack 8 six-bit scales and 8 six-bit mins into 12 bytes:
//   bytes 0-3: scale j (j<4) in bits 0-5, high 2 bits of scale j+4 in bits 6-7
//   bytes 4-7: min j   (j<4) in bits 0-5, high 2 bits of min j+4   in bits 6-7
//   bytes 8-11: low 4 bits of scale j+4 | low 4 bits of min j+4 << 4
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// E2M1 (FP4) code points, doubled so they are integers; the scale decoders
// below return half the scale to compensate (ggml's kvalues_mxfp4).
inline constexpr int8_t kValuesMXFP4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// E8M0 exponent byte -> 2^(e-127) / 2, built from bits (e < 2 lands in the
// float subnormal range).
inline float e8m0_to_f32_half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Unsigned E4M3 (bias 7, no sign; 0x7f, E4M3's NaN, reads as 0) -> value / 2.
// Every result is a small dyadic rational, so the arithmetic is exact.
inline float ue4m3_to_f32_half(uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const int exp = (x >> 3) & 0xF;
  const int man = x & 0x7;
  const float raw = exp == 0 ? static_cast<float>(man) * 0x1p-9f
                             : (1.0f + static_cast<float>(man) / 8.0f) * std::ldexp(1.0f, exp - 7);
  return raw * 0.5f;
}

// Grid i-quant decoders, in dequant_iq_ref.cpp: `n_blocks` blocks of type `t`
// (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) from `src` into
// 256 * n_blocks floats. Returns false, writing nothing, for any other type.
bool dequantize_iq_grid_blocks(DType t, const uint8_t* src, float* dst, int64_t n_blocks);
bool is_iq_grid_type(DType t);

// k-quant and Q8_K encoders, in quantize_kquants_ref.cpp: `n_blocks` blocks of
// 256 floats from `x` into `y`.
void quantize_q2_k(const float* x, uint8_t* y, int64_t n_blocks);
void quantize_q3_k(const float* x, uint8_t* y, int64_t n_blocks);
void quantize_q4_k(const float* x, uint8_t* y, int64_t n_blocks);
void quantize_q5_k(const float* x, uint8_t* y, int64_t n_blocks);
void quantize_q6_k(const float* x, uint8_t* y, int64_t n_blocks);
void quantize_q8_k(const float* x, uint8_t* y, int64_t n_blocks);

}  // namespace strata::quant_detail
