// The cost model against hand-computed byte/bandwidth arithmetic, Monte
// Carlo routing, and its own invariants (ranges ordered, batching, NUMA,
// the prefill crossover).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "offload/cost_model.h"
#include "offload/model_catalog.h"

namespace strata {
namespace {

ModelDesc catalog(const char* key, const char* quant) { return catalog_model_desc(key, quant).value(); }

Figure fig(double v, double spread = 0) { return Figure{v, v * (1 - spread), v * (1 + spread), "test"}; }

// One node, no GPU; kernels so fast that DRAM bandwidth decides.
HardwareProfile cpu_box(double gbps, int nodes = 1, double cross = 0) {
  HardwareProfile h;
  h.name = "test box";
  h.cpu.sockets = nodes;
  h.cpu.cores_per_socket = 32;
  for (int i = 0; i < nodes; ++i) {
    NumaSpec n;
    n.index = i;
    n.package = i;
    n.dram_bytes = uint64_t{1} << 40;
    n.cores = 32;
    n.read_gbps = fig(gbps);
    h.numa.push_back(n);
  }
  if (cross > 0) h.cross_numa_gbps = fig(cross);
  for (DType t : {DType::kQ4_K, DType::kQ5_0, DType::kQ6_K, DType::kQ8_0, DType::kF32, DType::kBF16}) {
    h.cpu_kernels.push_back({t, fig(1e6), fig(1e9)});
  }
  return h;
}

HardwareProfile with_gpu(HardwareProfile h) {
  GpuSpec g;
  g.name = "test gpu";
  g.vram_bytes = 24ull << 30;
  g.pcie_gen = 4;
  g.pcie_width = 16;
  g.mem_gbps = fig(1000);
  g.gemv_gbps = fig(800);
  g.h2d_gbps = fig(25);
  g.bf16_tflops = fig(160);
  h.gpus.push_back(g);
  return h;
}

TEST(CostModel, DistinctExpertsMatchesMonteCarlo) {
  EXPECT_DOUBLE_EQ(CostModel::distinct_experts(256, 8, 1), 8.0);
  EXPECT_NEAR(CostModel::distinct_experts(256, 8, 1000), 256.0, 1e-6);
  std::mt19937 rng(7);
  for (int b : {2, 4, 16, 64}) {
    double sum = 0;
    const int trials = 2000;
    for (int t = 0; t < trials; ++t) {
      std::vector<char> seen(256, 0);
      for (int i = 0; i < b; ++i) {
        std::vector<int> ids(256);
        for (int e = 0; e < 256; ++e) ids[e] = e;
        for (int k = 0; k < 8; ++k) {  // k distinct experts per token
          std::uniform_int_distribution<int> u(k, 255);
          std::swap(ids[k], ids[u(rng)]);
          seen[ids[k]] = 1;
        }
      }
      sum += std::count(seen.begin(), seen.end(), 1);
    }
    const double mc = sum / trials;
    EXPECT_NEAR(CostModel::distinct_experts(256, 8, b), mc, 0.02 * mc + 0.2) << "b=" << b;
  }
}

TEST(CostModel, NodeImbalanceMatchesMonteCarlo) {
  EXPECT_DOUBLE_EQ(CostModel::imbalance({1.0}, 8), 1.0);
  std::mt19937 rng(11);
  for (std::vector<double> share : {std::vector<double>{0.5, 0.5}, std::vector<double>{0.25, 0.25, 0.25, 0.25}}) {
    for (int items : {8, 32}) {
      double sum = 0;
      const int trials = 20000;
      std::discrete_distribution<int> pick(share.begin(), share.end());
      for (int t = 0; t < trials; ++t) {
        std::vector<int> c(share.size(), 0);
        for (int i = 0; i < items; ++i) ++c[pick(rng)];
        double worst = 0;
        for (size_t j = 0; j < share.size(); ++j) worst = std::max(worst, c[j] / share[j]);
        sum += worst / items;
      }
      const double mc = sum / trials;
      // Two nodes are exact; more use a normal approximation.
      const double tol = share.size() == 2 ? 0.01 : 0.08;
      EXPECT_NEAR(CostModel::imbalance(share, items), mc, tol * mc) << share.size() << " nodes, " << items;
    }
  }
}

TEST(CostModel, CpuDecodeIsBytesOverBandwidth) {
  ModelDesc m = catalog("qwen3-30b-a3b", "Q8_0");
  HardwareProfile h = cpu_box(100);
  CostModel cm(m, h);
  Placement p;  // CPU only, one node
  p.node_expert_bytes = {m.routed_bytes};
  p.node_traffic = {1.0};
  DecodeEstimate d = cm.decode(p, 1, 1);
  // Every weight a token reads except the embedding row, at 100 GB/s; the
  // attention over one cached position is negligible.
  uint64_t embd_row = 0;
  for (const TensorDesc& t : m.shape.tensors) {
    if (t.role == TensorRole::kEmbedding) embd_row = t.n_bytes / t.ne[1];
  }
  const double want = double(m.roles.active_bytes_per_token - embd_row) / 100e9;
  EXPECT_NEAR(d.step.total.value, want, want * 0.01);
  EXPECT_NEAR(d.step.dram_experts.value, double(m.routed_active_bytes()) / 100e9, want * 0.01);
  EXPECT_EQ(d.step.pcie.value, 0);
  EXPECT_NEAR(d.tok_s.value, 1 / d.step.total.value, 1e-9);
  EXPECT_NE(d.bottleneck.find("routed experts"), std::string::npos);
}

TEST(CostModel, KernelRateBindsWhenSlowerThanDram) {
  ModelDesc m = catalog("qwen3-30b-a3b", "Q8_0");
  HardwareProfile h = cpu_box(100);
  for (KernelRate& k : h.cpu_kernels) k.decode_gbps = fig(10);  // compute-bound kernels
  CostModel cm(m, h);
  Placement p;
  p.node_expert_bytes = {m.routed_bytes};
  p.node_traffic = {1.0};
  DecodeEstimate d = cm.decode(p, 1, 1);
  // q8_0 at 10 GB/s of weight bytes: routed bytes / 10 GB/s (within the
  // two-point fit's rounding).
  EXPECT_NEAR(d.step.dram_experts.value, double(m.routed_active_bytes()) / 10e9, 0.02 * double(m.routed_active_bytes()) / 10e9);
}

TEST(CostModel, KernelFitReproducesBothRates) {
  ModelDesc m = catalog("qwen3-30b-a3b", "Q4_K_M");
  HardwareProfile h = cpu_box(100);
  for (KernelRate& k : h.cpu_kernels) {
    k.decode_gbps = fig(20);
    k.prefill_gops = fig(300);
  }
  CostModel cm(m, h);
  CostModel::KernelCost c = cm.kernel_cost(DType::kQ4_K, 0);
  const double bpp = 4.5 / 8;
  EXPECT_NEAR(c.a + c.d, bpp / 20e9, 1e-15);              // 1 row at 20 GB/s
  EXPECT_NEAR(c.a + 512 * c.d, 1024 / 300e9, 1e-15);      // 512 rows at 300 GOP/s
}

TEST(CostModel, RangesAreOrderedAndBatchingHelps) {
  ModelDesc m = catalog("deepseek-v3", "Q4_K_M");
  HardwareProfile h = with_gpu(cpu_box(300));
  for (KernelRate& k : h.cpu_kernels) k.decode_gbps = fig(250, 0.2);
  h.numa[0].read_gbps = fig(300, 0.15);
  CostModel cm(m, h);
  Placement p;
  p.gpu = 0;
  p.n_gpu_layers = m.dims.n_layer;
  p.output_on_gpu = true;
  p.node_expert_bytes = {m.routed_bytes};
  p.node_traffic = {1.0};
  DecodeEstimate d1 = cm.decode(p, 1, 4096);
  EXPECT_LT(d1.tok_s.lo, d1.tok_s.value);
  EXPECT_LT(d1.tok_s.value, d1.tok_s.hi);
  // Routed experts dominate: routed active bytes at the kernels' 250 GB/s
  // (slower than the 300 GB/s DRAM, so they bind).
  const double routed = double(m.routed_active_bytes()) / 250e9;
  EXPECT_NEAR(d1.step.dram_experts.value, routed, routed * 0.05);
  EXPECT_GT(d1.step.sync.value, 0);
  EXPECT_GT(d1.step.pcie.value, 0);
  DecodeEstimate d8 = cm.decode(p, 8, 4096);
  EXPECT_GT(d8.tok_s.value, d1.tok_s.value);          // one expert read serves several tokens
  EXPECT_LT(d8.tok_s.value, 8 * d1.tok_s.value);      // but 8 tokens touch ~8x the experts
  EXPECT_NEAR(d8.distinct_experts, CostModel::distinct_experts(256, 8, 8), 1e-9);
}

TEST(CostModel, NumaPartitionBeatsInterleavingWhenCrossLinksAreSlow) {
  ModelDesc m = catalog("deepseek-v3", "Q4_K_M");
  HardwareProfile h = cpu_box(300, 2, 100);
  CostModel cm(m, h);
  Placement part;
  part.node_expert_bytes = {m.routed_bytes / 2, m.routed_bytes / 2};
  part.node_traffic = {0.5, 0.5};
  part.numa_partitioned = true;
  Placement inter = part;
  inter.numa_partitioned = false;
  const double tp = cm.decode(part, 1, 1024).tok_s.value, ti = cm.decode(inter, 1, 1024).tok_s.value;
  EXPECT_GT(tp, ti);
  // Partitioned: each node reads half at 300 GB/s, times the expected
  // imbalance of 8 experts over 2 nodes.
  const double routed = double(m.routed_active_bytes()) / 2 / 300e9 * CostModel::imbalance({0.5, 0.5}, 8);
  EXPECT_NEAR(cm.decode(part, 1, 1024).step.dram_experts.value, routed, routed * 0.02);
}

TEST(CostModel, PrefillCrossoverMovesWithPcie) {
  ModelDesc m = catalog("deepseek-v3", "Q4_K_M");
  HardwareProfile h = with_gpu(cpu_box(300));
  for (KernelRate& k : h.cpu_kernels) {
    k.decode_gbps = fig(200);
    k.prefill_gops = fig(2000);
  }
  Placement p;
  p.gpu = 0;
  p.n_gpu_layers = m.dims.n_layer;
  p.output_on_gpu = true;
  p.node_expert_bytes = {m.routed_bytes};
  p.node_traffic = {1.0};
  CostModel slow(m, h);
  const uint32_t t_slow = slow.stream_threshold(p);
  ASSERT_GT(t_slow, 0u);
  // Below the threshold the CPU wins, above it streaming does.
  EXPECT_EQ(slow.prefill(p, t_slow / 2).strategy, PrefillStrategy::kCpu);
  EXPECT_EQ(slow.prefill(p, t_slow * 2).strategy, PrefillStrategy::kGpuStream);
  h.gpus[0].h2d_gbps = fig(50);  // PCIe 5
  CostModel fast(m, h);
  EXPECT_LT(fast.stream_threshold(p), t_slow);
  // Streaming time ~ routed bytes / PCIe for one micro-batch of 4096.
  PrefillEstimate e = fast.prefill_with(p, 4096, 512, PrefillStrategy::kGpuStream);
  EXPECT_NEAR(e.stream_experts_s.value, double(m.routed_bytes) / 50e9, 0.05 * double(m.routed_bytes) / 50e9);
}

TEST(CostModel, MissingRatesAreAssumedAndSaid) {
  ModelDesc m = catalog("qwen3-30b-a3b", "Q4_K_M");
  HardwareProfile h = cpu_box(50);
  h.cpu_kernels.clear();
  CostModel cm(m, h);
  bool said = false;
  for (const std::string& a : cm.assumptions()) said |= a.find("no CPU kernel rate for q4_k") != std::string::npos;
  EXPECT_TRUE(said);
}

}  // namespace
}  // namespace strata
