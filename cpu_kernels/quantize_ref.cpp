// Scalar quantizers for the plain, legacy (Q4_0..Q8_1), ternary, MXFP4 and
// Q1_0 types, plus the quantize_row_ref dispatch (k-quants: quantize_kquants_ref.cpp).
//
// These follow ggml's quantize_row_*_ref float for float, so the bytes match
// ggml and gguf-py exactly: the legacy types truncate `x*id + 8.5f` (not
// round), Q8 uses roundf (half away from zero), scales go through f32 -> f16
// with round-to-nearest-even. Built with -ffp-contract=off: a fused
// multiply-add in `x*id + 8.5f` would flip codes that sit on a boundary.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "cpu_kernels/quant_ref.h"
#include "cpu_kernels/quant_ref_internal.h"
#include "runtime/base/half.h"

namespace strata {
namespace {

using namespace quant_detail;

template <typename Block>
void store_block(uint8_t* p, const Block& b) {
  std::memcpy(p, &b, sizeof(Block));
}

// First element with the largest |x| (ties keep the earlier), returned signed:
// Q4_0/Q5_0 map it to code 0 so the opposite side gets the extra level.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

float absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float a = std::fabs(x[j]);
    amax = amax > a ? amax : a;
  }
  return amax;
}

void min_max(const float* x, int n, float* mn, float* mx) {
  *mn = std::numeric_limits<float>::max();
  *mx = -std::numeric_limits<float>::max();
  for (int j = 0; j < n; ++j) {
    if (x[j] < *mn) *mn = x[j];
    if (x[j] > *mx) *mx = x[j];
  }
}

inline uint8_t min_u8(int a, int b) { return static_cast<uint8_t>(a < b ? a : b); }

// C's truncating (int8_t)v for v in (-129, 128), which is all finite input can
// reach except when a block's range overflows float (e.g. max - min = inf,
// giving inf * 0 = NaN); there this saturates (NaN -> 0) instead of being
// undefined behavior.
inline int trunc_i8(float v) {
  if (v > -129.0f && v < 128.0f) return static_cast<int>(v);
  return v >= 128.0f ? 127 : (v <= -129.0f ? -128 : 0);
}

// roundf (half away from zero) to int8, saturating as trunc_i8 does.
inline int8_t round_i8(float v) { return static_cast<int8_t>(trunc_i8(std::round(v))); }

void quant_f16(const float* x, uint8_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_f16(x[i]);
    std::memcpy(y + 2 * i, &h, 2);
  }
}

void quant_bf16(const float* x, uint8_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_bf16(x[i]);
    std::memcpy(y + 2 * i, &h, 2);
  }
}

void quant_q4_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK4_0, y += sizeof(BlockQ4_0)) {
    BlockQ4_0 b{};
    const float d = signed_absmax(x, kQK4_0) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f32_to_f16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      // Truncation toward zero, as ggml's int8 cast; x*id + 8.5 >= 0.5 by construction.
      const uint8_t q0 = min_u8(15, trunc_i8(x[j] * id + 8.5f));
      const uint8_t q1 = min_u8(15, trunc_i8(x[j + kQK4_0 / 2] * id + 8.5f));
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(y, b);
  }
}

void quant_q4_1(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK4_1, y += sizeof(BlockQ4_1)) {
    BlockQ4_1 b{};
    float mn, mx;
    min_max(x, kQK4_1, &mn, &mx);
    const float d = (mx - mn) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f32_to_f16(d);
    b.m = f32_to_f16(mn);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      const uint8_t q0 = min_u8(15, trunc_i8((x[j] - mn) * id + 0.5f));
      const uint8_t q1 = min_u8(15, trunc_i8((x[j + kQK4_1 / 2] - mn) * id + 0.5f));
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(y, b);
  }
}

// Q5: low 4 bits in the nibbles as Q4, bit 4 of element j in bit j of qh.
void quant_q5_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK5_0, y += sizeof(BlockQ5_0)) {
    BlockQ5_0 b{};
    const float d = signed_absmax(x, kQK5_0) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const uint8_t q0 = min_u8(31, trunc_i8(x[j] * id + 16.5f));
      const uint8_t q1 = min_u8(31, trunc_i8(x[j + kQK5_0 / 2] * id + 16.5f));
      b.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + kQK5_0 / 2);
    }
    std::memcpy(b.qh, &qh, 4);
    store_block(y, b);
  }
}

void quant_q5_1(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK5_1, y += sizeof(BlockQ5_1)) {
    BlockQ5_1 b{};
    float mn, mx;
    min_max(x, kQK5_1, &mn, &mx);
    const float d = (mx - mn) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f32_to_f16(d);
    b.m = f32_to_f16(mn);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      // ggml has no clamp here; (x - min)*id + 0.5 stays below 32 for finite x.
      const uint8_t q0 = min_u8(31, trunc_i8((x[j] - mn) * id + 0.5f));
      const uint8_t q1 = min_u8(31, trunc_i8((x[j + kQK5_1 / 2] - mn) * id + 0.5f));
      b.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + kQK5_1 / 2);
    }
    std::memcpy(b.qh, &qh, 4);
    store_block(y, b);
  }
}

void quant_q8_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK8_0, y += sizeof(BlockQ8_0)) {
    BlockQ8_0 b{};
    const float d = absmax(x, kQK8_0) / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f32_to_f16(d);
    for (int j = 0; j < kQK8_0; ++j) b.qs[j] = round_i8(x[j] * id);
    store_block(y, b);
  }
}

// Q8_1 also stores s = d * sum(q) (as f16) for the integer dot products.
void quant_q8_1(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK8_1, y += sizeof(BlockQ8_1)) {
    BlockQ8_1 b{};
    const float d = absmax(x, kQK8_1) / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f32_to_f16(d);
    int sum = 0;
    for (int j = 0; j < kQK8_1; ++j) {
      b.qs[j] = round_i8(x[j] * id);
      sum += b.qs[j];
    }
    b.s = f32_to_f16(sum * d);
    store_block(y, b);
  }
}

// Ternary code of x/amax: lroundf gives -1, 0 or 1; stored +1.
inline int ternary(float x, float id) { return static_cast<int>(std::lround(x * id)) + 1; }

// Packs base-3 digits as a fixed-point fraction: byte = ceil(v * 256 / 243),
// which is what the decoder's (byte * 3^n * 3) >> 8 digit extraction expects.
inline uint8_t pack_trits(uint32_t v) { return static_cast<uint8_t>((v * 256 + (243 - 1)) / 243); }

void quant_tq1_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += sizeof(BlockTQ1_0)) {
    BlockTQ1_0 b{};
    const float d = absmax(x, kQK_K);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f32_to_f16(d);
    for (int m = 0; m < 32; ++m) {  // elements 0..159: digit n of qs[m] is x[32n + m]
      uint32_t v = 0;
      for (int n = 0; n < 5; ++n) v = v * 3 + ternary(x[m + 32 * n], id);
      b.qs[m] = pack_trits(v);
    }
    for (int m = 0; m < 16; ++m) {  // elements 160..239
      uint32_t v = 0;
      for (int n = 0; n < 5; ++n) v = v * 3 + ternary(x[160 + m + 16 * n], id);
      b.qs[32 + m] = pack_trits(v);
    }
    for (int m = 0; m < 4; ++m) {  // elements 240..255, 4 digits shifted to the top
      uint32_t v = 0;
      for (int n = 0; n < 4; ++n) v = v * 3 + ternary(x[240 + m + 4 * n], id);
      b.qh[m] = pack_trits(v * 3);
    }
    store_block(y, b);
  }
}

void quant_tq2_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += sizeof(BlockTQ2_0)) {
    BlockTQ2_0 b{};
    const float d = absmax(x, kQK_K);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f32_to_f16(d);
    for (int j = 0; j < kQK_K / 4; j += 32) {
      for (int m = 0; m < 32; ++m) {
        uint8_t q = 0;
        for (int n = 0; n < 4; ++n) q |= static_cast<uint8_t>((ternary(x[4 * j + m + 32 * n], id) & 3) << (2 * n));
        b.qs[j + m] = q;
      }
    }
    store_block(y, b);
  }
}

// Nearest FP4 code for x at half-scale e (first of equals wins, as in ggml).
int best_index_mxfp4(float x, float e) {
  int best = 0;
  float best_err = std::fabs(kValuesMXFP4[0] * e - x);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(kValuesMXFP4[i] * e - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return best;
}

// Shared exponent e = floor(log2(amax)) - 2 (+127 bias): amax / 2^(e-127) is in
// [4, 8), so the largest FP4 magnitude (6) sits near amax. ggml computes it
// with log2f, and so must we to pick the same e on the same input.
void quant_mxfp4(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_MXFP4, y += sizeof(BlockMXFP4)) {
    BlockMXFP4 b{};
    float amax = 0.0f;
    for (int j = 0; j < kQK_MXFP4; ++j) {
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
    }
    // Below 2^-125 the exponent would go negative (undefined in ggml's cast); clamp at 0.
    const float e = amax > 0.0f ? std::floor(std::log2(amax)) - 2 + 127 : 0.0f;
    b.e = static_cast<uint8_t>(e < 0.0f ? 0.0f : e);
    const float d = e8m0_to_f32_half(b.e);
    for (int j = 0; j < kQK_MXFP4 / 2; ++j) {
      const int q0 = best_index_mxfp4(x[j], d);
      const int q1 = best_index_mxfp4(x[j + kQK_MXFP4 / 2], d);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(y, b);
  }
}

// Q1_0: d = mean |x|, one bit per weight set for x >= 0.
void quant_q1_0(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK1_0, y += sizeof(BlockQ1_0)) {
    BlockQ1_0 b{};
    float sum_abs = 0.0f;
    for (int j = 0; j < kQK1_0; ++j) sum_abs += std::fabs(x[j]);
    b.d = f32_to_f16(sum_abs / kQK1_0);
    for (int j = 0; j < kQK1_0; ++j) {
      if (x[j] >= 0.0f) b.qs[j / 8] |= static_cast<uint8_t>(1u << (j % 8));
    }
    store_block(y, b);
  }
}

using QuantFn = void (*)(const float* src, uint8_t* dst, int64_t n_blocks);

QuantFn quant_fn(DType t) {
  switch (t) {
    case DType::kF16: return quant_f16;
    case DType::kBF16: return quant_bf16;
    case DType::kQ4_0: return quant_q4_0;
    case DType::kQ4_1: return quant_q4_1;
    case DType::kQ5_0: return quant_q5_0;
    case DType::kQ5_1: return quant_q5_1;
    case DType::kQ8_0: return quant_q8_0;
    case DType::kQ8_1: return quant_q8_1;
    case DType::kQ2_K: return quantize_q2_k;
    case DType::kQ3_K: return quantize_q3_k;
    case DType::kQ4_K: return quantize_q4_k;
    case DType::kQ5_K: return quantize_q5_k;
    case DType::kQ6_K: return quantize_q6_k;
    case DType::kQ8_K: return quantize_q8_k;
    case DType::kTQ1_0: return quant_tq1_0;
    case DType::kTQ2_0: return quant_tq2_0;
    case DType::kMXFP4: return quant_mxfp4;
    case DType::kQ1_0: return quant_q1_0;
    default: return nullptr;
  }
}

}  // namespace

bool can_quantize(DType t) { return t == DType::kF32 || quant_fn(t) != nullptr; }

Status quantize_row_ref(DType t, const float* src, void* dst, int64_t n_elems) {
  STRATA_RETURN_IF_ERROR(check_row_args("quantize_row_ref", t, can_quantize(t), n_elems, src, dst));
  if (n_elems == 0) return Status::ok();
  if (t == DType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(n_elems) * sizeof(float));
    return Status::ok();
  }
  // The float formats carry NaN/inf through; a block code cannot represent them.
  if (t != DType::kF16 && t != DType::kBF16) {
    for (int64_t i = 0; i < n_elems; ++i) {
      if (!std::isfinite(src[i])) {
        return invalid_argument("quantize_row_ref: expected finite values for " + std::string(dtype_name(t)) +
                                ", got " + std::to_string(src[i]) + " at element " + std::to_string(i));
      }
    }
  }
  quant_fn(t)(src, static_cast<uint8_t*>(dst), n_elems / dtype_traits(t).block_elems);
  return Status::ok();
}

}  // namespace strata
