// Test weights and activations for the matrix-product kernels (qgemm,
// oneDNN): GGUF-typed random weights, activations with outliers and zero
// stretches, and the per-output scale float rounding is measured against.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_kernels/quant_ref.h"
#include "runtime/base/dtype.h"
#include "runtime/base/half.h"
#include "runtime/base/quant_blocks.h"
#include "runtime/base/rng.h"

namespace strata::test {

inline double uniform(Xoshiro256& rng, double lo, double hi) { return lo + (hi - lo) * rng.uniform(); }

// Activations with a spread of magnitudes, an outlier per row and an
// all-zero 32-element stretch (the zero-scale path).
inline std::vector<float> make_x(int64_t n_rows, int64_t n_in, uint64_t seed) {
  Xoshiro256 rng(seed);
  std::vector<float> x(static_cast<size_t>(n_rows * n_in));
  for (auto& v : x) v = static_cast<float>(uniform(rng, -1, 1) * uniform(rng, 0.1, 2.0));
  for (int64_t r = 0; r < n_rows; ++r) {
    x[static_cast<size_t>(r * n_in + (r * 7) % n_in)] = static_cast<float>(8.0 + r);
    if (n_in >= 64 && r % 2 == 1) std::fill_n(x.begin() + r * n_in + 32, 32, 0.0f);
  }
  return x;
}

inline uint64_t row_bytes(DType t, int64_t n_in) { return *dtype_row_bytes(t, static_cast<uint64_t>(n_in)); }

// Sane random f16 block scales (d, and dmin for Q2_K/Q4_K/Q5_K) in every block of
// n_out rows of GGUF type t whose other bytes are arbitrary.
inline void set_block_scales(DType t, std::vector<uint8_t>& w, int64_t n_in, int64_t n_out, Xoshiro256& rng) {
  const auto& tr = dtype_traits(t);
  const int64_t nb = n_in / tr.block_elems * n_out;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = w.data() + b * tr.block_bytes;
    const uint16_t d = f32_to_f16(static_cast<float>(uniform(rng, 0.001, 0.02)));
    const uint16_t dmin = f32_to_f16(static_cast<float>(uniform(rng, 0.0, 0.005)));
    size_t d_off = 0, dmin_off = 0;
    if (t == DType::kQ6_K) d_off = 208;
    if (t == DType::kQ3_K) d_off = 108;
    if (t == DType::kQ2_K) d_off = 80, dmin_off = 82;
    if (t == DType::kQ4_K || t == DType::kQ5_K) dmin_off = 2;
    if (t == DType::kIQ1_M) {
      set_iq1m_d_bits(blk + offsetof(BlockIQ1_M, scales), d);
      continue;
    }
    std::memcpy(blk + d_off, &d, 2);
    if (dmin_off != 0) std::memcpy(blk + dmin_off, &dmin, 2);
  }
}

// Weights: quantize_row_ref of random floats where strata has an encoder;
// otherwise (iq4_xs) random blocks with a sane scale. With `raw`, every type
// gets random bytes (extreme quants and sub-scales) with only the f16 block
// scales set to sane values.
inline std::vector<uint8_t> make_w(DType t, int64_t n_in, int64_t n_out, uint64_t seed, bool raw) {
  Xoshiro256 rng(seed);
  const uint64_t rb = row_bytes(t, n_in);
  std::vector<uint8_t> w(rb * static_cast<uint64_t>(n_out) + 1);
  const bool quantized = t != DType::kF32 && t != DType::kF16 && t != DType::kBF16;
  if (!quantized || (!raw && can_quantize(t))) {
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; ++o) {
      for (auto& v : row) v = static_cast<float>(uniform(rng, -1, 1) * uniform(rng, 0.05, 1.0));
      EXPECT_TRUE(quantize_row_ref(t, row.data(), w.data() + rb * o, n_in).is_ok());
    }
    return w;
  }
  rng.fill(w.data(), w.size());
  set_block_scales(t, w, n_in, n_out, rng);
  return w;
}

// Weights with every byte `fill` but the f16 block scales (and, for a zero
// fill, Q6_K's sub-scales, which would zero the block): the extreme quants
// the SIMD kernels' narrow sums must hold, e.g. 0xFF (Q4_K 15, Q5_K 31, Q6_K
// 63, IQ4_XS 113), 0x00 (Q6_K -32, Q4_0 -8, IQ4_XS -127), 0x80 (Q8_0 -128).
inline std::vector<uint8_t> make_extreme_w(DType t, int64_t n_in, int64_t n_out, uint8_t fill) {
  std::vector<uint8_t> w(row_bytes(t, n_in) * static_cast<uint64_t>(n_out) + 1, fill);
  Xoshiro256 rng(fill);
  set_block_scales(t, w, n_in, n_out, rng);
  if (t == DType::kQ6_K && fill == 0) {
    for (size_t b = 0; b + 210 <= w.size(); b += 210) std::memset(w.data() + b + 192, 127, 16);
  }
  return w;
}

// sum_i |W[o][i]| * |x[r][i]| from the dequantized weights: the scale the
// float rounding of a dot product is relative to.
inline std::vector<double> abs_scale(DType t, const std::vector<uint8_t>& w, const std::vector<float>& x, int64_t n_in,
                              int64_t n_out, int64_t n_rows) {
  std::vector<float> row(static_cast<size_t>(n_in));
  std::vector<double> s(static_cast<size_t>(n_rows * n_out));
  for (int64_t o = 0; o < n_out; ++o) {
    EXPECT_TRUE(dequantize_row_ref(t, w.data() + row_bytes(t, n_in) * o, row.data(), n_in).is_ok());
    for (int64_t r = 0; r < n_rows; ++r) {
      double a = 0;
      for (int64_t i = 0; i < n_in; ++i) a += std::fabs(double(row[i]) * x[r * n_in + i]);
      s[r * n_out + o] = a;
    }
  }
  return s;
}

}  // namespace strata::test
