// The packed (rows interleaved by 16) Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0,
// Q4_0 and IQ4_XS layouts: packing round-trips bit for bit, the scalar
// packed kernel equals the GGUF scalar kernel bit for bit, every SIMD packed
// kernel this CPU runs (AVX2, AVX-512 with and without VNNI) matches it up
// to the float accumulation order and is range- and batch-invariant, and the
// fused SwiGLU on packed weights equals silu(gate) * up of the packed
// products.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/qgemm_internal.h"
#include "cpu_kernels/qgemm_packed.h"
#include "tests/matmul_fixture.h"

namespace strata {
namespace {

using test::abs_scale;
using test::make_w;
using test::make_x;
using test::row_bytes;

class QgemmPacked : public ::testing::TestWithParam<DType> {};

std::vector<uint8_t> packed_of(DType kT, const std::vector<uint8_t>& w, int64_t n_in, int64_t n_out) {
  std::vector<uint8_t> p(qgemm_packed_bytes(kT, n_in, n_out));
  // Two ranges, as two threads would pack them.
  const int64_t mid = n_out / 2 / kPackRows * kPackRows;
  qgemm_pack(kT, w.data(), n_in, 0, mid, p.data());
  qgemm_pack(kT, w.data(), n_in, mid, n_out, p.data());
  return p;
}

ActPack pack_x(DType kT, const std::vector<float>& x, int64_t n_rows, int64_t n_in) {
  ActPack a;
  act_pack_prepare(a, kT, n_in, n_rows);
  act_pack_rows(a, x.data(), n_in, 0, n_rows);
  return a;
}

// The packed kernel of an explicit table (the plain AVX-512 one, which
// kernel_table() never picks on a CPU with VNNI).
void run_packed_table(DType kT, const qgemm_detail::KernelTable& t, const std::vector<uint8_t>& p, int64_t n_in,
                      int64_t n_out, const ActPack& a, std::vector<float>& y) {
  const qgemm_detail::GemmArgs args{p.data(), qgemm_packed_bytes(kT, n_in, kPackRows), n_in, 0, n_out, &a, 0,
                                    a.n_rows(), y.data(), n_out};
  t.packed[static_cast<int>(kT)](args);
}

// The kernel tables this CPU can run that no CpuIsa selects (each path
// takes the variant with every extension the CPU has): plain AVX-512 beside
// its VNNI variant, plain AVX2 beside AVX-VNNI.
std::vector<const qgemm_detail::KernelTable*> tables_beside_the_chosen() {
  const CpuFeatures f = detect_cpu_features();
  std::vector<const qgemm_detail::KernelTable*> v;
  if (f.avx512 && f.avx512_vnni) v.push_back(&qgemm_detail::avx512_kernels(false, false));
  if (f.avx2_fma && f.avx_vnni) v.push_back(&qgemm_detail::avx2_kernels(false));
  return v;
}

std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> v;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (cpu_isa_missing(isa).empty()) v.push_back(isa);
  }
  return v;
}

TEST_P(QgemmPacked, PackingRoundTripsExactly) {
  const DType kT = GetParam();
  for (bool raw : {false, true}) {
    for (int64_t n_in : {256, 768, 2048}) {
      const int64_t n_out = 48;
      const std::vector<uint8_t> w = make_w(kT, n_in, n_out, 31 + n_in, raw);
      const std::vector<uint8_t> p = packed_of(kT, w, n_in, n_out);
      EXPECT_EQ(p.size(), size_t(n_out / 16) * size_t(n_in / 256) *
                              (kT == DType::kQ2_K    ? 1344
                               : kT == DType::kQ3_K  ? 1856
                               : kT == DType::kQ4_K  ? 2368
                               : kT == DType::kQ5_K  ? 2880
                               : kT == DType::kQ6_K  ? 3360
                               : kT == DType::kQ8_0  ? 4352
                               : kT == DType::kQ4_0  ? 2304
                                                     : 2240));
      std::vector<uint8_t> back(row_bytes(kT, n_in) * n_out);
      qgemm_unpack(kT, p.data(), n_in, 0, n_out, back.data());
      ASSERT_EQ(std::memcmp(back.data(), w.data(), back.size()), 0) << "n_in " << n_in << (raw ? " raw" : "");
      // A range in the middle comes back at offset 0.
      std::vector<uint8_t> mid(row_bytes(kT, n_in) * 16);
      qgemm_unpack(kT, p.data(), n_in, 16, 32, mid.data());
      ASSERT_EQ(std::memcmp(mid.data(), w.data() + row_bytes(kT, n_in) * 16, mid.size()), 0);
    }
  }
}

TEST_P(QgemmPacked, PackableShapes) {
  const DType kT = GetParam();
  EXPECT_TRUE(qgemm_packable(kT, 2048, 768));
  EXPECT_FALSE(qgemm_packable(kT, 2048, 760));  // not a multiple of 16 rows
  EXPECT_FALSE(qgemm_packable(kT, 100, 16));
  EXPECT_FALSE(qgemm_packable(kT, 2080, 16));  // Q8_0, Q4_0 rows must be whole 256-element blocks too
  EXPECT_FALSE(qgemm_packable(DType::kQ4_1, 2048, 768));
  EXPECT_FALSE(qgemm_packed_fast(CpuIsa::kScalar, kT));
  // Every type has packed AVX2 tiles, with or without AVX-VNNI (without it,
  // Q8_0 and IQ4_XS multiply by sign: u8 x s8 pair sums of their +128 values
  // overflow vpmaddubsw's int16). On AVX-512 those two need VNNI.
  EXPECT_EQ(qgemm_packed_fast(CpuIsa::kAvx2, kT), cpu_isa_missing(CpuIsa::kAvx2).empty());
  EXPECT_NE(qgemm_detail::avx2_kernels(false).packed[int(kT)], nullptr);
  const bool vnni_only = kT == DType::kQ8_0 || kT == DType::kIQ4_XS;
  EXPECT_EQ(qgemm_packed_fast(CpuIsa::kAvx512, kT),
            cpu_isa_missing(CpuIsa::kAvx512).empty() && (!vnni_only || detect_cpu_features().avx512_vnni));
}

// Scalar packed == scalar GGUF bit for bit; each SIMD path near the scalar
// one, independent of output range and batch.
TEST_P(QgemmPacked, EveryPathMatchesTheGgufKernel) {
  const DType kT = GetParam();
  constexpr int64_t kOut = 48;
  for (bool raw : {false, true}) {
    for (int64_t n_in : {256, 768, 7168}) {
      const std::vector<uint8_t> w = make_w(kT, n_in, kOut, 1000 + n_in, raw);
      const std::vector<uint8_t> p = packed_of(kT, w, n_in, kOut);
      for (int64_t n_rows : {1, 2, 3, 4, 5, 9, 67}) {
        if (n_in > 1024 && n_rows > 9) continue;  // keeps the test fast
        const std::vector<float> x = make_x(n_rows, n_in, 7 + n_rows);
        const ActPack a = pack_x(kT, x, n_rows, n_in);
        const size_t n = size_t(n_rows * kOut);
        std::vector<float> ref(n, NAN);
        qgemm_rows_isa(CpuIsa::kScalar, kT, w.data(), n_in, 0, kOut, a, ref.data(), kOut);
        const std::vector<double> scale = abs_scale(kT, w, x, n_in, kOut, n_rows);
        for (CpuIsa isa : runnable_isas()) {
          SCOPED_TRACE(std::string(cpu_isa_name(isa)) + " n_in=" + std::to_string(n_in) +
                       " n_rows=" + std::to_string(n_rows) + (raw ? " raw" : ""));
          std::vector<float> y(n, NAN), yr(n, NAN);
          qgemm_packed_rows_isa(isa, kT, p.data(), n_in, 0, kOut, a, y.data(), kOut);
          qgemm_packed_rows_isa(isa, kT, p.data(), n_in, 16, kOut, a, yr.data(), kOut);
          for (size_t i = 0; i < n; ++i) {
            if (isa == CpuIsa::kScalar) {
              ASSERT_EQ(std::memcmp(&y[i], &ref[i], 4), 0) << "row " << i / kOut << " out " << i % kOut;
            } else {
              ASSERT_NEAR(y[i], ref[i], 1e-5 * scale[i] + 1e-30) << "row " << i / kOut << " out " << i % kOut;
            }
            if (int64_t(i) % kOut >= 16) {
              ASSERT_EQ(std::memcmp(&y[i], &yr[i], 4), 0) << "range changed " << i;
            }
          }
          // The last row prepared alone gives the same bits as in the batch.
          const std::vector<float> xr(x.end() - n_in, x.end());
          const ActPack a1 = pack_x(kT, xr, 1, n_in);
          std::vector<float> y1(kOut, NAN);
          qgemm_packed_rows_isa(isa, kT, p.data(), n_in, 0, kOut, a1, y1.data(), kOut);
          ASSERT_EQ(std::memcmp(y1.data(), y.data() + (n_rows - 1) * kOut, kOut * 4), 0) << "row alone differs";
        }
        for (const qgemm_detail::KernelTable* t : tables_beside_the_chosen()) {
          if (!t->packed[int(kT)]) continue;
          std::vector<float> y(n, NAN);
          run_packed_table(kT, *t, p, n_in, kOut, a, y);
          for (size_t i = 0; i < n; ++i) {
            ASSERT_NEAR(y[i], ref[i], 1e-5 * scale[i] + 1e-30) << t->name << ", n_in " << n_in << " rows " << n_rows;
          }
        }
      }
    }
  }
}

// Extreme quants against activations of magnitude 127 in sign patterns that
// fill each SIMD lane's narrow (int16) sums to the limit the kernels' bounds
// allow: every path still equals the scalar one.
TEST_P(QgemmPacked, ExtremeValuesFitTheNarrowSums) {
  const DType kT = GetParam();
  constexpr int64_t kIn = 768, kOut = 32;
  for (int n_rows : {4, 40}) {
    std::vector<float> x(size_t(n_rows * kIn));
    for (int r = 0; r < n_rows; ++r) {
      for (int64_t i = 0; i < kIn; ++i) {
        const bool neg = r % 4 == 1 || (r % 4 == 2 && i % 2 == 1) || (r % 4 == 3 && i % 4 >= 2);
        x[size_t(r * kIn + i)] = neg ? -1.0f : 1.0f;
      }
    }
    const ActPack a = pack_x(kT, x, n_rows, kIn);
    for (int fill : {0x00, 0xFF, 0x80, 0x7F}) {
      const std::vector<uint8_t> w = test::make_extreme_w(kT, kIn, kOut, uint8_t(fill));
      const std::vector<uint8_t> p = packed_of(kT, w, kIn, kOut);
      const size_t n = size_t(n_rows * kOut);
      std::vector<float> ref(n, NAN);
      qgemm_rows_isa(CpuIsa::kScalar, kT, w.data(), kIn, 0, kOut, a, ref.data(), kOut);
      const std::vector<double> scale = abs_scale(kT, w, x, kIn, kOut, n_rows);
      std::vector<std::pair<std::string, std::vector<float>>> got;
      for (CpuIsa isa : runnable_isas()) {
        got.emplace_back(cpu_isa_name(isa), std::vector<float>(n, NAN));
        qgemm_packed_rows_isa(isa, kT, p.data(), kIn, 0, kOut, a, got.back().second.data(), kOut);
      }
      for (const qgemm_detail::KernelTable* t : tables_beside_the_chosen()) {
        if (!t->packed[int(kT)]) continue;
        got.emplace_back(t->name, std::vector<float>(n, NAN));
        run_packed_table(kT, *t, p, kIn, kOut, a, got.back().second);
      }
      for (const auto& [name, y] : got) {
        for (size_t i = 0; i < n; ++i) {
          ASSERT_NEAR(y[i], ref[i], 1e-5 * scale[i] + 1e-30)
              << name << ", fill " << fill << ", row " << i / kOut << " of " << n_rows << ", out " << i % kOut;
        }
      }
    }
  }
}

TEST_P(QgemmPacked, FusedSwigluEqualsSeparateProducts) {
  const DType kT = GetParam();
  constexpr int64_t kIn = 512, kOut = 64, kRows = 6;
  const std::vector<uint8_t> g = make_w(kT, kIn, kOut, 5, false), u = make_w(kT, kIn, kOut, 6, false);
  const std::vector<uint8_t> gp = packed_of(kT, g, kIn, kOut), up = packed_of(kT, u, kIn, kOut);
  const std::vector<float> x = make_x(kRows, kIn, 3);
  const ActPack a = pack_x(kT, x, kRows, kIn);
  for (CpuIsa isa : runnable_isas()) {
    SCOPED_TRACE(std::string(cpu_isa_name(isa)));
    std::vector<float> yg(kRows * kOut), yu(kRows * kOut), h(kRows * kOut, NAN);
    qgemm_packed_rows_isa(isa, kT, gp.data(), kIn, 0, kOut, a, yg.data(), kOut);
    qgemm_packed_rows_isa(isa, kT, up.data(), kIn, 0, kOut, a, yu.data(), kOut);
    qgemm_packed_swiglu_rows_isa(isa, kT, gp.data(), up.data(), kIn, 16, kOut, a, h.data(), kOut);
    for (int64_t i = 0; i < kRows * kOut; ++i) {
      if (i % kOut < 16) {
        ASSERT_TRUE(std::isnan(h[i])) << "wrote outside the range at " << i;
        continue;
      }
      const float want = silu(yg[i]) * yu[i];
      ASSERT_EQ(std::memcmp(&h[i], &want, 4), 0) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QgemmPacked,
                         ::testing::Values(DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
                                           DType::kQ8_0, DType::kQ4_0, DType::kIQ4_XS),
                         [](const ::testing::TestParamInfo<DType>& i) { return std::string(dtype_name(i.param)); });

}  // namespace
}  // namespace strata
