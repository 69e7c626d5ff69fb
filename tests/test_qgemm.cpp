// qgemm: every supported weight type on every kernel variant this CPU runs,
// against the scalar path (same integer math, so only the float accumulation
// order may differ), the scalar path against matmul_ref (float reference:
// the difference is bounded by the activation rounding), batch and output
// range invariance (bitwise), the fused SwiGLU, ActPack reuse, and the
// cpu_isa choice and its errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/vec_f32.h"
#include "cpu_kernels/qgemm_internal.h"
#include "cpu_kernels/quant_ref.h"
#include "runtime/base/half.h"
#include "runtime/base/rng.h"
#include "tests/matmul_fixture.h"

namespace strata {
namespace {

using qgemm_detail::GemmArgs;
using qgemm_detail::KernelTable;
using test::abs_scale;
using test::make_w;
using test::make_x;
using test::row_bytes;
using test::uniform;

const DType kTypes[] = {DType::kQ2_K,   DType::kQ3_K,   DType::kQ4_K,   DType::kQ5_K,   DType::kQ6_K,
                        DType::kQ8_0,   DType::kQ4_0,   DType::kIQ4_NL, DType::kIQ4_XS, DType::kIQ2_XXS,
                        DType::kIQ2_XS, DType::kIQ2_S,  DType::kIQ3_XXS, DType::kIQ3_S, DType::kIQ1_S,
                        DType::kIQ1_M,  DType::kBF16,   DType::kF16,    DType::kF32};

// A kernel variant: its table, or why this CPU cannot run it.
struct Variant {
  std::string name;
  const KernelTable* table = nullptr;
  std::string missing;
};

std::vector<Variant> variants() {
  const CpuFeatures f = detect_cpu_features();
  std::vector<Variant> v;
  v.push_back({"avx2", f.avx2_fma ? &qgemm_detail::avx2_kernels(false) : nullptr, "AVX2: this CPU lacks avx2/fma/f16c"});
  v.push_back({"avx512", f.avx512 ? &qgemm_detail::avx512_kernels(false, false) : nullptr,
               "AVX-512: this CPU lacks avx512f/bw/vl"});
  v.push_back({"avx512_vnni", f.avx512_vnni ? &qgemm_detail::avx512_kernels(true, false) : nullptr,
               "AVX-512 VNNI: this CPU lacks avx512_vnni"});
  v.push_back({"avx512_bf16", f.avx512_bf16 ? &qgemm_detail::avx512_kernels(f.avx512_vnni, true) : nullptr,
               "AVX-512 BF16: this CPU lacks avx512_bf16"});
  return v;
}


// Runs one variant's kernel for o in [o_begin, o_end) into y (n_rows x n_out).
void run_table(const KernelTable& k, DType t, const std::vector<uint8_t>& w, int64_t n_in, int64_t o_begin,
               int64_t o_end, const ActPack& x, std::vector<float>& y, int64_t n_out) {
  const GemmArgs a{w.data(), row_bytes(t, n_in), n_in, o_begin, o_end, &x, 0, x.n_rows(), y.data() + o_begin, n_out};
  k.fn[static_cast<int>(t)](a);
}

ActPack pack(DType t, const std::vector<float>& x, int64_t n_rows, int64_t n_in) {
  ActPack p;
  act_pack_prepare(p, t, n_in, n_rows);
  act_pack_rows(p, x.data(), n_in, 0, n_rows);
  return p;
}


int block_of(DType t) { return static_cast<int>(dtype_traits(t).block_elems); }

// n_in values per type: 1, 2, 3 blocks, 256-ish, and a DeepSeek-V3-sized row
// (an odd number of 32-blocks for the 32-element types).
std::vector<int64_t> n_ins(DType t) {
  const int b = block_of(t);
  if (b == 1) return {1, 2, 3, 17, 256, 7171};
  if (b == 32) return {32, 64, 96, 256, 7200};
  return {256, 512, 768, 7168};
}

class QgemmVariant : public ::testing::TestWithParam<std::tuple<DType, int>> {};

// SIMD vs scalar on odd shapes, plus bitwise invariance: an output range
// that does not start at 0, and each row prepared alone.
TEST_P(QgemmVariant, MatchesScalarAndIsBatchInvariant) {
  const auto [t, vi] = GetParam();
  const Variant v = variants()[static_cast<size_t>(vi)];
  if (v.table == nullptr) GTEST_SKIP() << v.missing;
  const KernelTable& scalar = qgemm_detail::scalar_kernels();
  constexpr int64_t kOut = 37;
  for (bool raw : {false, true}) {
    for (int64_t n_in : n_ins(t)) {
      const std::vector<uint8_t> w = make_w(t, n_in, kOut, 1000 + n_in, raw);
      for (int64_t n_rows : {1, 2, 3, 5, 8, 17}) {
        if (n_in > 1024 && n_rows > 8 && raw) continue;  // keeps the test fast; covered unpacked above
        SCOPED_TRACE(std::string(dtype_name(t)) + " " + v.name + " n_in=" + std::to_string(n_in) +
                     " n_rows=" + std::to_string(n_rows) + (raw ? " raw" : ""));
        const std::vector<float> x = make_x(n_rows, n_in, 7 + n_rows);
        const ActPack p = pack(t, x, n_rows, n_in);
        std::vector<float> ys(static_cast<size_t>(n_rows * kOut)), yv(ys.size(), NAN), yr(ys.size(), NAN);
        run_table(scalar, t, w, n_in, 0, kOut, p, ys, kOut);
        run_table(*v.table, t, w, n_in, 0, kOut, p, yv, kOut);
        run_table(*v.table, t, w, n_in, 5, kOut, p, yr, kOut);
        const std::vector<double> scale = abs_scale(t, w, x, n_in, kOut, n_rows);
        for (int64_t i = 0; i < n_rows * kOut; ++i) {
          ASSERT_NEAR(yv[i], ys[i], 1e-5 * scale[i] + 1e-30) << "row " << i / kOut << " out " << i % kOut;
          if (i % kOut >= 5) {
            ASSERT_EQ(std::memcmp(&yv[i], &yr[i], 4), 0) << "o range changed row " << i / kOut;
          }
        }
        // Each row alone (in a one-row pack) gives the same bits as in the batch.
        for (int64_t r = 0; r < n_rows; r += std::max<int64_t>(1, n_rows / 3)) {
          const std::vector<float> xr(x.begin() + r * n_in, x.begin() + (r + 1) * n_in);
          const ActPack p1 = pack(t, xr, 1, n_in);
          std::vector<float> y1(kOut, NAN);
          run_table(*v.table, t, w, n_in, 0, kOut, p1, y1, kOut);
          ASSERT_EQ(std::memcmp(y1.data(), yv.data() + r * kOut, kOut * 4), 0) << "row " << r << " alone differs";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QgemmVariant,
                         ::testing::Combine(::testing::ValuesIn(kTypes), ::testing::Values(0, 1, 2, 3)),
                         [](const auto& info) {
                           return std::string(dtype_name(std::get<0>(info.param))) + "_" +
                                  variants()[static_cast<size_t>(std::get<1>(info.param))].name;
                         });

class QgemmType : public ::testing::TestWithParam<DType> {};

// The scalar path against matmul_ref (dequantized weights times float x).
// Integer paths: |error| <= sum_i |w_i| * d_block(i) / 2 (the activation
// rounding: x is stored as d * round(x / d), d = block amax / 127) plus float
// rounding. bf16: x is rounded to bf16, |error| <= 2^-9 * sum |w||x|. f32,
// f16: float rounding only.
TEST_P(QgemmType, ScalarMatchesFloatReference) {
  const DType t = GetParam();
  constexpr int64_t kOut = 19, kRows = 3;
  for (int64_t n_in : n_ins(t)) {
    SCOPED_TRACE(std::string(dtype_name(t)) + " n_in=" + std::to_string(n_in));
    const std::vector<uint8_t> w = make_w(t, n_in, kOut, 77 + n_in, false);
    const std::vector<float> x = make_x(kRows, n_in, 5);
    const ActPack p = pack(t, x, kRows, n_in);
    std::vector<float> yq(kRows * kOut), yf(kRows * kOut);
    run_table(qgemm_detail::scalar_kernels(), t, w, n_in, 0, kOut, p, yq, kOut);
    matmul_ref(t, w.data(), n_in, kOut, x.data(), n_in, kRows, yf.data(), kOut);
    const std::vector<double> scale = abs_scale(t, w, x, n_in, kOut, kRows);
    const ActFormat f = act_format(t);
    const int blk = f == ActFormat::kQ8K ? 256 : 32;
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < kOut; ++o) {
      ASSERT_TRUE(dequantize_row_ref(t, w.data() + row_bytes(t, n_in) * o, row.data(), n_in).is_ok());
      for (int64_t r = 0; r < kRows; ++r) {
        double bound = 2e-6 * scale[r * kOut + o];
        if (f == ActFormat::kBF16) bound += std::ldexp(scale[r * kOut + o], -9);
        if (f == ActFormat::kQ8K || f == ActFormat::kQ8_32) {
          for (int64_t b = 0; b < n_in / blk; ++b) {
            float amax = 0;
            double wabs = 0;
            for (int64_t i = b * blk; i < (b + 1) * blk; ++i) {
              amax = std::max(amax, std::fabs(x[r * n_in + i]));
              wabs += std::fabs(row[i]);
            }
            bound += wabs * (amax / 127.0) * 0.5 * (1 + 1e-6);
          }
        }
        ASSERT_NEAR(yq[r * kOut + o], yf[r * kOut + o], bound) << "row " << r << " out " << o;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QgemmType, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Fused SwiGLU equals silu(gate) * up from two separate products, bit for
// bit, on every path: a shared ActPack (q4_k gate and up) and two packs
// (q6_k gate, q4_k up), with more rows than one stack tile holds.
TEST(QgemmSwiglu, FusedEqualsSeparate) {
  constexpr int64_t kIn = 512, kOut = 37;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (!cpu_isa_missing(isa).empty()) continue;
    for (int64_t n_rows : {1, 5, 130}) {
      for (DType gt : {DType::kQ4_K, DType::kQ6_K}) {
        SCOPED_TRACE(std::string(cpu_isa_name(isa)) + " gate " + std::string(dtype_name(gt)) + " rows " +
                     std::to_string(n_rows));
        const DType ut = DType::kQ4_K;
        const auto gw = make_w(gt, kIn, kOut, 3, false), uw = make_w(ut, kIn, kOut, 4, false);
        const auto x = make_x(n_rows, kIn, 9);
        const ActPack pg = pack(gt, x, n_rows, kIn), pu = pack(ut, x, n_rows, kIn);
        const ActPack& xg = act_pack_shares_format(gt, ut) ? pu : pg;
        std::vector<float> g(n_rows * kOut), u(n_rows * kOut), h(n_rows * kOut, NAN);
        qgemm_rows_isa(isa, gt, gw.data(), kIn, 0, kOut, xg, g.data(), kOut);
        qgemm_rows_isa(isa, ut, uw.data(), kIn, 0, kOut, pu, u.data(), kOut);
        qgemm_swiglu_rows_isa(isa, gt, gw.data(), ut, uw.data(), kIn, 3, kOut, xg, pu, h.data(), kOut);
        for (int64_t r = 0; r < n_rows; ++r) {
          for (int64_t o = 3; o < kOut; ++o) {
            const float want = silu(g[r * kOut + o]) * u[r * kOut + o];
            ASSERT_EQ(std::memcmp(&want, &h[r * kOut + o], 4), 0) << "row " << r << " out " << o;
          }
        }
      }
    }
  }
}

TEST(QgemmApi, SupportsAndSharedFormats) {
  for (DType t : kTypes) EXPECT_TRUE(qgemm_supports(t)) << dtype_name(t);
  EXPECT_FALSE(qgemm_supports(DType::kQ5_0));
  EXPECT_FALSE(qgemm_supports(DType::kI32));
  EXPECT_TRUE(act_pack_shares_format(DType::kQ4_K, DType::kQ5_K));
  EXPECT_FALSE(act_pack_shares_format(DType::kQ4_K, DType::kQ6_K));
  EXPECT_FALSE(act_pack_shares_format(DType::kQ8_0, DType::kQ4_0));
  EXPECT_TRUE(act_pack_shares_format(DType::kF32, DType::kF16));
}

// Re-preparing for the same or a smaller shape keeps the buffer; quantized
// rows hold d = amax / 127 with the largest magnitude at +-127, and bsums.
TEST(QgemmApi, ActPackReuseAndContents) {
  ActPack p;
  act_pack_prepare(p, DType::kQ6_K, 512, 8);
  const size_t cap = p.capacity_bytes();
  const std::vector<float> x = make_x(8, 512, 1);
  act_pack_rows(p, x.data(), 512, 0, 4);
  act_pack_rows(p, x.data(), 512, 4, 8);
  for (int64_t r = 0; r < 8; ++r) {
    for (int b = 0; b < 2; ++b) {
      float amax = 0;
      for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x[r * 512 + b * 256 + i]));
      EXPECT_FLOAT_EQ(p.d(r)[b], amax / 127.0f);
      int qmax = 0;
      for (int i = 0; i < 256; ++i) qmax = std::max(qmax, std::abs(int(p.q(r)[b * 256 + i])));
      EXPECT_EQ(qmax, 127);
      for (int g = 0; g < 16; ++g) {
        int s = 0;
        for (int i = 0; i < 16; ++i) s += p.q(r)[b * 256 + g * 16 + i];  // q6_k: natural order
        EXPECT_EQ(p.bsums(r)[b * 16 + g], s);
        int lo = 0, hi = 0;  // q6k_offsets: -32 times the sums of positions 4c, 4c + 1 and of 4c + 2, 4c + 3
        for (int c = 0; c < 4; ++c) {
          lo += p.q(r)[b * 256 + g * 16 + 4 * c] + p.q(r)[b * 256 + g * 16 + 4 * c + 1];
          hi += p.q(r)[b * 256 + g * 16 + 4 * c + 2] + p.q(r)[b * 256 + g * 16 + 4 * c + 3];
        }
        const int32_t off = p.q6k_offsets(r)[b * 16 + g];
        EXPECT_EQ(int16_t(off & 0xFFFF), -32 * lo);
        EXPECT_EQ(int16_t(off >> 16), -32 * hi);
      }
    }
  }
  act_pack_prepare(p, DType::kQ4_K, 256, 8);
  EXPECT_EQ(p.capacity_bytes(), cap);
  act_pack_prepare(p, DType::kF32, 64, 4);
  EXPECT_EQ(p.capacity_bytes(), cap);
}

// Every value is round-half-even(x * (127 / amax)) (the clone for this CPU
// of the vectorized quantizer against a plain float computation), a block
// holding a NaN or an infinity comes out zero with d = 0, and a copied row
// equals its source row.
TEST(QgemmApi, ActPackQuantizesExactlyAndCopiesRows) {
  constexpr int kN = 512;
  Xoshiro256 rng(7);
  std::vector<float> x(size_t(3) * kN);
  for (float& v : x) v = float(uniform(rng, -4, 4));
  x[5] = -0.0f;
  x[6] = 127.0f / 254.0f * 4.0f;  // ties and near-ties land on .5 when amax is 4
  x[7] = 4.0f;
  x[kN + 300] = std::numeric_limits<float>::quiet_NaN();     // row 1, block 1
  x[2 * kN + 10] = -std::numeric_limits<float>::infinity();  // row 2, block 0
  ActPack p;
  act_pack_prepare(p, DType::kQ6_K, kN, 3);
  act_pack_rows(p, x.data(), kN, 0, 3);
  for (int64_t r = 0; r < 3; ++r) {
    for (int b = 0; b < 2; ++b) {
      const float* xb = x.data() + r * kN + b * 256;
      const bool finite = std::all_of(xb, xb + 256, [](float v) { return std::isfinite(v); });
      float amax = 0;
      for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(xb[i]));
      EXPECT_EQ(p.d(r)[b], finite ? amax / 127.0f : 0.0f) << "row " << r << " block " << b;
      const float id = 127.0f / amax;
      for (int i = 0; i < 256; ++i) {
        const int want = finite ? int(std::nearbyint(xb[i] * id)) : 0;
        ASSERT_EQ(p.q(r)[b * 256 + i], want) << "row " << r << " block " << b << " at " << i;
      }
    }
  }
  ActPack c;
  act_pack_prepare(c, DType::kQ6_K, kN, 2);
  act_pack_copy_row(c, 1, p, 0);
  EXPECT_EQ(std::memcmp(c.q(1), p.q(0), kN), 0);
  EXPECT_EQ(std::memcmp(c.d(1), p.d(0), 2 * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(c.bsums(1), p.bsums(0), 32 * sizeof(int16_t)), 0);
  EXPECT_EQ(std::memcmp(c.q6k_offsets(1), p.q6k_offsets(0), 32 * sizeof(int32_t)), 0);
}

TEST(CpuIsa, OverridesAndErrors) {
  const Status bad = set_cpu_isa("avx9000");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("avx9000"), std::string::npos) << bad.message();
  const CpuFeatures f = detect_cpu_features();
  if (!f.amx_int8) {
    const Status s = set_cpu_isa("amx");
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_NE(s.message().find("amx: this CPU lacks amx_int8"), std::string::npos) << s.message();
  }
  if (!f.avx512) {
    const Status s = set_cpu_isa("avx512");
    EXPECT_NE(s.message().find("avx512: this CPU lacks avx512f"), std::string::npos) << s.message();
  }
  ASSERT_TRUE(set_cpu_isa("scalar").is_ok());
  EXPECT_EQ(active_cpu_isa(), CpuIsa::kScalar);
  EXPECT_EQ(qgemm_variant_name(active_cpu_isa()), "scalar");
  ASSERT_TRUE(set_cpu_isa("auto").is_ok());
  EXPECT_EQ(active_cpu_isa(), best_cpu_isa());
  EXPECT_EQ(cpu_isa_name(CpuIsa::kAvx512), "avx512");
}

TEST(CpuIsa, DisablingExtensions) {
  CpuFeatures all;
  all.avx2_fma = all.avx512 = all.avx512_vnni = all.avx512_bf16 = all.avx_vnni = all.amx_int8 = all.amx_bf16 = true;
  std::string unknown;
  CpuFeatures f = disable_cpu_features(all, "avx_vnni,amx", &unknown);
  EXPECT_TRUE(unknown.empty()) << unknown;
  EXPECT_FALSE(f.avx_vnni || f.amx_int8 || f.amx_bf16);
  EXPECT_TRUE(f.avx2_fma && f.avx512 && f.avx512_vnni && f.avx512_bf16);
  f = disable_cpu_features(all, "avx512_vnni,,avx512_bf16", &unknown);
  EXPECT_TRUE(unknown.empty()) << unknown;
  EXPECT_FALSE(f.avx512_vnni || f.avx512_bf16);
  EXPECT_TRUE(f.avx_vnni && f.amx_int8);
  // The base paths are STRATA_CPU_ISA's to choose; other names are reported.
  f = disable_cpu_features(all, "avx2,amx,sse9", &unknown);
  EXPECT_EQ(unknown, "avx2,sse9");
  EXPECT_TRUE(f.avx2_fma && !f.amx_int8);
  EXPECT_EQ(qgemm_detail::avx2_kernels(false).name, std::string("avx2"));
  EXPECT_EQ(qgemm_detail::avx2_kernels(true).name, std::string("avx2-vnni"));
}

// The attention vector ops of every CPU path this machine runs, against a
// double-precision sum on odd lengths (tails, masks) and unaligned starts.
TEST(VecF32, EveryPathMatchesAWideSum) {
  Xoshiro256 rng(11);
  std::vector<float> a(1100), b(1100), y(1100), y0(1100);
  for (float& v : a) v = float(uniform(rng, -1, 1));
  for (float& v : b) v = float(uniform(rng, -1, 1));
  for (float& v : y0) v = float(uniform(rng, -1, 1));
  int paths = 0;
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    if (!set_cpu_isa(isa).is_ok()) continue;  // this CPU lacks it
    ++paths;
    const VecF32Ops& ops = vec_f32_ops();
    EXPECT_STREQ(ops.name, isa);
    for (int64_t n : {0, 1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 128, 129, 576, 1000}) {
      for (int64_t off : {0, 3}) {
        double want = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          want += double(a[size_t(off + i)]) * b[size_t(off + i)];
          mag += std::abs(double(a[size_t(off + i)]) * b[size_t(off + i)]);
        }
        EXPECT_NEAR(ops.dot(a.data() + off, b.data() + off, n), want, 1e-6 * mag + 1e-7) << isa << " n=" << n;
        y = y0;
        ops.axpy(0.37f, a.data() + off, y.data() + off, n);
        for (int64_t i = 0; i < 1100; ++i) {
          const bool in = i >= off && i < off + n;
          const double w = in ? double(y0[size_t(i)]) + 0.37 * a[size_t(i)] : y0[size_t(i)];
          ASSERT_NEAR(y[size_t(i)], w, 1e-6) << isa << " n=" << n << " i=" << i;  // nothing outside touched
        }
      }
    }
  }
  ASSERT_TRUE(set_cpu_isa("auto").is_ok());
  EXPECT_GE(paths, 1);
}

// The attention tiles of every CPU path: scores against a double-precision
// sum, each (query, key) pair bit for bit the same alone as in a full tile,
// weighted sums bit for bit those of axpy term by term, nothing written past
// a row, on sizes that leave every kind of partial tile.
TEST(VecF32, AttentionTilesMatchOneRowAtATime) {
  Xoshiro256 rng(12);
  const int64_t kStride = 600, kMaxRows = 17;
  std::vector<float> q(size_t(kMaxRows * kStride)), k(size_t(kMaxRows * kStride)), p(size_t(kMaxRows * kStride));
  for (float& v : q) v = float(uniform(rng, -1, 1));
  for (float& v : k) v = float(uniform(rng, -1, 1));
  for (float& v : p) v = float(uniform(rng, 0, 1));
  std::vector<float> out0(size_t(kMaxRows * kStride));
  for (float& v : out0) v = float(uniform(rng, -1, 1));
  const float kPad = -7.0f;
  int paths = 0;
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    if (!set_cpu_isa(isa).is_ok()) continue;  // this CPU lacks it
    ++paths;
    const VecF32Ops& ops = vec_f32_ops();
    for (int64_t d : {1, 7, 8, 9, 16, 17, 31, 64, 100, 128, 129, 576}) {
      for (int64_t n_q : {1, 2, 3, 4, 5, 8, 9}) {
        for (int64_t n_k : {1, 3, 4, 5, 16, 17}) {
          const std::string at = std::string(isa) + " d=" + std::to_string(d) + " n_q=" + std::to_string(n_q) +
                                 " n_k=" + std::to_string(n_k);
          const int64_t s_stride = n_k + 3;
          std::vector<float> s(size_t(n_q * s_stride), kPad);
          ops.dots(q.data(), kStride, n_q, k.data() + 1, kStride, n_k, d, 0.5f, s.data(), s_stride);
          for (int64_t i = 0; i < n_q; ++i) {
            for (int64_t t = 0; t < s_stride; ++t) {
              const float got = s[size_t(i * s_stride + t)];
              if (t >= n_k) {
                ASSERT_EQ(got, kPad) << at << " wrote past the row";
                continue;
              }
              double want = 0, mag = 0;
              for (int64_t j = 0; j < d; ++j) {
                const double x = double(q[size_t(i * kStride + j)]) * k[size_t(1 + t * kStride + j)];
                want += x;
                mag += std::abs(x);
              }
              ASSERT_NEAR(got, 0.5 * want, 1e-6 * mag + 1e-7) << at << " i=" << i << " t=" << t;
              float alone = kPad;
              ops.dots(q.data() + i * kStride, kStride, 1, k.data() + 1 + t * kStride, kStride, 1, d, 0.5f, &alone, 1);
              ASSERT_EQ(got, alone) << at << " i=" << i << " t=" << t << ": depends on the tile";
            }
          }
          std::vector<float> out = out0, want = out0;
          ops.axpys(p.data(), kStride, n_q, k.data() + 1, kStride, n_k, d, out.data() + 2, kStride);
          for (int64_t t = 0; t < n_k; ++t) {
            for (int64_t i = 0; i < n_q; ++i) {
              ops.axpy(p[size_t(i * kStride + t)], k.data() + 1 + t * kStride, want.data() + 2 + i * kStride, d);
            }
          }
          for (size_t j = 0; j < out.size(); ++j) ASSERT_EQ(out[j], want[j]) << at << " at " << j;
        }
      }
    }
  }
  ASSERT_TRUE(set_cpu_isa("auto").is_ok());
  EXPECT_GE(paths, 1);
}

// The f16 forms of the attention tiles (an f16 KV cache) give, bit for bit,
// what the f32 forms give on the rows widened to f32, on every CPU path and
// on sizes that leave every kind of partial tile and row tail.
TEST(VecF32, F16TilesAreTheF32TilesOnTheWidenedRows) {
  Xoshiro256 rng(13);
  const int64_t kStride = 600, kMaxRows = 17;
  std::vector<float> q(size_t(kMaxRows * kStride)), p(size_t(kMaxRows * kStride)), wide(size_t(kMaxRows * kStride));
  std::vector<uint16_t> half(wide.size());
  for (float& v : q) v = float(uniform(rng, -1, 1));
  for (float& v : p) v = float(uniform(rng, 0, 1));
  for (size_t i = 0; i < half.size(); ++i) wide[i] = f16_to_f32(half[i] = f32_to_f16(float(uniform(rng, -2, 2))));
  int paths = 0;
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    if (!set_cpu_isa(isa).is_ok()) continue;  // this CPU lacks it
    ++paths;
    const VecF32Ops& ops = vec_f32_ops();
    for (int64_t d : {1, 7, 8, 9, 17, 64, 100, 128, 576}) {
      for (int64_t n_q : {1, 3, 4, 5, 8}) {
        for (int64_t n_k : {1, 4, 5, 17}) {
          const std::string at = std::string(isa) + " d=" + std::to_string(d) + " n_q=" + std::to_string(n_q) +
                                 " n_k=" + std::to_string(n_k);
          const int64_t s_stride = n_k + 3;
          std::vector<float> s16(size_t(n_q * s_stride), -7.0f), s32 = s16;
          ops.dots_f16(q.data(), kStride, n_q, half.data() + 1, kStride, n_k, d, 0.5f, s16.data(), s_stride);
          ops.dots(q.data(), kStride, n_q, wide.data() + 1, kStride, n_k, d, 0.5f, s32.data(), s_stride);
          for (size_t j = 0; j < s16.size(); ++j) ASSERT_EQ(s16[j], s32[j]) << at << " score " << j;
          std::vector<float> o16(size_t(kMaxRows * kStride), 1.5f), o32 = o16;
          ops.axpys_f16(p.data(), kStride, n_q, half.data() + 1, kStride, n_k, d, o16.data() + 2, kStride);
          ops.axpys(p.data(), kStride, n_q, wide.data() + 1, kStride, n_k, d, o32.data() + 2, kStride);
          for (size_t j = 0; j < o16.size(); ++j) ASSERT_EQ(o16[j], o32[j]) << at << " output " << j;
        }
      }
    }
  }
  ASSERT_TRUE(set_cpu_isa("auto").is_ok());
  EXPECT_GE(paths, 1);
}

// Every path's float -> f16 conversion rounds as f32_to_f16 does (nearest
// even, half subnormals, overflow to inf), and widening is exact.
TEST(VecF32, F16ConversionsMatchTheScalarOnes) {
  Xoshiro256 rng(14);
  std::vector<float> x;
  for (int i = 0; i < 4000; ++i) x.push_back(float(uniform(rng, -1, 1) * std::exp2(uniform(rng, -30, 18))));
  // Ties between two halves (1 + 2^-11 and 1 + 3 * 2^-11), the largest half and the first value that rounds to inf.
  for (float v : {1.00048828125f, 1.00146484375f, 65504.0f, 65520.0f, -65519.0f, 5.96e-8f, 2.98e-8f, 0.0f, -0.0f}) {
    x.push_back(v);
  }
  x.push_back(std::numeric_limits<float>::infinity());
  int paths = 0;
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    if (!set_cpu_isa(isa).is_ok()) continue;  // this CPU lacks it
    ++paths;
    const VecF32Ops& ops = vec_f32_ops();
    for (const size_t n : {x.size(), size_t(13)}) {  // whole vectors and a tail
      std::vector<uint16_t> h(n, 0x1234);
      ops.to_f16(x.data(), h.data(), int64_t(n));
      std::vector<float> back(n, -1.0f);
      ops.from_f16(h.data(), back.data(), int64_t(n));
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(h[i], f32_to_f16(x[i])) << isa << " x=" << x[i];
        ASSERT_EQ(f32_to_bits(back[i]), f32_to_bits(f16_to_f32(h[i]))) << isa << " x=" << x[i];
      }
    }
  }
  ASSERT_TRUE(set_cpu_isa("auto").is_ok());
  EXPECT_GE(paths, 1);
}

}  // namespace
}  // namespace strata
