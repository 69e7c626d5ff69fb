// The oneDNN product path against matmul_ref (float reference on the same
// dequantized weights): f32 within float rounding, bf16 within its 8-bit
// mantissa, on odd output counts, split ranges, strided rows and batches
// larger than one primitive's chunk; the fused SwiGLU; errors that leave the
// output alone; and the qgemm/oneDNN choice (policies, thresholds, the
// measured auto choice).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/dnnl_gemm.h"
#include "cpu_kernels/gemm_choice.h"
#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/qgemm.h"
#include "tests/matmul_fixture.h"

namespace strata {
namespace {

using test::abs_scale;
using test::make_w;
using test::make_x;
using test::row_bytes;

// Every type a real expert or projection uses, and q5_0, which qgemm lacks.
const DType kTypes[] = {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_0,  DType::kQ4_0, DType::kIQ4_XS,
                        DType::kBF16, DType::kF16,  DType::kF32,  DType::kQ3_K,  DType::kQ2_K, DType::kIQ1_S,
                        DType::kIQ4_NL, DType::kQ5_0};

std::vector<DnnlPrecision> precisions() {
  std::vector<DnnlPrecision> p;
  for (DnnlPrecision q : {DnnlPrecision::kF32, DnnlPrecision::kBF16}) {
    if (dnnl_precision_available(q)) p.push_back(q);
  }
  return p;
}

// Relative bound of one product: f32 rounding of a dot of n_in terms, or
// bf16 rounding of both operands (2^-8 relative each) plus that.
double tolerance(DnnlPrecision p) { return p == DnnlPrecision::kF32 ? 2e-5 : 1.6e-2; }

TEST(DnnlGemm, F32IsAvailable) {
  // Debian's oneDNN runs f32 matmul on every x86-64 CPU (SSE4.1 and up).
  EXPECT_TRUE(dnnl_precision_available(DnnlPrecision::kF32));
  std::printf("[ measured ] onednn bf16 matmul on this CPU: %s\n",
              dnnl_precision_available(DnnlPrecision::kBF16) ? "yes" : "no");
}

TEST(DnnlGemm, MatchesReferenceOnEveryType) {
  constexpr int64_t kOut = 77;  // not a multiple of the tile or of 16
  for (DType t : kTypes) {
    const int64_t n_in = dtype_traits(t).block_elems >= 256 ? 512 : 96;
    const std::vector<uint8_t> w = make_w(t, n_in, kOut, 11 + n_in, false);
    for (int64_t n_rows : {1, 33, 300}) {  // 300: more than one 256-row chunk
      // Rows sit n_in + 8 floats apart (a strided view, as for per-head slices).
      const int64_t x_stride = n_in + 8;
      const std::vector<float> dense = make_x(n_rows, n_in, 3 + n_rows);
      std::vector<float> x(size_t(n_rows * x_stride), 1e30f);
      for (int64_t r = 0; r < n_rows; ++r) std::copy_n(dense.begin() + r * n_in, n_in, x.begin() + r * x_stride);
      std::vector<float> want(size_t(n_rows * kOut));
      matmul_ref(t, w.data(), n_in, kOut, x.data(), x_stride, n_rows, want.data(), kOut);
      const std::vector<double> scale = abs_scale(t, w, dense, n_in, kOut, n_rows);
      for (DnnlPrecision p : precisions()) {
        DnnlActs a;
        a.prepare(p, x.data(), x_stride, n_in, n_rows);
        std::vector<float> got(size_t(n_rows * kOut), NAN);
        // Two ranges, the split not on a tile boundary.
        ASSERT_TRUE(dnnl_gemm_rows(t, w.data(), n_in, 0, 37, a, got.data(), kOut).is_ok());
        ASSERT_TRUE(dnnl_gemm_rows(t, w.data(), n_in, 37, kOut, a, got.data(), kOut).is_ok());
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_TRUE(std::isfinite(got[i])) << dtype_name(t) << " " << dnnl_precision_name(p) << " at " << i;
          worst = std::max(worst, std::fabs(double(got[i]) - want[i]) / (scale[i] + 1e-12));
        }
        if (n_rows == 300) std::printf("[ measured ] %s %s worst %.3g\n", std::string(dtype_name(t)).c_str(), dnnl_precision_name(p), worst);
        EXPECT_LE(worst, tolerance(p)) << dtype_name(t) << " " << dnnl_precision_name(p) << " rows " << n_rows;
      }
    }
  }
}

TEST(DnnlGemm, SwigluEqualsTheTwoProducts) {
  constexpr int64_t kIn = 256, kOut = 50, kRows = 40;
  for (DType t : {DType::kQ4_K, DType::kQ8_0, DType::kBF16}) {
    const std::vector<uint8_t> g = make_w(t, kIn, kOut, 5, false), u = make_w(t, kIn, kOut, 6, false);
    const std::vector<float> x = make_x(kRows, kIn, 8);
    std::vector<float> gr(kRows * kOut), ur(kRows * kOut);
    matmul_ref(t, g.data(), kIn, kOut, x.data(), kIn, kRows, gr.data(), kOut);
    matmul_ref(t, u.data(), kIn, kOut, x.data(), kIn, kRows, ur.data(), kOut);
    const std::vector<double> gs = abs_scale(t, g, x, kIn, kOut, kRows), us = abs_scale(t, u, x, kIn, kOut, kRows);
    DnnlActs a;
    a.prepare(DnnlPrecision::kF32, x.data(), kIn, kIn, kRows);
    std::vector<float> h(kRows * kOut, NAN);
    ASSERT_TRUE(dnnl_gemm_swiglu_rows(t, g.data(), t, u.data(), kIn, 0, 20, a, h.data(), kOut).is_ok());
    ASSERT_TRUE(dnnl_gemm_swiglu_rows(t, g.data(), t, u.data(), kIn, 20, kOut, a, h.data(), kOut).is_ok());
    for (size_t i = 0; i < h.size(); ++i) {
      // d(silu(g) u) = silu'(g) u dg + silu(g) du, with |silu'| <= 1.1.
      const double want = double(silu(gr[i])) * ur[i];
      const double bound = 2e-5 * (1.1 * std::fabs(ur[i]) * gs[i] + std::fabs(silu(gr[i])) * us[i]) + 1e-9;
      ASSERT_NEAR(h[i], want, bound) << dtype_name(t) << " at " << i;
    }
  }
}

TEST(DnnlGemm, ErrorsLeaveTheOutputAlone) {
  const std::vector<uint8_t> w = make_w(DType::kQ8_0, 64, 16, 1, false);
  const std::vector<float> x = make_x(4, 64, 2);
  DnnlActs a;
  a.prepare(DnnlPrecision::kF32, x.data(), 64, 64, 4);
  std::vector<float> y(64, 7.0f);
  // Activations of the wrong width.
  Status s = dnnl_gemm_rows(DType::kQ8_0, w.data(), 96, 0, 16, a, y.data(), 16);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("activations 64 wide"), std::string::npos) << s.message();
  // A backwards range.
  EXPECT_EQ(dnnl_gemm_rows(DType::kQ8_0, w.data(), 64, 9, 3, a, y.data(), 16).code(), StatusCode::kInvalidArgument);
  // A row length that is not a whole number of blocks.
  EXPECT_EQ(dnnl_gemm_rows(DType::kQ8_0, w.data(), 40, 0, 16, a, y.data(), 16).code(), StatusCode::kInvalidArgument);
  // A type without a dequantizer.
  s = dnnl_gemm_rows(DType::kI32, w.data(), 64, 0, 16, a, y.data(), 16);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("i32"), std::string::npos) << s.message();
  for (float v : y) ASSERT_EQ(v, 7.0f);
}

TEST(DnnlGemm, TileRows) {
  EXPECT_EQ(dnnl_gemm_tile_rows(2048), 32);  // 32 x 2048 f32 = 256 KiB
  EXPECT_EQ(dnnl_gemm_tile_rows(7168), 16);  // never below 16
  EXPECT_EQ(dnnl_gemm_tile_rows(64), 256);   // never above 256
  EXPECT_EQ(dnnl_gemm_tile_rows(768) % 16, 0);
}

TEST(GemmChoice, PoliciesAndThresholds) {
  EXPECT_EQ(*parse_gemm_policy("auto"), GemmPolicy::kAuto);
  EXPECT_EQ(*parse_gemm_policy("native"), GemmPolicy::kNative);
  EXPECT_EQ(*parse_gemm_policy("onednn"), GemmPolicy::kDnnl);
  const Result<GemmPolicy> bad = parse_gemm_policy("mkl");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("expected auto, native or onednn"), std::string::npos);

  const std::vector<uint8_t> w = make_w(DType::kQ4_K, 256, 64, 1, false);
  set_gemm_policy(GemmPolicy::kDnnl);
  EXPECT_EQ(choose_gemm_path(DType::kQ4_K, w.data(), 256, 64, kDnnlMinRows), GemmPath::kDnnlF32);
  EXPECT_EQ(choose_gemm_path(DType::kQ4_K, w.data(), 256, 64, kDnnlMinRows - 1), GemmPath::kNative);
  EXPECT_EQ(choose_gemm_path(DType::kI32, w.data(), 256, 64, 512), GemmPath::kNative);
  set_gemm_policy(GemmPolicy::kNative);
  EXPECT_EQ(choose_gemm_path(DType::kQ4_K, w.data(), 256, 64, 512), GemmPath::kNative);
  set_gemm_policy(GemmPolicy::kAuto);
  // A type qgemm lacks goes to oneDNN without a measurement.
  const std::vector<uint8_t> q5 = make_w(DType::kQ5_0, 256, 64, 2, false);
  EXPECT_EQ(choose_gemm_path(DType::kQ5_0, q5.data(), 256, 64, 100), GemmPath::kDnnlF32);
  EXPECT_TRUE(gemm_choices().empty());
}

TEST(GemmChoice, AutoMeasuresOncePerBucketAndPicksTheFaster) {
  set_gemm_policy(GemmPolicy::kAuto);
  const std::vector<uint8_t> w = make_w(DType::kQ8_0, 512, 96, 3, false);
  const GemmPath p = choose_gemm_path(DType::kQ8_0, w.data(), 512, 96, 100);  // bucket 64
  std::vector<GemmChoice> c = gemm_choices();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].rows, 64);
  EXPECT_EQ(c[0].path, p);
  EXPECT_GT(c[0].native_ms, 0);
  EXPECT_GT(c[0].dnnl_f32_ms, 0);
  double best = c[0].native_ms;
  for (double ms : {c[0].dnnl_f32_ms, c[0].dnnl_bf16_ms}) {
    if (ms > 0) best = std::min(best, ms);
  }
  const double picked = p == GemmPath::kNative ? c[0].native_ms : p == GemmPath::kDnnlF32 ? c[0].dnnl_f32_ms : c[0].dnnl_bf16_ms;
  EXPECT_EQ(picked, best);
  std::printf("[ measured ] %s\n", describe(c[0]).c_str());
  // The same bucket is looked up, another is measured.
  EXPECT_EQ(choose_gemm_path(DType::kQ8_0, w.data(), 512, 96, 127), p);
  EXPECT_EQ(gemm_choices().size(), 1u);
  choose_gemm_path(DType::kQ8_0, w.data(), 512, 96, 600);
  c = gemm_choices();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_NE(describe(c[1]).find("512+ rows"), std::string::npos) << describe(c[1]);
  set_gemm_policy(GemmPolicy::kAuto);
  EXPECT_TRUE(gemm_choices().empty());
}

TEST(GemmChoice, AFileKeepsChoicesAcrossRuns) {
  const std::string path = ::testing::TempDir() + "gemm-choices-" + std::to_string(getpid()) + ".json";
  std::remove(path.c_str());
  auto read = [&] {
    std::ifstream f(path);
    return nlohmann::json::parse(f, nullptr, false);
  };
  const std::vector<uint8_t> w = make_w(DType::kQ8_0, 512, 96, 3, false);
  // First run: nothing recorded, the choice is timed and written.
  set_gemm_policy(GemmPolicy::kAuto);
  ASSERT_TRUE(use_gemm_choice_file(path).is_ok());
  const GemmPath first = choose_gemm_path(DType::kQ8_0, w.data(), 512, 96, 100);
  nlohmann::json j = read();
  ASSERT_FALSE(j.is_discarded());
  // One machine: this CPU and this build of the test binary.
  ASSERT_EQ(j["machines"].size(), 1u) << j.dump();
  const std::string brand = j["machines"].begin().key();
  EXPECT_EQ(brand.rfind((cpu_brand().empty() ? std::string("unknown CPU") : cpu_brand()) + " | build ", 0), 0u);
  ASSERT_EQ(j["machines"][brand].size(), 1u) << j.dump();
  EXPECT_EQ(j["machines"][brand][0]["path"], gemm_path_name(first));
  EXPECT_EQ(j["machines"][brand][0]["rows"], 64);

  // A later run takes the recorded choice without timing: edit it to the
  // other path with a recognizable timing and load it afresh.
  const GemmPath other = first == GemmPath::kNative ? GemmPath::kDnnlF32 : GemmPath::kNative;
  j["machines"][brand][0]["path"] = gemm_path_name(other);
  j["machines"][brand][0]["qgemm_ms"] = 12345.0;
  std::ofstream(path) << j.dump();
  set_gemm_policy(GemmPolicy::kAuto);
  ASSERT_TRUE(use_gemm_choice_file(path).is_ok());
  EXPECT_EQ(choose_gemm_path(DType::kQ8_0, w.data(), 512, 96, 127), other);
  ASSERT_EQ(gemm_choices().size(), 1u);
  EXPECT_EQ(gemm_choices()[0].native_ms, 12345.0);
  // A new shape is added; the recorded one stays as it was.
  choose_gemm_path(DType::kQ8_0, w.data(), 512, 96, 600);
  j = read();
  ASSERT_EQ(j["machines"][brand].size(), 2u) << j.dump();
  EXPECT_EQ(j["machines"][brand][0]["path"], gemm_path_name(other));

  // Damaged files are named; the process goes on measuring.
  std::ofstream(path) << "{not json";
  Status s = use_gemm_choice_file(path);
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  j = {{"version", 1}, {"machines", {{brand, {{{"type", "q8_0"}, {"n_in", 512}, {"n_out", 96}, {"rows", 64},
                                               {"isa", "avx2"}, {"path", "cublas"}}}}}}};
  std::ofstream(path) << j.dump();
  s = use_gemm_choice_file(path);
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat);
  EXPECT_NE(s.message().find("[0]: expected type, n_in, n_out, rows, isa and path"), std::string::npos) << s.message();

  ASSERT_TRUE(use_gemm_choice_file("").is_ok());
  set_gemm_policy(GemmPolicy::kAuto);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace strata
