// The CPU expert executor against a plain per-row loop (ffn_swiglu_ref per
// chosen expert, summed in expert-id order): bit for bit in reference mode at
// every thread count and on a two-node (synthetic) NUMA layout with copied
// experts; within the 8-bit activation error in fast mode, where a row must
// still not depend on its batch or the thread count; within float rounding
// when prompt batches run on oneDNN. Uneven loads and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu_kernels/ffn_ref.h"
#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/gemm_choice.h"
#include "cpu_kernels/qgemm_packed.h"
#include "cpu_kernels/quant_ref.h"
#include "offload/cpu_pool.h"
#include "offload/expert_executor.h"
#include "offload/topology.h"
#include "runtime/base/dtype.h"

namespace strata {
namespace {

// A random layer of n_expert experts held in memory, quantized to `type`.
struct Layer {
  std::vector<uint8_t> gate, up, down;
  ExpertLayer l;
};

std::vector<uint8_t> random_stack(DType t, int64_t n_in, int64_t n_out, int64_t n_expert, float scale, uint64_t seed,
                                  uint64_t* expert_bytes) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, scale);
  const uint64_t row = dtype_row_bytes(t, uint64_t(n_in)).value();
  *expert_bytes = row * uint64_t(n_out);
  std::vector<uint8_t> out(static_cast<size_t>(*expert_bytes * uint64_t(n_expert)));
  std::vector<float> v(static_cast<size_t>(n_in));
  for (int64_t r = 0; r < n_out * n_expert; ++r) {
    for (float& x : v) x = g(rng);
    EXPECT_TRUE(quantize_row_ref(t, v.data(), out.data() + uint64_t(r) * row, n_in).is_ok());
  }
  return out;
}

Layer make_layer(DType t, int64_t n_embd, int64_t n_ff, int64_t n_expert, uint64_t seed) {
  Layer L;
  auto fill = [&](ExpertTensor& e, std::vector<uint8_t>& buf, const char* name, int64_t n_in, int64_t n_out, uint64_t s) {
    buf = random_stack(t, n_in, n_out, n_expert, 1.0f / std::sqrt(float(n_in)), s, &e.expert_bytes);
    e.name = name;
    e.type = t;
    e.data = buf.data();
    e.n_in = n_in;
    e.n_out = n_out;
    e.n_expert = n_expert;
  };
  fill(L.l.gate, L.gate, "blk.0.ffn_gate_exps.weight", n_embd, n_ff, seed);
  fill(L.l.up, L.up, "blk.0.ffn_up_exps.weight", n_embd, n_ff, seed + 1);
  fill(L.l.down, L.down, "blk.0.ffn_down_exps.weight", n_ff, n_embd, seed + 2);
  L.l.layer = 0;
  return L;
}

struct Routing {
  std::vector<float> x, w;
  std::vector<int32_t> ids;
  int64_t n_rows = 0;
  int32_t n_used = 0;
  ExpertRouting view() const { return {x.data(), n_rows, n_used, ids.data(), w.data()}; }
};

// Rows with random distinct experts; `skew` sends every row to expert 0 too.
Routing make_routing(int64_t n_rows, int32_t n_used, int64_t n_embd, int64_t n_expert, bool skew, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.05f, 1.0f);
  Routing r;
  r.n_rows = n_rows;
  r.n_used = n_used;
  r.x.resize(size_t(n_rows * n_embd));
  for (float& v : r.x) v = g(rng);
  for (int64_t row = 0; row < n_rows; ++row) {
    std::vector<int32_t> all(static_cast<size_t>(n_expert));
    for (int32_t e = 0; e < n_expert; ++e) all[size_t(e)] = e;
    std::shuffle(all.begin(), all.end(), rng);
    if (skew) std::iter_swap(all.begin(), std::find(all.begin(), all.end(), 0));
    for (int32_t k = 0; k < n_used; ++k) {
      r.ids.push_back(all[size_t(k)]);
      r.w.push_back(u(rng));
    }
  }
  return r;
}

// The plain loop: each row alone through each chosen expert's reference FFN.
std::vector<float> oracle(const ExpertLayer& l, const Routing& r) {
  const int64_t E = l.n_embd();
  std::vector<float> out(static_cast<size_t>(r.n_rows * E), 0.0f), y(static_cast<size_t>(E));
  for (int64_t row = 0; row < r.n_rows; ++row) {
    std::vector<int32_t> slots(static_cast<size_t>(r.n_used));
    for (int32_t k = 0; k < r.n_used; ++k) slots[size_t(k)] = k;
    std::sort(slots.begin(), slots.end(), [&](int32_t a, int32_t b) { return r.ids[size_t(row * r.n_used + a)] < r.ids[size_t(row * r.n_used + b)]; });
    for (int32_t k : slots) {
      const int32_t e = r.ids[size_t(row * r.n_used + k)];
      FfnMatrices f;
      f.gate_type = l.gate.type;
      f.up_type = l.up.type;
      f.down_type = l.down.type;
      f.gate = static_cast<const uint8_t*>(l.gate.data) + uint64_t(e) * l.gate.expert_bytes;
      f.up = static_cast<const uint8_t*>(l.up.data) + uint64_t(e) * l.up.expert_bytes;
      f.down = static_cast<const uint8_t*>(l.down.data) + uint64_t(e) * l.down.expert_bytes;
      f.n_embd = E;
      f.n_ff = l.n_ff();
      std::vector<float> scratch(static_cast<size_t>(ffn_scratch_floats(f, 1)));
      ffn_swiglu_ref(f, r.x.data() + row * E, 1, y.data(), scratch.data());
      const float w = r.w[size_t(row * r.n_used + k)];
      for (int64_t c = 0; c < E; ++c) out[size_t(row * E + c)] += w * y[size_t(c)];
    }
  }
  return out;
}

std::vector<float> run(ExpertExecutor& ex, const ExpertLayer& l, const Routing& r) {
  std::vector<float> out(static_cast<size_t>(r.n_rows * l.n_embd()), -1.0f);
  const Status s = ex.run(l, r.view(), out.data());
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return out;
}

std::shared_ptr<CpuPool> pool_of(int n) {
  return std::make_shared<CpuPool>(std::vector<CpuThreadPlace>(size_t(n)), nullptr);
}

std::unique_ptr<ExpertExecutor> executor(CpuKernels k, int threads, ExpertRepack repack = ExpertRepack::kOff) {
  CpuExecutorOptions o;
  o.kernels = k;
  o.repack = repack;
  if (threads > 1) o.pool = pool_of(threads);
  return make_cpu_expert_executor(std::move(o));
}

// Row `row` of r as a batch of its own (n_embd inputs per row).
Routing row_alone(const Routing& r, int64_t row, int64_t n_embd) {
  Routing a;
  a.n_rows = 1;
  a.n_used = r.n_used;
  a.x.assign(r.x.begin() + row * n_embd, r.x.begin() + (row + 1) * n_embd);
  a.ids.assign(r.ids.begin() + row * r.n_used, r.ids.begin() + (row + 1) * r.n_used);
  a.w.assign(r.w.begin() + row * r.n_used, r.w.begin() + (row + 1) * r.n_used);
  return a;
}

// Largest |a - b| relative to the largest |b|.
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
    s = std::max(s, std::fabs(double(b[i])));
  }
  return d / std::max(s, 1e-30);
}

// ||a - b|| / ||b|| (normalized root-mean-square error).
double nrmse(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    s += double(b[i]) * double(b[i]);
  }
  return std::sqrt(d / std::max(s, 1e-30));
}

class ExecutorTypes : public ::testing::TestWithParam<DType> {};

TEST_P(ExecutorTypes, ReferenceModeEqualsThePlainLoopBitForBit) {
  const DType t = GetParam();
  Layer L = make_layer(t, 256, 512, 8, 1);
  for (bool skew : {false, true}) {
    const Routing r = make_routing(13, 3, 256, 8, skew, 2);
    const std::vector<float> want = oracle(L.l, r);
    for (int threads : {1, 2, 3}) {
      auto ex = executor(CpuKernels::kReference, threads);
      ASSERT_TRUE(ex->check_layer(L.l).is_ok());
      ASSERT_TRUE(ex->place_layers({&L.l, 1}).is_ok());
      const std::vector<float> got = run(*ex, L.l, r);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
          << threads << " threads, skew " << skew << ", rel err " << rel_err(got, want);
      // Buffers are reused: a second call gives the same.
      EXPECT_EQ(run(*ex, L.l, r), got);
    }
  }
}

TEST_P(ExecutorTypes, FastModeIsCloseAndBatchInvariant) {
  const DType t = GetParam();
  Layer L = make_layer(t, 256, 512, 8, 3);
  const Routing r = make_routing(11, 3, 256, 8, true, 4);
  const std::vector<float> want = oracle(L.l, r);
  auto one = executor(CpuKernels::kFast, 1);
  const std::vector<float> base = run(*one, L.l, r);
  // f32 weights keep f32 activations: only the summation order differs.
  // Quantized weights see 8-bit activations (a scale per block of 32 or 256,
  // |q| <= 127): rounding adds uniform noise of max|block| / (127 sqrt 12),
  // about 0.7 % of the rms of Gaussian inputs (block max ~3 rms) and up to
  // ~2 % for the heavy-tailed h = silu(g) u of the down product (block max up
  // to ~8 rms); the two products compound to a few percent at worst.
  const bool f32 = t == DType::kF32;
  const double e_rms = nrmse(base, want), e_max = rel_err(base, want);
  EXPECT_LE(e_rms, f32 ? 1e-6 : 3e-2);
  EXPECT_LE(e_max, f32 ? 1e-5 : 6e-2);
  std::printf("[ measured ] %s fast vs reference: nrmse %.3g, max err / max %.3g\n", std::string(dtype_name(t)).c_str(),
              e_rms, e_max);
  for (int threads : {2, 3}) {
    auto ex = executor(CpuKernels::kFast, threads);
    EXPECT_EQ(run(*ex, L.l, r), base) << threads << " threads";
  }
  // Each row alone equals the same row in the batch, bit for bit.
  for (int64_t row = 0; row < r.n_rows; ++row) {
    const std::vector<float> alone = run(*one, L.l, row_alone(r, row, 256));
    EXPECT_EQ(std::memcmp(alone.data(), base.data() + row * 256, 256 * sizeof(float)), 0) << "row " << row;
  }
}

TEST_P(ExecutorTypes, PromptBatchesOnOneDnnAreClose) {
  // Four experts, each used by every row: every expert has 80 rows, enough
  // for the oneDNN path, which multiplies f32 activations by the f32
  // dequantized weights (only the summation order differs from the oracle).
  const DType t = GetParam();
  Layer L = make_layer(t, 256, 512, 4, 5);
  const Routing r = make_routing(80, 4, 256, 4, false, 6);
  const std::vector<float> want = oracle(L.l, r);
  set_gemm_policy(GemmPolicy::kDnnl);
  for (int threads : {1, 2, 3}) {
    auto ex = executor(CpuKernels::kFast, threads);
    const std::vector<float> got = run(*ex, L.l, r);
    EXPECT_LE(nrmse(got, want), 1e-6) << threads << " threads";
    EXPECT_LE(rel_err(got, want), 1e-5) << threads << " threads";
  }
  set_gemm_policy(GemmPolicy::kAuto);
}

INSTANTIATE_TEST_SUITE_P(Types, ExecutorTypes, ::testing::Values(DType::kF32, DType::kQ8_0, DType::kQ4_K),
                         [](const ::testing::TestParamInfo<DType>& i) { return std::string(dtype_name(i.param)); });

TEST(CpuExpertExecutor, NumaCopiesComputeTheSame) {
  // Two nodes of two cores (synthetic: nothing is bound, memory is plain).
  auto topo = Topology::synthetic("pack:2 numa:1 core:2 pu:1");
  ASSERT_TRUE(topo.is_ok()) << topo.status().to_string();
  auto pool = CpuPool::create(*topo);
  ASSERT_TRUE(pool.is_ok());
  std::shared_ptr<CpuPool> shared = std::move(pool.value());
  ASSERT_EQ(shared->n_nodes(), 2);
  Layer L0 = make_layer(DType::kQ8_0, 256, 512, 16, 5);
  Layer L1 = make_layer(DType::kQ8_0, 256, 512, 16, 6);
  L1.l.layer = 1;
  for (CpuKernels k : {CpuKernels::kReference, CpuKernels::kFast}) {
    CpuExecutorOptions o;
    o.pool = shared;
    o.kernels = k;
    o.topology = *topo;
    o.repack = ExpertRepack::kOff;  // copies as the file has them (RepackedExpertsComputeTheSame repacks)
    uint64_t last_done = 0, last_total = 0;
    int calls = 0;
    o.progress = [&](uint64_t done, uint64_t total) {
      EXPECT_GE(done, last_done);
      last_done = done, last_total = total, ++calls;
    };
    auto numa = make_cpu_expert_executor(std::move(o));
    const std::vector<ExpertLayer> layers = {L0.l, L1.l};
    ASSERT_TRUE(numa->place_layers(layers).is_ok());
    EXPECT_GT(calls, 0);
    EXPECT_EQ(last_done, last_total);
    EXPECT_EQ(last_total, 2 * 16 * (L0.l.gate.expert_bytes + L0.l.up.expert_bytes + L0.l.down.expert_bytes));
    auto flat = executor(k, 1);
    const Routing r = make_routing(9, 4, 256, 16, true, 7);
    EXPECT_EQ(run(*numa, L0.l, r), run(*flat, L0.l, r));
    EXPECT_EQ(run(*numa, L1.l, r), run(*flat, L1.l, r));
  }
}

// Experts repacked at placement (qgemm_packed.h) against the same experts on
// the file's bytes: the integer block sums are the same, only the float
// accumulation order differs; the repacked run is itself independent of the
// thread count and of which rows share the batch, with decode-sized and
// prompt-sized (oneDNN-eligible) expert loads, flat and on two NUMA nodes.
TEST(CpuExpertExecutor, RepackedExpertsComputeTheSame) {
  // Q4_K gate and up with a Q6_K down, as Q4_K_M files have in some layers.
  Layer L = make_layer(DType::kQ4_K, 256, 512, 8, 21);
  L.down = random_stack(DType::kQ6_K, 512, 256, 8, 1.0f / std::sqrt(512.0f), 24, &L.l.down.expert_bytes);
  L.l.down.type = DType::kQ6_K;
  L.l.down.data = L.down.data();
  const bool packs = qgemm_packed_fast(active_cpu_isa(), DType::kQ4_K) && qgemm_packed_fast(active_cpu_isa(), DType::kQ6_K);
  for (int64_t n_rows : {5, 70}) {
    const Routing r = make_routing(n_rows, 3, 256, 8, true, 22);
    // The file layout on qgemm (8-bit activations, as the packed kernel).
    set_gemm_policy(GemmPolicy::kNative);
    auto plain = executor(CpuKernels::kFast, 2, ExpertRepack::kOff);
    ASSERT_TRUE(plain->place_layers({&L.l, 1}).is_ok());
    EXPECT_EQ(plain->placement_summary(), "");
    const std::vector<float> want = run(*plain, L.l, r);
    set_gemm_policy(GemmPolicy::kAuto);
    std::vector<float> base;
    for (int threads : {1, 2, 3}) {
      CpuExecutorOptions o;
      o.kernels = CpuKernels::kFast;
      o.repack = ExpertRepack::kOn;
      if (threads > 1) o.pool = pool_of(threads);
      uint64_t last_total = 0;
      o.progress = [&](uint64_t, uint64_t total) { last_total = total; };
      auto ex = make_cpu_expert_executor(std::move(o));
      ASSERT_TRUE(ex->place_layers({&L.l, 1}).is_ok());
      if (!packs) {
        EXPECT_EQ(ex->placement_summary(), "") << "nothing to repack on " << cpu_isa_name(active_cpu_isa());
        GTEST_SKIP() << "this CPU path has no packed q4_k kernel (" << cpu_isa_name(active_cpu_isa()) << ")";
      }
      EXPECT_NE(ex->placement_summary().find("experts repacked (3 tensors"), std::string::npos)
          << ex->placement_summary();
      EXPECT_EQ(last_total, 8 * (2 * qgemm_packed_bytes(DType::kQ4_K, 256, 512) + qgemm_packed_bytes(DType::kQ6_K, 512, 256)));
      const std::vector<float> got = run(*ex, L.l, r);
      EXPECT_LE(rel_err(got, want), 1e-5) << threads << " threads, " << n_rows << " rows";
      if (base.empty()) base = got;
      EXPECT_EQ(got, base) << threads << " threads, " << n_rows << " rows";
    }
    // A row alone equals the same row in the batch (decode-sized batch only:
    // in the prompt-sized one the unpacked experts may run on oneDNN).
    if (n_rows > 8) continue;
    auto one = executor(CpuKernels::kFast, 1, ExpertRepack::kOn);
    ASSERT_TRUE(one->place_layers({&L.l, 1}).is_ok());
    for (int64_t row = 0; row < r.n_rows; ++row) {
      const std::vector<float> alone = run(*one, L.l, row_alone(r, row, 256));
      EXPECT_EQ(std::memcmp(alone.data(), base.data() + row * 256, 256 * sizeof(float)), 0) << "row " << row;
    }
  }
  // On two synthetic NUMA nodes: the same values as the flat repacked run.
  auto topo = Topology::synthetic("pack:2 numa:1 core:2 pu:1");
  ASSERT_TRUE(topo.is_ok()) << topo.status().to_string();
  auto pool = CpuPool::create(*topo);
  ASSERT_TRUE(pool.is_ok());
  CpuExecutorOptions o;
  o.pool = std::move(pool.value());
  o.topology = *topo;
  o.repack = ExpertRepack::kOn;
  auto numa = make_cpu_expert_executor(std::move(o));
  ASSERT_TRUE(numa->place_layers({&L.l, 1}).is_ok());
  EXPECT_NE(numa->placement_summary().find("on 2 NUMA nodes"), std::string::npos) << numa->placement_summary();
  auto flat = executor(CpuKernels::kFast, 1, ExpertRepack::kOn);
  ASSERT_TRUE(flat->place_layers({&L.l, 1}).is_ok());
  const Routing r = make_routing(9, 4, 256, 8, true, 23);
  EXPECT_EQ(run(*numa, L.l, r), run(*flat, L.l, r));
}

TEST(CpuExpertExecutor, Errors) {
  Layer L = make_layer(DType::kQ8_0, 256, 512, 4, 8);
  auto ex = executor(CpuKernels::kFast, 2);
  Routing r = make_routing(2, 2, 256, 4, false, 9);
  r.ids[1] = 4;
  std::vector<float> out(512);
  const Status s = ex->run(L.l, r.view(), out.data());
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("layer 0: expert id 4 out of range 0..3"), std::string::npos) << s.message();

  ExpertLayer bad = L.l;
  bad.down.n_out = 128;
  const Status c = ex->check_layer(bad);
  EXPECT_EQ(c.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.message().find("expert shapes disagree"), std::string::npos) << c.message();
}

}  // namespace
}  // namespace strata
