// The forward pass's kernels and small layers against straightforward loops:
// matmul over quantized weights, RMSNorm, softmax, RoPE (normal, NeoX, YaRN,
// frequency factors), SwiGLU FFN, attention, the CPU expert executor, MoE
// routing and the sampler.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/attention_ref.h"
#include "cpu_kernels/ffn_ref.h"
#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/norm.h"
#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/qgemm_packed.h"
#include "cpu_kernels/quant_ref.h"
#include "cpu_kernels/rope.h"
#include "cpu_kernels/softmax.h"
#include "offload/cpu_pool.h"
#include "offload/expert_executor.h"
#include "offload/topology.h"
#include "runtime/base/rng.h"
#include "runtime/layers/compute_context.h"
#include "runtime/layers/matrix.h"
#include "runtime/layers/moe_ffn.h"
#include "runtime/sampling/sampler.h"

namespace strata {
namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// A quantized n_out x n_in matrix and its exact dequantized values.
struct QMatrix {
  DType type;
  int64_t n_in, n_out;
  std::vector<uint8_t> bytes;
  std::vector<float> deq;
};

QMatrix make_matrix(DType t, int64_t n_in, int64_t n_out, uint64_t seed) {
  QMatrix m{t, n_in, n_out, {}, {}};
  const uint64_t rb = *dtype_row_bytes(t, uint64_t(n_in));
  std::vector<float> f = randn(static_cast<size_t>(n_in * n_out), seed);
  m.bytes.resize(rb * uint64_t(n_out));
  m.deq.resize(f.size());
  for (int64_t r = 0; r < n_out; ++r) {
    EXPECT_TRUE(quantize_row_ref(t, f.data() + r * n_in, m.bytes.data() + r * rb, n_in).is_ok());
    EXPECT_TRUE(dequantize_row_ref(t, m.bytes.data() + r * rb, m.deq.data() + r * n_in, n_in).is_ok());
  }
  return m;
}

double max_rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return err / scale;
}

class MatmulTypes : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTypes, MatchesDequantizedLoops) {
  const DType t = GetParam();
  const int64_t n_in = 512, n_out = 7, n_rows = 3, x_stride = n_in + 5, y_stride = n_out + 2;
  const QMatrix w = make_matrix(t, n_in, n_out, 1);
  const std::vector<float> x = randn(static_cast<size_t>(n_rows * x_stride), 2);
  std::vector<float> y(static_cast<size_t>(n_rows * y_stride), -1.0f);
  matmul_ref(t, w.bytes.data(), n_in, n_out, x.data(), x_stride, n_rows, y.data(), y_stride);
  std::vector<float> got;
  std::vector<double> want;
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t o = 0; o < n_out; ++o) {
      double s = 0;
      for (int64_t i = 0; i < n_in; ++i) s += double(w.deq[static_cast<size_t>(o * n_in + i)]) * x[static_cast<size_t>(r * x_stride + i)];
      want.push_back(s);
      got.push_back(y[static_cast<size_t>(r * y_stride + o)]);
    }
  }
  EXPECT_LT(max_rel_err(got, want), 1e-5);
  // A row's result does not depend on its batch (bitwise).
  std::vector<float> y1(static_cast<size_t>(n_out));
  matmul_ref(t, w.bytes.data(), n_in, n_out, x.data() + 2 * x_stride, n_in, 1, y1.data(), n_out);
  for (int64_t o = 0; o < n_out; ++o) EXPECT_EQ(y1[static_cast<size_t>(o)], y[static_cast<size_t>(2 * y_stride + o)]);
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulTypes,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                                           DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                                           DType::kQ4_K, DType::kQ5_K, DType::kQ6_K),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

TEST(ForwardOps, MatmulSupportsWhatDequantizes) {
  EXPECT_TRUE(matmul_supports(DType::kIQ4_XS));
  EXPECT_FALSE(matmul_supports(DType::kI32));
}

TEST(ForwardOps, RmsNorm) {
  const int64_t n = 300;
  const std::vector<float> x = randn(static_cast<size_t>(n), 3, 4.0f), w = randn(static_cast<size_t>(n), 4);
  std::vector<float> y(static_cast<size_t>(n));
  rms_norm(x.data(), w.data(), n, 1e-5f, y.data());
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
  std::vector<double> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) want[static_cast<size_t>(i)] = x[static_cast<size_t>(i)] * scale * w[static_cast<size_t>(i)];
  EXPECT_LT(max_rel_err(y, want), 1e-6);
  std::vector<float> in_place = x;
  rms_norm(in_place.data(), nullptr, n, 1e-5f, in_place.data());
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(in_place[static_cast<size_t>(i)], x[static_cast<size_t>(i)] * scale, 1e-5);
}

TEST(ForwardOps, SoftmaxWithMaskedEntries) {
  std::vector<float> x = {1.0f, -INFINITY, 3.0f, 0.5f, 100.0f, -INFINITY};
  std::vector<float> y = x;
  softmax_inplace(y.data(), int64_t(y.size()));
  double sum = 0;
  for (float v : x) sum += std::isinf(v) ? 0.0 : std::exp(double(v) - 100.0);
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::isinf(x[i]) ? 0.0 : std::exp(double(x[i]) - 100.0) / sum;
    EXPECT_NEAR(y[i], want, 1e-7);
  }
}

// Odd lengths (the vector loops' tails), a wide range of scores and masked
// entries, against softmax in double: within a few float roundings of every
// probability, exactly 0 where masked.
TEST(ForwardOps, SoftmaxMatchesDoubleOnEveryLength) {
  Xoshiro256 rng(3);
  for (int64_t n : {1, 2, 7, 8, 9, 31, 64, 127, 1000, 1027}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = float(-40 + 80 * rng.uniform());
    for (int64_t i = 3; i < n; i += 5) x[size_t(i)] = -INFINITY;
    std::vector<float> y = x;
    softmax_inplace(y.data(), n);
    // exp of the float difference x - max, as every float softmax takes it
    // (that rounding alone is up to 2^-24 |x - max| relative).
    const float mx = *std::max_element(x.begin(), x.end());
    double sum = 0;
    for (float v : x) sum += std::exp(double(v - mx));
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = std::exp(double(x[i] - mx)) / sum;
      if (std::isinf(x[i])) {
        EXPECT_EQ(y[i], 0.0f);
      } else {
        ASSERT_NEAR(y[i], want, 5e-7 * want + 1e-37) << "n " << n << " at " << i << " score " << x[i];
      }
    }
  }
}

// SiLU against x / (1 + e^-x) in double over the range a model's gates take
// and beyond; swiglu() is silu(gate) * up exactly, on every length.
TEST(ForwardOps, SiluMatchesDoubleAndSwigluUsesIt) {
  std::vector<float> x;
  for (float v = -120.0f; v <= 120.0f; v += 0.0137f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 1e30f, -1e30f}) x.push_back(v);
  for (float v : x) {
    const double want = double(v) / (1.0 + std::exp(-double(v)));
    ASSERT_NEAR(silu(v), want, 4e-7 * std::fabs(want) + 1e-35) << "x " << v;  // 0 below x = -87.3
  }
  EXPECT_TRUE(std::isnan(silu(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(silu(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(silu(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  for (int64_t n : {1, 5, 16, 17, 1001}) {
    const std::vector<float> g = randn(size_t(n), 5, 4.0f), u = randn(size_t(n), 6);
    std::vector<float> out(static_cast<size_t>(n));
    swiglu(g.data(), u.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[size_t(i)], silu(g[size_t(i)]) * u[size_t(i)]) << "n " << n;
  }
}

// RoPE from the formula, in double: pair i turns by pos * base^(-2i/n) / ff_i,
// YaRN-blended toward pos * ... * freq_scale over the correction range.
std::vector<double> rope_direct(const RopeParams& p, int pos, const std::vector<float>& x) {
  std::vector<double> y(x.begin(), x.end());
  double mag = p.attn_factor;
  double low = 0, high = 0;
  if (p.ext_factor != 0) {
    auto corr = [&](double rot) {
      return p.n_dims * std::log(p.n_ctx_orig / (rot * 2 * M_PI)) / (2 * std::log(double(p.freq_base)));
    };
    low = std::max(0.0, std::floor(corr(p.beta_fast)));
    high = std::min(double(p.n_dims - 1), std::ceil(corr(p.beta_slow)));
    mag *= 1 + 0.1 * std::log(1.0 / p.freq_scale);
  }
  const int half = p.n_dims / 2;
  for (int i = 0; i < half; ++i) {
    double th = pos * std::pow(double(p.freq_base), -2.0 * i / p.n_dims);
    if (p.freq_factors) th /= p.freq_factors[i];
    double t = th * p.freq_scale;
    if (p.ext_factor != 0) {
      const double ramp = (1 - std::clamp((i - low) / std::max(0.001, high - low), 0.0, 1.0)) * p.ext_factor;
      t = t * (1 - ramp) + th * ramp;
    }
    const int a = p.style == RopeStyle::kNeox ? i : 2 * i, b = p.style == RopeStyle::kNeox ? i + half : 2 * i + 1;
    const double x0 = x[static_cast<size_t>(a)], x1 = x[static_cast<size_t>(b)];
    y[static_cast<size_t>(a)] = (x0 * std::cos(t) - x1 * std::sin(t)) * mag;
    y[static_cast<size_t>(b)] = (x0 * std::sin(t) + x1 * std::cos(t)) * mag;
  }
  return y;
}

TEST(ForwardOps, RopeStylesScalingsAndPartialRotation) {
  const std::vector<float> ff = {1.0f, 1.5f, 2.0f, 4.0f, 8.0f, 1.0f, 1.0f, 2.5f, 1.0f, 1.0f, 1.0f, 3.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
    for (int variant = 0; variant < 4; ++variant) {
      RopeParams p;
      p.style = style;
      p.n_dims = 32;
      p.freq_base = 10000.0f;
      if (variant == 1) p.freq_scale = 0.25f;  // linear
      if (variant == 2) {                      // YaRN
        p.freq_scale = 1.0f / 40.0f;
        p.ext_factor = 1.0f;
        p.attn_factor = 0.7f;
        p.n_ctx_orig = 4096;
      }
      if (variant == 3) p.freq_factors = ff.data();
      const int64_t head = 48;  // 16 dims pass through
      for (int pos : {0, 1, 17, 3000}) {
        const std::vector<float> x = randn(static_cast<size_t>(2 * head), uint64_t(pos) + 10);
        std::vector<float> cs(static_cast<size_t>(p.n_dims)), y = x;
        rope_cos_sin(p, pos, cs.data());
        rope_apply(p, cs.data(), y.data(), 2, head);
        for (int h = 0; h < 2; ++h) {
          std::vector<float> xh(x.begin() + h * head, x.begin() + (h + 1) * head);
          const std::vector<double> want = rope_direct(p, pos, xh);
          for (int64_t i = 0; i < head; ++i) {
            EXPECT_NEAR(y[static_cast<size_t>(h * head + i)], want[static_cast<size_t>(i)], 2e-4 * (1 + std::fabs(want[static_cast<size_t>(i)])))
                << "style " << int(style) << " variant " << variant << " pos " << pos << " dim " << i;
          }
        }
      }
    }
  }
}

TEST(ForwardOps, FfnSwigluMatchesLoops) {
  const int64_t E = 256, F = 96, n = 3;
  const QMatrix g = make_matrix(DType::kQ8_0, E, F, 20), u = make_matrix(DType::kQ4_K, E, F, 21),
                d = make_matrix(DType::kF16, F, E, 22);
  FfnMatrices m{g.type, u.type, d.type, g.bytes.data(), u.bytes.data(), d.bytes.data(), E, F};
  const std::vector<float> x = randn(static_cast<size_t>(n * E), 23);
  std::vector<float> out(static_cast<size_t>(n * E)), scratch(static_cast<size_t>(ffn_scratch_floats(m, n)));
  ffn_swiglu_ref(m, x.data(), n, out.data(), scratch.data());
  std::vector<double> want;
  for (int64_t r = 0; r < n; ++r) {
    std::vector<double> a(static_cast<size_t>(F));
    for (int64_t f = 0; f < F; ++f) {
      double gs = 0, us = 0;
      for (int64_t i = 0; i < E; ++i) {
        gs += double(g.deq[static_cast<size_t>(f * E + i)]) * x[static_cast<size_t>(r * E + i)];
        us += double(u.deq[static_cast<size_t>(f * E + i)]) * x[static_cast<size_t>(r * E + i)];
      }
      a[static_cast<size_t>(f)] = gs / (1 + std::exp(-gs)) * us;
    }
    for (int64_t e = 0; e < E; ++e) {
      double s = 0;
      for (int64_t f = 0; f < F; ++f) s += double(d.deq[static_cast<size_t>(e * F + f)]) * a[static_cast<size_t>(f)];
      want.push_back(s);
    }
  }
  EXPECT_LT(max_rel_err(out, want), 1e-5);
}

TEST(ForwardOps, AttentionHeadMatchesLoops) {
  const int64_t dk = 40, dv = 24, n_kv = 9, stride = 70;
  const std::vector<float> q = randn(static_cast<size_t>(dk), 30), kv = randn(static_cast<size_t>(n_kv * stride), 31);
  std::vector<float> scores(static_cast<size_t>(n_kv)), out(static_cast<size_t>(dv));
  const float* k = kv.data();
  const float* v = kv.data() + 5;  // values inside the same rows, as MLA's latent cache has them
  attention_head_ref(q.data(), k, stride, v, stride, dk, dv, n_kv, 0.3f, scores.data(), out.data());
  std::vector<double> s(static_cast<size_t>(n_kv));
  double mx = -1e300, sum = 0;
  for (int64_t t = 0; t < n_kv; ++t) {
    double d = 0;
    for (int64_t i = 0; i < dk; ++i) d += double(q[static_cast<size_t>(i)]) * k[t * stride + i];
    s[static_cast<size_t>(t)] = 0.3 * d;
    mx = std::max(mx, s[static_cast<size_t>(t)]);
  }
  for (auto& x : s) sum += x = std::exp(x - mx);
  std::vector<double> want(static_cast<size_t>(dv), 0.0);
  for (int64_t t = 0; t < n_kv; ++t) {
    for (int64_t j = 0; j < dv; ++j) want[static_cast<size_t>(j)] += s[static_cast<size_t>(t)] / sum * v[t * stride + j];
  }
  EXPECT_LT(max_rel_err(out, want), 1e-5);
}

TEST(ForwardOps, CpuExpertExecutorMatchesPerRowLoops) {
  const int64_t E = 256, F = 256, X = 5, n_rows = 6;
  const int32_t k = 2;
  const QMatrix g = make_matrix(DType::kQ4_K, E, F * X, 40), u = make_matrix(DType::kQ8_0, E, F * X, 41),
                d = make_matrix(DType::kQ6_K, F, E * X, 42);
  auto tensor = [](const QMatrix& m, int64_t n_out, const char* name) {
    ExpertTensor t;
    t.name = name;
    t.type = m.type;
    t.data = m.bytes.data();
    t.n_in = m.n_in;
    t.n_out = n_out;
    t.n_expert = m.n_out / n_out;
    t.expert_bytes = *dtype_row_bytes(m.type, uint64_t(m.n_in)) * uint64_t(n_out);
    return t;
  };
  ExpertLayer layer;
  layer.layer = 0;
  layer.gate = tensor(g, F, "gate");
  layer.up = tensor(u, F, "up");
  layer.down = tensor(d, E, "down");
  auto exec = make_cpu_expert_executor();
  ASSERT_TRUE(exec->check_layer(layer).is_ok());

  const std::vector<float> x = randn(static_cast<size_t>(n_rows * E), 43);
  const std::vector<int32_t> ids = {0, 3, 3, 1, 4, 0, 2, 3, 1, 0, 4, 2};
  const std::vector<float> wts = {0.7f, 0.3f, 0.5f, 0.5f, 1.2f, -0.2f, 0.9f, 0.1f, 0.4f, 0.6f, 0.25f, 0.75f};
  std::vector<float> out(static_cast<size_t>(n_rows * E));
  ExpertRouting r{x.data(), n_rows, k, ids.data(), wts.data()};
  ASSERT_TRUE(exec->run(layer, r, out.data()).is_ok());

  std::vector<double> want(static_cast<size_t>(n_rows * E), 0.0);
  for (int64_t row = 0; row < n_rows; ++row) {
    for (int32_t j = 0; j < k; ++j) {
      const int64_t e = ids[static_cast<size_t>(row * k + j)];
      std::vector<double> a(static_cast<size_t>(F));
      for (int64_t f = 0; f < F; ++f) {
        double gs = 0, us = 0;
        for (int64_t i = 0; i < E; ++i) {
          gs += double(g.deq[static_cast<size_t>((e * F + f) * E + i)]) * x[static_cast<size_t>(row * E + i)];
          us += double(u.deq[static_cast<size_t>((e * F + f) * E + i)]) * x[static_cast<size_t>(row * E + i)];
        }
        a[static_cast<size_t>(f)] = gs / (1 + std::exp(-gs)) * us;
      }
      for (int64_t c = 0; c < E; ++c) {
        double s = 0;
        for (int64_t f = 0; f < F; ++f) s += double(d.deq[static_cast<size_t>((e * E + c) * F + f)]) * a[static_cast<size_t>(f)];
        want[static_cast<size_t>(row * E + c)] += wts[static_cast<size_t>(row * k + j)] * s;
      }
    }
  }
  EXPECT_LT(max_rel_err(out, want), 1e-5);

  // Row 4 alone gives the same bits as inside the batch.
  std::vector<float> one(static_cast<size_t>(E));
  ExpertRouting r1{x.data() + 4 * E, 1, k, ids.data() + 4 * k, wts.data() + 4 * k};
  ASSERT_TRUE(exec->run(layer, r1, one.data()).is_ok());
  for (int64_t c = 0; c < E; ++c) EXPECT_EQ(one[static_cast<size_t>(c)], out[static_cast<size_t>(4 * E + c)]);

  ExpertLayer bad = layer;
  bad.down.type = DType::kI32;
  const Status s = exec->check_layer(bad);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("down: type i32"), std::string::npos) << s.message();
}

TEST(ForwardOps, MoeRoutingSoftmaxNormalized) {
  MoeConfig c;
  c.sigmoid = false;
  c.n_expert = 6;
  c.n_used = 2;
  c.norm_w = true;
  const float logits[6] = {0.1f, 2.0f, -1.0f, 1.5f, 0.0f, 1.5f};
  int32_t ids[2];
  float w[2], scratch[12];
  moe_route_row(c, logits, nullptr, ids, w, scratch);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);  // tie with 5: the lower id wins
  const double e1 = std::exp(2.0), e3 = std::exp(1.5);
  EXPECT_NEAR(w[0], e1 / (e1 + e3), 1e-6);
  EXPECT_NEAR(w[1], e3 / (e1 + e3), 1e-6);
  c.norm_w = false;  // qwen2moe: softmax over all, not renormalized
  moe_route_row(c, logits, nullptr, ids, w, scratch);
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l));
  EXPECT_NEAR(w[0], e1 / sum, 1e-6);
}

TEST(ForwardOps, MoeRoutingSigmoidBiasGroups) {
  MoeConfig c;
  c.sigmoid = true;
  c.n_expert = 8;
  c.n_used = 2;
  c.norm_w = true;
  c.w_scale = 2.5f;
  c.n_groups = 4;
  c.n_group_used = 2;
  c.group_top2 = true;
  // groups {0,1} {2,3} {4,5} {6,7}
  const float logits[8] = {3.0f, -4.0f, 1.0f, 1.0f, 2.0f, -3.0f, 0.5f, 0.4f};
  const float bias[8] = {0, 0, 0, 0, 0, 0, 0, 0.0f};
  int32_t ids[2];
  float w[2], scratch[16];
  auto sg = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  // top-2 sums: g0 .95+.018, g1 .73+.73, g2 .88+.047, g3 .62+.60 -> keep g1, g3
  moe_route_row(c, logits, bias, ids, w, scratch);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 3);
  EXPECT_NEAR(w[0], 2.5 * 0.5, 1e-6);
  // Scoring groups by their best expert keeps g0 and g2 instead.
  c.group_top2 = false;
  moe_route_row(c, logits, bias, ids, w, scratch);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 4);
  EXPECT_NEAR(w[0], 2.5 * sg(3.0) / (sg(3.0) + sg(2.0)), 1e-6);
  // A bias changes the choice but never the weights.
  c.n_groups = 0;
  const float bias2[8] = {0, 0, 0, 0, 0, 0, 0, 5.0f};
  moe_route_row(c, logits, bias2, ids, w, scratch);
  EXPECT_EQ(ids[0], 7);
  EXPECT_EQ(ids[1], 0);
  EXPECT_NEAR(w[0], 2.5 * sg(0.4) / (sg(0.4) + sg(3.0)), 1e-6);
}

// A pool of two threads on a synthetic two-core machine.
std::shared_ptr<CpuPool> two_core_pool() {
  auto topo = Topology::synthetic("pack:1 numa:1 core:2 pu:1");
  if (!topo.is_ok()) return nullptr;
  auto pool = CpuPool::create(*topo, {2, false, 100});
  return pool.is_ok() ? std::move(pool.value()) : nullptr;
}

// Attention work split into runs of a group's heads: every (token, head)
// once, each run inside its group, whole groups when they give every thread
// an item, and runs short enough to do so when they do not.
TEST(ForwardOps, HeadRunsCoverEveryHeadOnce) {
  struct Case {
    int threads;
    int64_t tokens, groups, group, want_run;
  };
  auto sixteen = [] {
    auto topo = Topology::synthetic("pack:1 numa:1 core:16 pu:1");
    auto pool = CpuPool::create(*topo, {16, false, 0});
    return pool.is_ok() ? std::shared_ptr<CpuPool>(std::move(pool.value())) : nullptr;
  };
  const Case cases[] = {{1, 3, 4, 8, 8},  {2, 1, 4, 8, 8},    {2, 1, 1, 128, 64}, {16, 1, 4, 8, 2},
                        {16, 1, 1, 128, 8}, {16, 2, 2, 6, 2}, {16, 8, 4, 8, 8},  {16, 1, 1, 3, 1},
                        {16, 3, 2, 8, 3},   {16, 1, 4, 5, 2}};
  for (const Case& k : cases) {
    ComputeContext ctx;
    if (k.threads == 2) ctx.pool = two_core_pool();
    if (k.threads == 16) ctx.pool = sixteen();
    ASSERT_EQ(ctx.pool != nullptr, k.threads > 1);
    const int64_t H = k.groups * k.group;
    std::vector<std::atomic<int>> seen(size_t(k.tokens * H));
    std::atomic<int64_t> longest{0};
    // Enough work per head to be split over the pool.
    for_head_runs(&ctx, k.tokens, k.groups, k.group, 1 << 20, 3,
                  [&](int64_t t, int64_t g, int64_t h0, int64_t h1, float* scratch) {
                    EXPECT_LT(h0, h1);
                    EXPECT_GE(h0, g * k.group);
                    EXPECT_LE(h1, (g + 1) * k.group);
                    std::fill(scratch, scratch + 3 * (h1 - h0), 1.0f);  // the promised scratch
                    for (int64_t h = h0; h < h1; ++h) seen[size_t(t * H + h)]++;
                    int64_t cur = longest.load();
                    while (h1 - h0 > cur && !longest.compare_exchange_weak(cur, h1 - h0)) {
                    }
                  });
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << "threads " << k.threads << " item " << i;
    EXPECT_EQ(longest.load(), k.want_run) << "threads " << k.threads << " groups " << k.groups << "x" << k.group;
  }
}

// A matrix whose row count is not a multiple of 16 (an odd vocabulary's
// head) is packed in whole 16-row groups and its last rows stay in the file
// layout: a product gives the file layout's results bit for bit on the
// rows left out, and those of the packed kernel on the others, over one
// thread and split over a pool.
TEST(ForwardOps, PartlyPackedMatrix) {
  if (!qgemm_packed_fast(active_cpu_isa(), DType::kQ4_K)) GTEST_SKIP() << "no packed q4_k kernel on this CPU path";
  constexpr int64_t kIn = 512, kOut = 16 * 37 + 9, kRows = 3;
  const QMatrix q = make_matrix(DType::kQ4_K, kIn, kOut, 21);
  const std::vector<float> x = randn(size_t(kIn * kRows), 22);
  constexpr int64_t kPacked = kOut / 16 * 16;
  std::vector<uint8_t> packed(qgemm_packed_bytes(DType::kQ4_K, kIn, kPacked));
  qgemm_pack(DType::kQ4_K, q.bytes.data(), kIn, 0, kPacked, packed.data());
  for (int threads : {1, 2}) {
    ComputeContext ctx;
    if (threads > 1) ctx.pool = two_core_pool();
    ASSERT_EQ(ctx.pool != nullptr, threads > 1);
    Matrix m;
    m.type = DType::kQ4_K, m.data = q.bytes.data(), m.n_in = kIn, m.n_out = kOut, m.ctx = &ctx;
    m.row_bytes = *dtype_row_bytes(DType::kQ4_K, uint64_t(kIn));
    std::vector<float> file(size_t(kOut * kRows)), mixed(file.size()), all_packed(size_t(kPacked * kRows));
    m.mul(x.data(), kRows, file.data());
    m.packed = packed.data(), m.n_packed = kPacked;
    m.mul(x.data(), kRows, mixed.data());
    ActPack a;
    act_pack_prepare(a, DType::kQ4_K, kIn, kRows);
    act_pack_rows(a, x.data(), kIn, 0, kRows);
    qgemm_packed_rows(DType::kQ4_K, packed.data(), kIn, 0, kPacked, a, all_packed.data(), kPacked);
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t o = 0; o < kOut; ++o) {
        const float got = mixed[size_t(r * kOut + o)];
        const float want = o < kPacked ? all_packed[size_t(r * kPacked + o)] : file[size_t(r * kOut + o)];
        ASSERT_EQ(got, want) << "threads " << threads << " row " << r << " out " << o;
      }
    }
  }
}

// q, k and v through one split of their joint rows (mixed activation
// formats, a packed matrix, a row count that is not a multiple of 16) give
// each output the bits of its own product, on one thread and over a pool;
// with the reference kernels they run one product each.
TEST(ForwardOps, SharedInputProductsEqualSeparateOnes) {
  constexpr int64_t kIn = 512;
  const DType types[3] = {DType::kQ4_K, DType::kQ6_K, DType::kQ4_K};
  const int64_t outs[3] = {96, 40, 48};
  std::vector<QMatrix> qs;
  for (int i = 0; i < 3; ++i) qs.push_back(make_matrix(types[i], kIn, outs[i], 60 + i));
  std::vector<uint8_t> packed(qgemm_packed_bytes(DType::kQ4_K, kIn, outs[2]));
  qgemm_pack(DType::kQ4_K, qs[2].bytes.data(), kIn, 0, outs[2], packed.data());
  for (CpuKernels kernels : {CpuKernels::kFast, CpuKernels::kReference}) {
    for (int threads : {1, 2}) {
      ComputeContext ctx;
      ctx.kernels = kernels;
      if (threads > 1) ctx.pool = two_core_pool();
      ASSERT_EQ(ctx.pool != nullptr, threads > 1);
      Matrix ms[3];
      for (int i = 0; i < 3; ++i) {
        ms[i].type = types[i], ms[i].data = qs[size_t(i)].bytes.data(), ms[i].n_in = kIn, ms[i].n_out = outs[i];
        ms[i].row_bytes = *dtype_row_bytes(types[i], uint64_t(kIn)), ms[i].ctx = &ctx;
      }
      if (qgemm_packed_fast(active_cpu_isa(), DType::kQ4_K)) ms[2].packed = packed.data(), ms[2].n_packed = outs[2];
      for (int64_t rows : {1, 3}) {
        const std::vector<float> x = randn(size_t(kIn * rows), 70 + rows);
        std::vector<float> want[3], got[3];
        float* got_ptr[3];
        for (int i = 0; i < 3; ++i) {
          want[i].resize(size_t(outs[i] * rows));
          got[i].assign(want[i].size(), NAN);
          got_ptr[i] = got[i].data();
          ms[i].mul(x.data(), rows, want[i].data());
        }
        const Matrix* mp[3] = {&ms[0], &ms[1], &ms[2]};
        mul_shared_input({}, x.data(), rows, {});  // nothing to do
        mul_shared_input(mp, x.data(), rows, got_ptr);
        for (int i = 0; i < 3; ++i) {
          ASSERT_EQ(std::memcmp(got[i].data(), want[i].data(), want[i].size() * sizeof(float)), 0)
              << "matrix " << i << ", " << threads << " threads, " << rows << " rows"
              << (kernels == CpuKernels::kReference ? ", reference" : "");
        }
      }
    }
  }
}

SamplerParams sampler_params(float temp, int32_t top_k, float top_p, float min_p, uint64_t seed) {
  SamplerParams p;
  p.temp = temp, p.top_k = top_k, p.top_p = top_p, p.min_p = min_p, p.seed = seed;
  return p;
}

TEST(ForwardOps, SamplerGreedySeededAndFiltered) {
  const std::vector<float> logits = randn(100, 50, 2.0f);
  int32_t best = 0;
  for (int32_t i = 1; i < 100; ++i) best = logits[static_cast<size_t>(i)] > logits[static_cast<size_t>(best)] ? i : best;
  EXPECT_EQ(argmax(logits.data(), 100), best);
  Sampler greedy(sampler_params(0.0f, 40, 0.95f, 0.05f, 1));
  EXPECT_EQ(greedy.sample(logits.data(), 100), best);
  Sampler top1(sampler_params(1.0f, 1, 1.0f, 0.0f, 1));
  EXPECT_EQ(top1.sample(logits.data(), 100), best);
  const SamplerParams sp = sampler_params(0.9f, 20, 0.9f, 0.02f, 42);
  Sampler a(sp), b(sp);
  std::vector<int> counts(100, 0);
  for (int i = 0; i < 2000; ++i) {
    const int32_t x = a.sample(logits.data(), 100);
    EXPECT_EQ(x, b.sample(logits.data(), 100));
    ++counts[static_cast<size_t>(x)];
  }
  EXPECT_GT(counts[static_cast<size_t>(best)], 100);
  // Only tokens inside the top-20 are ever drawn.
  std::vector<float> sorted = logits;
  std::sort(sorted.rbegin(), sorted.rend());
  for (int32_t i = 0; i < 100; ++i) {
    if (logits[static_cast<size_t>(i)] < sorted[19]) {
      EXPECT_EQ(counts[static_cast<size_t>(i)], 0) << i;
    }
  }
}

}  // namespace
}  // namespace strata
