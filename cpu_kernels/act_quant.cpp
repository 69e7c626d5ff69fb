// ActPack: activation rows prepared for one weight type (8-bit blocks with
// their scales and 16-element sums, or f32/bf16 copies), and the element
// orders that let the SIMD kernels pair one weight load with one contiguous
// activation load. The same code serves every CPU path, so every path sees
// the same prepared values.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/nearest_int.h"
#include "cpu_kernels/qgemm_internal.h"
#include "runtime/base/check.h"
#include "runtime/base/half.h"

namespace strata {
namespace {

constexpr size_t kAlign = 64;
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int act_block(ActFormat f) { return f == ActFormat::kQ8K ? kQK_K : f == ActFormat::kQ8_32 ? 32 : 1; }

// Natural element index of position p inside one ordered group of `n` values
// (a 256-block, or one or two 32-blocks for q4_0).
inline int natural_index(ActOrder order, int p, int n) {
  switch (order) {
    case ActOrder::kNatural: return p;
    case ActOrder::kQ4KPairs: return qgemm_detail::kQ4KPairPos[p / 32] * 32 + p % 32;
    case ActOrder::kIQ4Halves: {  // per 128: half, sub-block, element
      const int g = p / 128, pp = p % 128;
      return g * 128 + ((pp % 64) / 16) * 32 + (pp / 64) * 16 + pp % 16;
    }
    case ActOrder::kQ4_0Halves:  // two blocks: low 16 of each, then high 16; a lone block stays natural
      if (n < 64) return p;
      return ((p % 32) / 16) * 32 + (p / 32) * 16 + p % 16;
  }
  return p;
}

// One block of `n` floats to int8 in natural order: d = amax / 127, q =
// round(x * 127 / amax), so the largest magnitude maps to +-127 exactly.
// amax is taken as the largest |x| bit pattern, which orders non-negative
// floats as their values do: an integer max the compiler vectorizes, where a
// float one would need -ffast-math. A NaN has a larger pattern than any
// number, so a block holding one comes out all zero, as an infinite one does.
// Built for AVX2 as well as the baseline; both clones compute exactly the same
// (no FMA: nothing is contracted, see CMakeLists.txt).
__attribute__((target_clones("avx2", "default"))) void quantize_block(const float* x, int n, int8_t* q, float* d) {
  uint32_t amax_bits = 0;
  for (int i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    amax_bits = std::max(amax_bits, b & 0x7fffffffu);
  }
  float amax;
  std::memcpy(&amax, &amax_bits, 4);
  if (!(amax > 0.0f) || !std::isfinite(amax)) {
    // All zero, or non-finite input (which a model never produces): a zero
    // block keeps the product finite and defined.
    std::memset(q, 0, static_cast<size_t>(n));
    *d = 0.0f;
    return;
  }
  const float id = 127.0f / amax;
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::clamp(nearest_int(x[i] * id), -127, 127));
  *d = amax / 127.0f;
}

}  // namespace

void ActPack::FreeDeleter::operator()(uint8_t* p) const { std::free(p); }

ActFormat act_format(DType w) {
  switch (w) {
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kIQ2_XXS:
    case DType::kIQ2_XS:
    case DType::kIQ3_XXS:
    case DType::kIQ2_S:
    case DType::kIQ3_S:
    case DType::kIQ1_S:
    case DType::kIQ1_M:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
    case DType::kIQ4_XS: return ActFormat::kQ8K;
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kIQ4_NL: return ActFormat::kQ8_32;
    case DType::kF32:
    case DType::kF16: return ActFormat::kF32;
    case DType::kBF16: return ActFormat::kBF16;
    default: return ActFormat::kNone;
  }
}

ActOrder act_order(DType w) {
  switch (w) {
    case DType::kQ4_K:
    case DType::kQ5_K: return ActOrder::kQ4KPairs;
    case DType::kIQ4_XS: return ActOrder::kIQ4Halves;
    case DType::kQ4_0:
    case DType::kIQ4_NL: return ActOrder::kQ4_0Halves;
    default: return ActOrder::kNatural;
  }
}

bool qgemm_supports(DType w) { return act_format(w) != ActFormat::kNone; }

bool act_pack_shares_format(DType a, DType b) {
  return qgemm_supports(a) && act_format(a) == act_format(b) && act_order(a) == act_order(b);
}

void act_pack_prepare(ActPack& p, DType w_type, int64_t n_in, int64_t n_rows) {
  const ActFormat f = act_format(w_type);
  STRATA_CHECK(f != ActFormat::kNone);
  STRATA_CHECK(n_in >= 0 && n_rows >= 0);
  STRATA_CHECK(n_in % dtype_traits(w_type).block_elems == 0);
  const size_t n = static_cast<size_t>(n_in);
  size_t stride = 0, d_off = 0, bsums_off = 0, offsets_off = 0;
  switch (f) {
    case ActFormat::kQ8K:
    case ActFormat::kQ8_32: {
      const size_t nb = n / static_cast<size_t>(act_block(f));
      d_off = round_up(n);
      bsums_off = d_off + round_up(nb * sizeof(float));
      offsets_off = bsums_off + round_up((f == ActFormat::kQ8K ? n / 16 : nb) * sizeof(int16_t));
      stride = offsets_off + (w_type == DType::kQ6_K ? round_up(n / 16 * sizeof(int32_t)) : 0);
      break;
    }
    case ActFormat::kF32: stride = round_up(n * sizeof(float)); break;
    case ActFormat::kBF16: stride = round_up(n * sizeof(uint16_t)); break;
    case ActFormat::kNone: break;
  }
  stride = std::max(stride, kAlign);  // rows never share a cache line; n_in = 0 still has a row
  const size_t need = stride * static_cast<size_t>(n_rows) + kAlign;  // + slack for over-reads
  if (need > p.capacity_) {
    uint8_t* mem = static_cast<uint8_t*>(std::aligned_alloc(kAlign, round_up(need)));
    STRATA_CHECK(mem != nullptr);
    std::memset(mem, 0, round_up(need));
    p.buf_.reset(mem);
    p.capacity_ = round_up(need);
  }
  p.row_stride_ = stride;
  p.d_off_ = d_off;
  p.bsums_off_ = bsums_off;
  p.offsets_off_ = offsets_off;
  p.w_type_ = w_type;
  p.format_ = f;
  p.order_ = act_order(w_type);
  p.n_in_ = n_in;
  p.n_rows_ = n_rows;
}

void act_pack_rows(ActPack& p, const float* x, int64_t x_stride, int64_t r_begin, int64_t r_end) {
  STRATA_CHECK(0 <= r_begin && r_begin <= r_end && r_end <= p.n_rows_);
  STRATA_CHECK(x_stride >= p.n_in_ || r_end - r_begin <= 1);
  const int n = static_cast<int>(std::min<int64_t>(p.n_in_, 1 << 30));
  for (int64_t r = r_begin; r < r_end; ++r) {
    const float* xr = x + r * x_stride;
    uint8_t* row = p.row(r);
    switch (p.format_) {
      case ActFormat::kF32: std::memcpy(row, xr, static_cast<size_t>(p.n_in_) * sizeof(float)); break;
      case ActFormat::kBF16: {
        auto* out = reinterpret_cast<uint16_t*>(row);
        for (int64_t i = 0; i < p.n_in_; ++i) out[i] = f32_to_bf16(xr[i]);
        break;
      }
      case ActFormat::kQ8K:
      case ActFormat::kQ8_32: {
        // Blocks are quantized in natural order, then stored in the type's
        // order; groups are one 256-block, or two 32-blocks (q4_0 pairs).
        const int blk = act_block(p.format_);
        const int per_group = p.format_ == ActFormat::kQ8K ? 1 : 2;
        auto* q = reinterpret_cast<int8_t*>(row);
        auto* d = reinterpret_cast<float*>(row + p.d_off_);
        auto* bsums = reinterpret_cast<int16_t*>(row + p.bsums_off_);
        const int nb = n / blk;
        for (int b0 = 0; b0 < nb; b0 += per_group) {
          const int nblk = std::min(per_group, nb - b0);
          int8_t natural[kQK_K];
          for (int k = 0; k < nblk; ++k) quantize_block(xr + (b0 + k) * blk, blk, natural + k * blk, &d[b0 + k]);
          const int len = nblk * blk;
          // Sums of 16 (kQ8K) or of each block of 32 (kQ8_32), natural order.
          const int sum_len = p.format_ == ActFormat::kQ8K ? 16 : 32;
          for (int g = 0; g < len / sum_len; ++g) {
            int s = 0;
            for (int i = 0; i < sum_len; ++i) s += natural[g * sum_len + i];
            bsums[b0 * (blk / sum_len) + g] = static_cast<int16_t>(s);
          }
          if (p.w_type_ == DType::kQ6_K) {
            auto* offsets = reinterpret_cast<int32_t*>(row + p.offsets_off_) + b0 * (blk / 16);
            for (int g = 0; g < len / 16; ++g) {
              int lo = 0, hi = 0;
              for (int i = 0; i < 16; ++i) (i % 4 < 2 ? lo : hi) += natural[g * 16 + i];
              offsets[g] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(-32 * lo)) |
                                                static_cast<uint32_t>(static_cast<uint16_t>(-32 * hi)) << 16);
            }
          }
          // Every order moves whole runs of 16 (sub-block halves or more).
          int8_t* qg = q + static_cast<int64_t>(b0) * blk;
          for (int pos = 0; pos < len; pos += 16) std::memcpy(qg + pos, natural + natural_index(p.order_, pos, len), 16);
        }
        break;
      }
      case ActFormat::kNone: break;
    }
  }
}

void act_pack_copy_row(ActPack& dst, int64_t r, const ActPack& src, int64_t s) {
  STRATA_CHECK(dst.w_type_ == src.w_type_ && dst.n_in_ == src.n_in_ && dst.row_stride_ == src.row_stride_);
  STRATA_CHECK(0 <= r && r < dst.n_rows_ && 0 <= s && s < src.n_rows_);
  std::memcpy(dst.row(r), src.row(s), dst.row_stride_);
}

}  // namespace strata
