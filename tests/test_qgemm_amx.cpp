// The AMX-INT8 packed kernels: on the scalar model of the tiles (every line
// but the tile instructions; needs AVX-512) and, on a CPU with AMX, on the
// tiles, each type gives the AVX-512 packed kernel's bits exactly on odd
// shapes (short last tiles, several row chunks, output sub-ranges); the AMX
// path's table takes them only after its own check, which a wrong kernel fails.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/qgemm_internal.h"
#include "cpu_kernels/qgemm_packed.h"
#include "tests/matmul_fixture.h"

namespace strata {
namespace {

using qgemm_detail::GemmArgs;
using qgemm_detail::GemmFn;

class QgemmAmx : public ::testing::TestWithParam<DType> {};

GemmFn avx512_packed(DType t) {
  const CpuFeatures f = detect_cpu_features();
  return qgemm_detail::avx512_kernels(f.avx512_vnni, f.avx512_bf16).packed[static_cast<int>(t)];
}

// `tiles` against the AVX-512 kernel, bit for bit, on every shape.
void expect_same_bits(DType t, GemmFn tiles) {
  ASSERT_NE(tiles, nullptr);
  const GemmFn ref = avx512_packed(t);
  ASSERT_NE(ref, nullptr);
  for (int64_t n_in : {256, 1280}) {
    const int64_t n_out = 48;
    const std::vector<uint8_t> w = test::make_w(t, n_in, n_out, 7 + n_in, false);
    std::vector<uint8_t> p(qgemm_packed_bytes(t, n_in, n_out));
    qgemm_pack(t, w.data(), n_in, 0, n_out, p.data());
    const size_t group_bytes = qgemm_packed_bytes(t, n_in, kPackRows);
    for (int64_t rows : {1, 15, 16, 17, 40, 150}) {
      const std::vector<float> xf = test::make_x(rows, n_in, 100 + rows);
      ActPack x;
      act_pack_prepare(x, t, n_in, rows);
      act_pack_rows(x, xf.data(), n_in, 0, rows);
      for (const auto& [ob, oe] : {std::pair<int64_t, int64_t>{0, n_out}, {16, 32}}) {
        for (const auto& [rb, re] : {std::pair<int64_t, int64_t>{0, rows}, {rows / 3, rows}}) {
          if (rb == re) continue;
          std::vector<float> y0(static_cast<size_t>(rows * n_out), -1.0f), y1 = y0;
          const GemmArgs a0{p.data(), group_bytes, n_in, ob, oe, &x, rb, re, y0.data(), n_out};
          GemmArgs a1 = a0;
          a1.y = y1.data();
          tiles(a0);
          ref(a1);
          ASSERT_EQ(std::memcmp(y0.data(), y1.data(), y0.size() * sizeof(float)), 0)
              << dtype_name(t) << " n_in " << n_in << " rows [" << rb << ", " << re << ") outputs [" << ob << ", "
              << oe << ")";
        }
      }
    }
  }
}

TEST_P(QgemmAmx, EmulatedTilesGiveTheAvx512Bits) {
  if (!detect_cpu_features().avx512) GTEST_SKIP() << "the AMX kernels' scaling needs AVX-512, which this CPU lacks";
  const DType t = GetParam();
  expect_same_bits(t, qgemm_detail::amx_emulated::packed_kernel(t));
  // The emulated table passed its own check and takes batches of 16 rows.
  const qgemm_detail::KernelTable& table = qgemm_detail::amx_kernels(true);
  EXPECT_EQ(std::string(table.name), "amx-emulated");
  EXPECT_NE(table.packed[static_cast<int>(t)], avx512_packed(t));
  expect_same_bits(t, table.packed[static_cast<int>(t)]);
}

TEST_P(QgemmAmx, TilesGiveTheAvx512Bits) {
  const DType t = GetParam();
  if (!detect_cpu_features().amx_int8) GTEST_SKIP() << "AMX tiles: " << cpu_isa_missing(CpuIsa::kAmx);
  expect_same_bits(t, qgemm_detail::amx_hw::packed_kernel(t));
  EXPECT_NE(qgemm_detail::kernel_table(CpuIsa::kAmx).packed[static_cast<int>(t)], avx512_packed(t))
      << "the AMX table fell back to AVX-512 for " << dtype_name(t);
}

// Calls the AVX-512 kernel, then changes the last bit of its first output.
template <DType kType>
void off_by_one_bit(const GemmArgs& a) {
  avx512_packed(kType)(a);
  uint32_t u;
  std::memcpy(&u, a.y, 4);
  u ^= 1;
  std::memcpy(a.y, &u, 4);
}

TEST(QgemmAmxCheck, RejectsAKernelOffByOneBit) {
  if (!detect_cpu_features().avx512) GTEST_SKIP() << "needs the AVX-512 kernels, which this CPU lacks";
  EXPECT_TRUE(qgemm_detail::amx_agrees(DType::kQ4_K, avx512_packed(DType::kQ4_K), avx512_packed(DType::kQ4_K)));
  EXPECT_FALSE(qgemm_detail::amx_agrees(DType::kQ4_K, off_by_one_bit<DType::kQ4_K>, avx512_packed(DType::kQ4_K)));
  EXPECT_FALSE(qgemm_detail::amx_agrees(DType::kQ8_0, avx512_packed(DType::kQ4_0), avx512_packed(DType::kQ8_0)));
}

INSTANTIATE_TEST_SUITE_P(Types, QgemmAmx,
                         ::testing::Values(DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_0, DType::kQ4_0,
                                           DType::kIQ4_XS),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace strata
