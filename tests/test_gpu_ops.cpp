// GPU kernels against the CPU references: embedding rows and dequantization
// (bit-exact), RMSNorm, RoPE with YaRN and frequency factors, element-wise
// ops, routing (ids exact, incl. ties and groups, against moe_route). The
// launchers' argument errors are checked first and need no device.
#include <algorithm>
#include <cstring>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/norm.h"
#include "cpu_kernels/rope.h"
#include "gpu_kernels/dequant.cuh"
#include "gpu_kernels/elementwise.cuh"
#include "gpu_kernels/rmsnorm.cuh"
#include "gpu_kernels/rope.cuh"
#include "gpu_kernels/router.cuh"
#include "runtime/base/half.h"
#include "runtime/layers/moe_ffn.h"
#include "tests/test_gpu_common.h"

namespace strata {
namespace {

using namespace gpu_test;

// ---- argument errors (return before any CUDA call: no device needed) --------

TEST(GpuArgs, LaunchersRejectBadArgumentsWithClearErrors) {
  float* fake = reinterpret_cast<float*>(uintptr_t(4096));
  Status st = gpu::embed_rows(DType::kQ4_0, fake, 256, 10, nullptr, 1, fake, 256, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_EQ(st.message(), "embed_rows: no GPU decoder for q4_0");
  st = gpu::embed_rows(DType::kQ4_K, fake, 100, 10, nullptr, 1, fake, 100, nullptr);
  EXPECT_EQ(st.message(), "embed_rows: expected a positive row length that is a multiple of 256 for q4_k, got 100");
  st = gpu::rms_norm_rows(fake, 4, nullptr, 0, 1, 1e-6f, fake, 4, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  gpu::GpuRopeParams rp;
  rp.n_dims = 63;
  EXPECT_EQ(gpu::rope_rows(rp, nullptr, fake, 1, 64, 0, 1, 64, nullptr).code(), StatusCode::kInvalidArgument);
  rp.n_dims = 64;
  rp.ext_factor = 1.0f;
  EXPECT_NE(gpu::rope_rows(rp, nullptr, fake, 1, 64, 0, 1, 64, nullptr).message().find("n_ctx_orig"), std::string::npos);
  gpu::GpuRouteConfig rc;
  rc.n_expert = 64;
  rc.n_used = 65;
  EXPECT_EQ(gpu::moe_route_rows(rc, fake, 64, 1, nullptr, nullptr, fake, nullptr).message(),
            "moe_route_rows: expected 1..64 experts used, got 65");
  rc.n_used = 8;
  rc.n_groups = 7;
  rc.n_group_used = 3;
  EXPECT_EQ(gpu::moe_route_rows(rc, fake, 64, 1, nullptr, nullptr, fake, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu::moe_weighted_sum(fake, fake, nullptr, 1, 0, 4, fake, false, nullptr).message(),
            "moe_weighted_sum: expected n_used >= 1, got 0");
}

// ---- embedding and dequantization --------------------------------------------

TEST(GpuDequant, EmbeddingRowsAreBitExact) {
  STRATA_REQUIRE_CUDA();
  const int64_t n_vocab = 37, n_embd = 512;
  for (const TypeCase& tc : gpu_types()) {
    QuantMatrix m = quant_matrix(tc.type, n_embd, n_vocab, 11);
    DevBuf<uint8_t> table(m.bytes);
    const std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1, 35};
    DevBuf<int32_t> d_ids(ids);
    DevBuf<float> out(ids.size() * n_embd);
    ASSERT_TRUE(gpu::embed_rows(tc.type, table.get(), n_embd, n_vocab, d_ids.get(), int64_t(ids.size()), out.get(),
                                n_embd, nullptr)
                    .is_ok());
    const std::vector<float> got = out.download();
    for (size_t t = 0; t < ids.size(); ++t) {
      ASSERT_EQ(std::memcmp(got.data() + t * n_embd, m.values.data() + ids[t] * n_embd, n_embd * 4), 0)
          << dtype_name(tc.type) << " token " << t;
    }
  }
}

TEST(GpuDequant, OutOfRangeIdGivesNaNRow) {
  STRATA_REQUIRE_CUDA();
  QuantMatrix m = quant_matrix(DType::kQ8_0, 64, 4, 3);
  DevBuf<uint8_t> table(m.bytes);
  DevBuf<int32_t> ids(std::vector<int32_t>{1, 4, -1});
  DevBuf<float> out(3 * 64);
  ASSERT_TRUE(gpu::embed_rows(DType::kQ8_0, table.get(), 64, 4, ids.get(), 3, out.get(), 64, nullptr).is_ok());
  const std::vector<float> got = out.download();
  EXPECT_EQ(got[0], m.values[64]);
  for (int i = 64; i < 192; ++i) EXPECT_TRUE(std::isnan(got[size_t(i)]));
}

TEST(GpuDequant, Bf16RowsAreTheReferenceRounded) {
  STRATA_REQUIRE_CUDA();
  for (const TypeCase& tc : gpu_types()) {
    QuantMatrix m = quant_matrix(tc.type, 256, 9, 5);
    DevBuf<uint8_t> w(m.bytes);
    DevBuf<uint16_t> out(size_t(7 * 260));
    ASSERT_TRUE(gpu::dequantize_rows_bf16(tc.type, w.get(), 256, 2, 7, out.get(), 260, nullptr).is_ok());
    DevBuf<float> outf(size_t(7 * 256));
    ASSERT_TRUE(gpu::dequantize_rows(tc.type, w.get(), 256, 2, 7, outf.get(), 256, nullptr).is_ok());
    const std::vector<uint16_t> got = out.download();
    const std::vector<float> gotf = outf.download();
    for (int r = 0; r < 7; ++r) {
      for (int i = 0; i < 256; ++i) {
        const float ref = m.values[size_t((r + 2) * 256 + i)];
        ASSERT_EQ(got[size_t(r * 260 + i)], f32_to_bf16(ref)) << dtype_name(tc.type) << " " << r << "," << i;
        ASSERT_EQ(gotf[size_t(r * 256 + i)], ref) << dtype_name(tc.type) << " " << r << "," << i;
      }
    }
  }
}

// ---- RMSNorm ------------------------------------------------------------------

TEST(GpuRmsNorm, MatchesReferenceOnOddSizes) {
  STRATA_REQUIRE_CUDA();
  for (int64_t n : {1, 7, 257, 4097, 7168}) {
    for (bool weighted : {false, true}) {
      for (bool in_place : {false, true}) {
        const int64_t rows = 3, stride = n + 3;
        std::vector<float> x = randn(static_cast<size_t>(rows * stride), uint64_t(n), 2.0f), w = randn(static_cast<size_t>(n), 9);
        DevBuf<float> dx(x), dw(w), dy(x.size());
        float* y = in_place ? dx.get() : dy.get();
        ASSERT_TRUE(gpu::rms_norm_rows(dx.get(), stride, weighted ? dw.get() : nullptr, n, rows, 1e-5f, y, stride, nullptr)
                        .is_ok());
        const std::vector<float> got = in_place ? dx.download() : dy.download();
        std::vector<float> ref(got.size()), gr(got.size());
        for (int64_t r = 0; r < rows; ++r) {
          rms_norm(x.data() + r * stride, weighted ? w.data() : nullptr, n, 1e-5f, ref.data() + r * stride);
          std::copy(got.begin() + r * stride, got.begin() + r * stride + n, gr.begin() + r * stride);
          for (int64_t i = n; i < stride; ++i) ref[size_t(r * stride + i)] = 0;
        }
        EXPECT_LT(normalized_error(gr, ref), 1e-6) << "n " << n << " weighted " << weighted << " in place " << in_place;
      }
    }
  }
}

// ---- RoPE ---------------------------------------------------------------------

TEST(GpuRope, MatchesReferenceIncludingYarnAndFreqFactors) {
  STRATA_REQUIRE_CUDA();
  struct Case {
    RopeParams p;
    int64_t head, heads, offset, row_stride;
  };
  std::vector<float> ff = randn(32, 4, 0.3f);
  for (float& f : ff) f = 1.0f + std::fabs(f);
  DevBuf<float> dff(ff);
  std::vector<Case> cases;
  RopeParams p;
  p.n_dims = 64;  // llama / deepseek2 adjacent pairs, plain
  cases.push_back({p, 64, 3, 0, 3 * 64});
  p.style = RopeStyle::kNeox;  // qwen: split halves, partial rotary inside a 96 head, at an offset
  p.freq_base = 1000000.0f;
  cases.push_back({p, 96, 5, 7, 5 * 96 + 9});
  p = {};
  p.n_dims = 64;  // DeepSeek-V3 YaRN: factor 40, original context 4096
  p.freq_scale = 1.0f / 40.0f;
  p.ext_factor = 1.0f;
  p.attn_factor = 1.0f;
  p.n_ctx_orig = 4096;
  cases.push_back({p, 64, 2, 0, 128});
  p.freq_factors = ff.data();  // llama 3.1 rope_freqs
  p.ext_factor = 0.0f;
  p.freq_scale = 1.0f;
  cases.push_back({p, 64, 2, 0, 128});
  const std::vector<int32_t> pos = {0, 1, 17, 4095, 4096, 100000, 163839};
  DevBuf<int32_t> dpos(pos);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    std::vector<float> x = randn(static_cast<size_t>(int64_t(pos.size()) * k.row_stride), 60 + c);
    DevBuf<float> dx(x);
    gpu::GpuRopeParams g;
    g.n_dims = k.p.n_dims;
    g.neox = k.p.style == RopeStyle::kNeox;
    g.freq_base = k.p.freq_base;
    g.freq_scale = k.p.freq_scale;
    g.ext_factor = k.p.ext_factor;
    g.attn_factor = k.p.attn_factor;
    g.beta_fast = k.p.beta_fast;
    g.beta_slow = k.p.beta_slow;
    g.n_ctx_orig = k.p.n_ctx_orig;
    g.freq_factors = k.p.freq_factors ? dff.get() : nullptr;
    ASSERT_TRUE(gpu::rope_rows(g, dpos.get(), dx.get(), int64_t(pos.size()), k.row_stride, k.offset, k.heads, k.head,
                               nullptr)
                    .is_ok());
    const std::vector<float> got = dx.download();
    std::vector<float> cs(static_cast<size_t>(k.p.n_dims));
    for (size_t t = 0; t < pos.size(); ++t) {
      rope_cos_sin(k.p, pos[t], cs.data());
      rope_apply(k.p, cs.data(), x.data() + t * k.row_stride + k.offset, k.heads, k.head);
    }
    // cosf/sinf of the same angles may differ from libm by an ulp or two.
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(got[i], x[i], 2e-6f * (1.0f + std::fabs(x[i]))) << "case " << c << " elem " << i;
  }
}

// ---- element-wise -------------------------------------------------------------

TEST(GpuElementwise, MatchReferences) {
  STRATA_REQUIRE_CUDA();
  const int64_t rows = 3, n = 1001, used = 3;
  std::vector<float> a = randn(static_cast<size_t>(rows * n), 1), b = randn(static_cast<size_t>(rows * n), 2), y = randn(static_cast<size_t>(rows * n), 3);
  DevBuf<float> da(a), db(b), dy(y), dout(a.size());
  // swiglu
  ASSERT_TRUE(gpu::swiglu(da.get(), db.get(), dout.get(), rows * n, nullptr).is_ok());
  std::vector<float> ref(a.size());
  swiglu(a.data(), b.data(), ref.data(), rows * n);
  EXPECT_LT(normalized_error(dout.download(), ref), 1e-6);
  // add_rows with and without b
  ASSERT_TRUE(gpu::add_rows(dy.get(), da.get(), db.get(), rows, n, n, nullptr).is_ok());
  ASSERT_TRUE(gpu::add_rows(dy.get(), da.get(), nullptr, rows, n, n, nullptr).is_ok());
  std::vector<float> yr = y;
  for (size_t i = 0; i < yr.size(); ++i) {
    yr[i] += a[i] + b[i];
    yr[i] += a[i];
  }
  EXPECT_EQ(dy.download(), yr);
  // gated add
  std::vector<float> gate = {-1.0f, 0.0f, 2.5f};
  DevBuf<float> dg(gate), dy2(y);
  ASSERT_TRUE(gpu::add_rows_gated(dy2.get(), da.get(), dg.get(), rows, n, nullptr).is_ok());
  std::vector<float> y2 = y;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y2[size_t(r * n + i)] += sigmoid(gate[size_t(r)]) * a[size_t(r * n + i)];
  EXPECT_LT(normalized_error(dy2.download(), y2), 1e-6);
  // weighted sum with a skipped slot, overwrite and accumulate
  std::vector<float> src = randn(static_cast<size_t>(rows * used * n), 4), w = randn(static_cast<size_t>(rows * used), 5);
  std::vector<int32_t> valid = {0, -1, 2, 1, 1, 1, -1, -1, 0};
  DevBuf<float> dsrc(src), dw(w), dsum(y);
  DevBuf<int32_t> dvalid(valid);
  for (bool acc : {false, true}) {
    ASSERT_TRUE(gpu::moe_weighted_sum(dsrc.get(), dw.get(), dvalid.get(), rows, used, n, dsum.get(), acc, nullptr).is_ok());
    std::vector<float> expect(static_cast<size_t>(rows * n));
    const std::vector<float> before = acc ? std::vector<float>(expect.size()) : y;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        float s = 0;
        for (int k = 0; k < used; ++k) {
          if (valid[size_t(r * used + k)] >= 0) s += w[size_t(r * used + k)] * src[size_t((r * used + k) * n + i)];
        }
        expect[size_t(r * n + i)] = s;
      }
    }
    if (acc) {
      // Second pass adds the same sum onto the first pass's result.
      for (float& e : expect) e *= 2.0f;
    }
    EXPECT_LT(normalized_error(dsum.download(), expect), 1e-6) << "accumulate " << acc;
  }
  // strided copy and id mapping
  DevBuf<float> dc(size_t(rows * 20));
  ASSERT_TRUE(gpu::copy_rows(da.get() + 5, n, dc.get(), 20, rows, 13, nullptr).is_ok());
  const std::vector<float> c = dc.download();
  for (int64_t r = 0; r < rows; ++r)
    for (int i = 0; i < 13; ++i) ASSERT_EQ(c[size_t(r * 20 + i)], a[size_t(r * n + 5 + i)]);
  DevBuf<int32_t> dids(std::vector<int32_t>{3, 0, 7, -2, 2}), dtab(std::vector<int32_t>{1, -1, 0, 2}), dmap(5);
  ASSERT_TRUE(gpu::map_ids(dids.get(), dtab.get(), 4, 5, dmap.get(), nullptr).is_ok());
  EXPECT_EQ(dmap.download(), (std::vector<int32_t>{2, 1, -1, -1, 0}));
}

// ---- routing --------------------------------------------------------------------

TEST(GpuRouter, MatchesMoeRouteIncludingTiesAndGroups) {
  STRATA_REQUIRE_CUDA();
  struct Case {
    const char* name;
    gpu::GpuRouteConfig g;
    bool bias;
  };
  std::vector<Case> cases;
  gpu::GpuRouteConfig g;
  g.n_expert = 60;  // qwen2moe: softmax top-4 of 60
  g.n_used = 4;
  cases.push_back({"softmax", g, false});
  g = {};
  g.n_expert = 128;  // qwen3moe: softmax top-8, normalized
  g.n_used = 8;
  g.norm_w = true;
  cases.push_back({"softmax-norm", g, false});
  g = {};
  g.sigmoid = true;  // DeepSeek-V3: sigmoid + bias, 8 groups keep 4 (top-2 sums), top-8, x2.5
  g.n_expert = 256;
  g.n_used = 8;
  g.norm_w = true;
  g.w_scale = 2.5f;
  g.n_groups = 8;
  g.n_group_used = 4;
  cases.push_back({"deepseek-v3", g, true});
  g.sigmoid = false;  // DeepSeek-V2: softmax, group max, scaled
  g.group_top2 = false;
  g.norm_w = false;
  g.w_scale = 16.0f;
  g.n_groups = 8;
  g.n_group_used = 3;
  g.n_expert = 160;
  g.n_used = 6;
  cases.push_back({"deepseek-v2", g, false});
  g = {};
  g.sigmoid = true;  // Kimi-K2: 384 experts, no groups
  g.n_expert = 384;
  g.n_used = 8;
  g.norm_w = true;
  g.w_scale = 2.827f;
  cases.push_back({"kimi-k2", g, true});
  for (const Case& c : cases) {
    const int64_t rows = 9;
    std::vector<float> logits = randn(static_cast<size_t>(rows * c.g.n_expert), 21, 2.0f);
    // Row 0: all equal (ties everywhere); row 1: a block of exact duplicates.
    std::fill(logits.begin(), logits.begin() + c.g.n_expert, 0.5f);
    for (int i = 3; i < 15; ++i) logits[size_t(c.g.n_expert + i)] = 3.0f;
    std::vector<float> bias = randn(static_cast<size_t>(c.g.n_expert), 22, 0.05f);
    DevBuf<float> dl(logits), db(bias), dw(size_t(rows * c.g.n_used));
    DevBuf<int32_t> di(size_t(rows * c.g.n_used));
    ASSERT_TRUE(gpu::moe_route_rows(c.g, dl.get(), c.g.n_expert, rows, c.bias ? db.get() : nullptr, di.get(), dw.get(),
                                    nullptr)
                    .is_ok());
    const std::vector<int32_t> ids = di.download();
    const std::vector<float> w = dw.download();
    const MoeConfig& m = c.g;
    std::vector<float> scratch(static_cast<size_t>(2 * m.n_expert));
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int32_t> rid(static_cast<size_t>(m.n_used));
      std::vector<float> rw(static_cast<size_t>(m.n_used));
      moe_route_row(m, logits.data() + r * m.n_expert, c.bias ? bias.data() : nullptr, rid.data(), rw.data(), scratch.data());
      for (int k = 0; k < m.n_used; ++k) {
        EXPECT_EQ(ids[size_t(r * m.n_used + k)], rid[size_t(k)]) << c.name << " row " << r << " k " << k;
        EXPECT_NEAR(w[size_t(r * m.n_used + k)], rw[size_t(k)], 2e-6f * (1.0f + std::fabs(rw[size_t(k)])))
            << c.name << " row " << r << " k " << k;
      }
    }
  }
}

}  // namespace
}  // namespace strata
