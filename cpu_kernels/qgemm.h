// Fast matrix products against GGUF-typed weights: y = W x for a batch of
// activation rows, with integer dot products on 8-bit quantized activations
// for the quantized types, picked at run time per CPU path (cpu_isa.h).
//
// A product has two steps: the activations are prepared once per product for
// the weight type (ActPack: quantized to the 8-bit block format that type's
// integer dot uses, or kept as f32/bf16 for float weights), then any number
// of threads compute disjoint output ranges from the same ActPack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "cpu_kernels/cpu_isa.h"
#include "runtime/base/dtype.h"

namespace strata {

// Types with a dedicated kernel on every path: q2_k, q3_k, q4_k, q5_k, q6_k,
// q8_0, q4_0, iq4_xs (integer dot against 8-bit activations), f32, f16, bf16.
bool qgemm_supports(DType w);

// Activation format of a weight type, i.e. what ActPack holds for it.
enum class ActFormat : uint8_t {
  kNone,     // type not supported
  kQ8K,      // per 256: float d, int8 q[256] (q = round(x / d), |q| <= 127), int16 sums of 16
  kQ8_32,    // per 32: float d, int8 q[32], int16 sum of the 32 q
  kF32,      // floats as given (f32 and f16 weights)
  kBF16,     // bf16, rounded to nearest even (bf16 weights; products are exact in f32)
};
ActFormat act_format(DType w);

// Order of the int8 values inside each block of an ActPack, matched to the
// nibble layout of the weight type so a SIMD load of weights pairs with one
// contiguous load of activations (see act_quant.cpp for the exact maps).
enum class ActOrder : uint8_t {
  kNatural,    // q8_0, q6_k, q2_k, q3_k
  kQ4KPairs,   // q4_k, q5_k: 32-element sub-blocks in the order 0 2 1 3 4 6 5 7
  kIQ4Halves,  // iq4_xs: per 128 elements, the low 16 of sub-blocks 0-3, then their high 16
  kQ4_0Halves, // q4_0: per 64 elements (two blocks), low 16 of each, then high 16 of each
};
ActOrder act_order(DType w);

// True when one ActPack prepared for `a` can serve a product with weights of
// type `b` (same format and order), e.g. a q4_k gate and a q4_k up.
bool act_pack_shares_format(DType a, DType b);

// Prepared activation rows. Owns a 64-byte aligned buffer that grows only:
// re-preparing for the same or a smaller shape reuses it.
class ActPack {
 public:
  ActPack() = default;
  ActPack(ActPack&&) noexcept = default;
  ActPack& operator=(ActPack&&) noexcept = default;
  ActPack(const ActPack&) = delete;
  ActPack& operator=(const ActPack&) = delete;

  DType w_type() const { return w_type_; }
  ActFormat format() const { return format_; }
  ActOrder order() const { return order_; }
  int64_t n_in() const { return n_in_; }
  int64_t n_rows() const { return n_rows_; }
  size_t capacity_bytes() const { return capacity_; }

  // Row r's parts (kernels read these; sizes below, each padded to 64 bytes
  // so SIMD loads may run to the next 64-byte boundary).
  //   q:     n_in int8 in act_order(), for kQ8K / kQ8_32
  //   d:     n_in / block floats (block 256 or 32)
  //   bsums: n_in / 16 int16, sums of 16 consecutive q in natural order (kQ8K);
  //          n_in / 32, sums of each block (kQ8_32)
  //   q6k_offsets (q6_k only): n_in / 16 int32, one per 16 consecutive q: -32
  //          times the sum of the q at positions 4c and 4c + 1 (c < 4) in the
  //          low int16, at 4c + 2 and 4c + 3 in the high int16, i.e. Q6_K's
  //          -32 offset in the int16 lanes where vpmaddubsw sums those 16 q
  //   f32:   n_in floats (kF32);  bf16: n_in uint16 (kBF16)
  const int8_t* q(int64_t r) const { return reinterpret_cast<const int8_t*>(row(r)); }
  const float* d(int64_t r) const { return reinterpret_cast<const float*>(row(r) + d_off_); }
  const int16_t* bsums(int64_t r) const { return reinterpret_cast<const int16_t*>(row(r) + bsums_off_); }
  const int32_t* q6k_offsets(int64_t r) const { return reinterpret_cast<const int32_t*>(row(r) + offsets_off_); }
  const float* f32(int64_t r) const { return reinterpret_cast<const float*>(row(r)); }
  const uint16_t* bf16(int64_t r) const { return reinterpret_cast<const uint16_t*>(row(r)); }

 private:
  friend void act_pack_prepare(ActPack& p, DType w_type, int64_t n_in, int64_t n_rows);
  friend void act_pack_rows(ActPack& p, const float* x, int64_t x_stride, int64_t r_begin, int64_t r_end);
  friend void act_pack_copy_row(ActPack& dst, int64_t r, const ActPack& src, int64_t s);
  struct FreeDeleter {
    void operator()(uint8_t* p) const;
  };
  const uint8_t* row(int64_t r) const { return buf_.get() + static_cast<size_t>(r) * row_stride_; }
  uint8_t* row(int64_t r) { return buf_.get() + static_cast<size_t>(r) * row_stride_; }

  std::unique_ptr<uint8_t[], FreeDeleter> buf_;
  size_t capacity_ = 0;
  size_t row_stride_ = 0;
  size_t d_off_ = 0;
  size_t bsums_off_ = 0;
  size_t offsets_off_ = 0;
  DType w_type_ = DType::kF32;
  ActFormat format_ = ActFormat::kNone;
  ActOrder order_ = ActOrder::kNatural;
  int64_t n_in_ = 0;
  int64_t n_rows_ = 0;
};

// Sizes `p` for n_rows rows of n_in activations for weights of type w_type.
// Preconditions (checked, abort on violation: callers validate shapes when a
// model is loaded): qgemm_supports(w_type), n_in >= 0 a multiple of the
// type's block size, n_rows >= 0. Allocates only when the buffer must grow.
void act_pack_prepare(ActPack& p, DType w_type, int64_t n_in, int64_t n_rows);

// Prepares rows [r_begin, r_end) from x (row r at x + r * x_stride, n_in
// floats each, x_stride >= n_in). Disjoint row ranges may be prepared by
// different threads at once. The result of a row depends only on its own
// values (and is the same on every CPU path).
void act_pack_rows(ActPack& p, const float* x, int64_t x_stride, int64_t r_begin, int64_t r_end);

// Row r of dst becomes row s of src, prepared for the same weight type and
// n_in (checked): the gather of a token prepared once into the group of each
// expert it is routed to.
void act_pack_copy_row(ActPack& dst, int64_t r, const ActPack& src, int64_t s);

// y[r*y_stride + o] = W[o] . x[r] for o in [o_begin, o_end), every prepared row r.
//   w_type: as prepared in x (x.w_type() == w_type, checked in debug builds).
//   w: the whole matrix as GGUF stores it: row o at o * dtype_row_bytes(w_type, n_in),
//      any alignment.
//   n_in == x.n_in(); 0 <= o_begin <= o_end; y_stride >= o_end.
// Guarantees: an output element's bits do not depend on o_begin/o_end or on
// how many rows x holds (a row decoded alone equals the same row in a batch);
// concurrent calls on disjoint output ranges are safe; nothing is allocated;
// paths (scalar/avx2/avx512) agree up to float rounding of the per-block
// accumulation (the integer block sums are exact on every path). Uses
// active_cpu_isa(); kAmx runs the AVX-512 kernels, and AMX-INT8 tile kernels
// for packed weights (qgemm_packed.h) of 16 activation rows or more, which
// give the AVX-512 kernels' bits exactly.
void qgemm_rows(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x,
                float* y, int64_t y_stride);

// Same on an explicit path (tests, benchmarks). `isa` must be supported here
// (cpu_isa_missing(isa) empty).
void qgemm_rows_isa(CpuIsa isa, DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end,
                    const ActPack& x, float* y, int64_t y_stride);

// Fused gate+up of a SwiGLU FFN, activations read once and no gate/up
// intermediates beyond a small stack tile:
//   h[r*h_stride + o] = silu(gate[o] . x[r]) * (up[o] . x[r])  for o in [o_begin, o_end).
// x_gate is prepared for gate_type, x_up for up_type; they may be the same
// object when act_pack_shares_format(gate_type, up_type). Same guarantees as
// qgemm_rows; each value equals silu() (activation.h) of the qgemm_rows gate
// output times the qgemm_rows up output, bit for bit.
void qgemm_swiglu_rows(DType gate_type, const void* gate, DType up_type, const void* up, int64_t n_in,
                       int64_t o_begin, int64_t o_end, const ActPack& x_gate, const ActPack& x_up, float* h,
                       int64_t h_stride);
void qgemm_swiglu_rows_isa(CpuIsa isa, DType gate_type, const void* gate, DType up_type, const void* up,
                           int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x_gate,
                           const ActPack& x_up, float* h, int64_t h_stride);

// Name of the kernel variant qgemm runs for `isa` ("avx512-vnni", ...), for reports.
std::string_view qgemm_variant_name(CpuIsa isa);

// Raised when a change to the kernels changes their speed (2: software
// prefetch, packed Q5_K and IQ4_XS; 3: built at -O3; 4: AVX2 packed tiles on
// AVX-VNNI, with Q8_0 and IQ4_XS; 5: AVX2 groups unpacked once per chunk;
// 6: packed Q4_0, and packed Q8_0 and IQ4_XS on plain AVX2; 7: AMX tile
// kernels for packed weights; 8: Q2_K and Q3_K kernels; 9: IQ2_S, IQ3_S, IQ1_S, IQ1_M and IQ4_NL kernels;
// 10: AVX-512 packed Q6_K in 8-row tiles; 11: packed Q2_K and Q3_K; 12: float
// tiles prefetch their weight rows; 13: AVX-512 float tiles keep their
// accumulators in registers, 8 rows in two passes; 14: the passes share the
// prefetching; 15: AVX2 float tiles in passes of 2 rows; 16: prefetcht0,
// and 16 KiB ahead for tiles of more than 2 rows; 17: float tiles prefetch
// into the next group of rows; 18: FMA float tiles prefetch 2 KiB ahead).
// Measured kernel rates carry it, so a profile cache made by an older build
// is measured again, not trusted.
inline constexpr int kQgemmRevision = 18;

}  // namespace strata
