// The placement solver: capacities never exceeded over a grid of models,
// quantizations and machines; the resident set on the GPU when it fits;
// deterministic output; NUMA decisions on machines described by hwloc XML
// (2 sockets, 4 nodes in one socket); what is missing when nothing fits; the
// llama.cpp override regex checked against std::regex.
#include <gtest/gtest.h>

#include <regex>

#include "offload/hardware_file.h"
#include "offload/model_catalog.h"
#include "offload/placement.h"

namespace strata {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

Figure fig(double v) { return Figure{v, v * 0.9, v * 1.1, "test"}; }

HardwareProfile box(uint64_t dram_gib_per_node, int nodes, uint64_t vram_gib, uint64_t nvme_gb = 0) {
  HardwareProfile h;
  h.name = "grid box";
  h.cpu.sockets = nodes;
  h.cpu.cores_per_socket = 16;
  for (int i = 0; i < nodes; ++i) {
    NumaSpec n;
    n.index = i;
    n.package = i;
    n.dram_bytes = dram_gib_per_node * kGiB;
    n.cores = 16;
    n.read_gbps = fig(200);
    h.numa.push_back(n);
  }
  h.cross_numa_gbps = fig(60);
  for (DType t : {DType::kQ4_K, DType::kQ6_K, DType::kQ8_0, DType::kQ5_0, DType::kIQ2_XS, DType::kQ2_K}) {
    h.cpu_kernels.push_back({t, fig(400), fig(1500)});  // faster than DRAM
  }
  if (vram_gib) {
    GpuSpec g;
    g.name = "grid gpu";
    g.vram_bytes = vram_gib * kGiB;
    g.pcie_gen = 4;
    g.pcie_width = 16;
    g.mem_gbps = fig(900);
    g.h2d_gbps = fig(25);
    g.bf16_tflops = fig(150);
    h.gpus.push_back(g);
  }
  if (nvme_gb) {
    StorageSpec s;
    s.name = "grid nvme";
    s.capacity_bytes = nvme_gb * 1000000000ull;
    s.rand_read_gbps = fig(5);
    h.storage.push_back(s);
  }
  return h;
}

ModelDesc catalog(const char* key, const char* quant) { return catalog_model_desc(key, quant).value(); }

void expect_within_capacity(const Plan& plan, const HardwareProfile& h, const PlanOptions& o, const std::string& what) {
  const Placement& p = plan.placement;
  if (p.has_gpu()) {
    const uint64_t used = p.gpu_weight_bytes + p.gpu_kv_bytes + p.gpu_expert_bytes + p.gpu_scratch_bytes;
    const uint64_t budget = o.gpu_budget_bytes ? std::min(o.gpu_budget_bytes, h.gpus[0].vram_bytes) : h.gpus[0].vram_bytes;
    EXPECT_LE(used, budget) << what;
  }
  ASSERT_EQ(plan.node_used_bytes.size(), h.numa.size()) << what;
  for (size_t i = 0; i < h.numa.size(); ++i) {
    EXPECT_LE(plan.node_used_bytes[i], h.numa[i].dram_bytes) << what << " node " << i;
    EXPECT_LE(plan.node_used_bytes[i], plan.capacity.node_bytes[i]) << what << " node " << i;
  }
  uint64_t storage = 0;
  for (const StorageSpec& s : h.storage) storage += s.capacity_bytes;
  EXPECT_LE(p.nvme_expert_bytes, storage) << what;
}

TEST(Placement, NeverExceedsACapacity) {
  int feasible = 0, infeasible = 0;
  for (const char* model : {"deepseek-v3", "qwen3-30b-a3b", "mixtral-8x22b", "llama-3.3-70b", "deepseek-v2-lite"}) {
    for (const char* quant : {"Q2_K_XL", "Q4_K_M", "Q8_0"}) {
      ModelDesc m = catalog(model, quant);
      for (uint64_t vram : {0, 24, 80}) {
        for (uint64_t dram : {32, 384}) {
          for (int nodes : {1, 2}) {
            for (uint64_t nvme : {0, 4000}) {
              HardwareProfile h = box(dram, nodes, vram, nvme);
              PlanOptions o;
              o.workload.context = 16384;
              o.workload.n_seq = 2;
              auto r = plan_placement(m, h, o);
              ASSERT_TRUE(r.is_ok()) << r.status().message();
              const std::string what = std::string(model) + " " + quant + " vram " + std::to_string(vram) +
                                       " dram " + std::to_string(dram) + "x" + std::to_string(nodes) + " nvme " +
                                       std::to_string(nvme);
              if (!r->feasible) {
                ++infeasible;
                EXPECT_FALSE(r->shortfalls.empty()) << what;
                continue;
              }
              ++feasible;
              expect_within_capacity(*r, h, o, what);
              EXPECT_GT(r->decode_single.tok_s.value, 0) << what;
              // Every routed expert is somewhere.
              const Placement& p = r->placement;
              uint64_t placed = p.gpu_expert_bytes + p.nvme_expert_bytes;
              for (uint64_t b : p.node_expert_bytes) placed += b;
              EXPECT_NEAR(double(placed), double(m.routed_bytes), double(m.routed_bytes) * 1e-3 + 1e6) << what;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(feasible, 60);
  EXPECT_GT(infeasible, 10);
}

TEST(Placement, ResidentSetGoesToTheGpuWhenItFits) {
  ModelDesc m = catalog("deepseek-v3", "Q4_K_M");
  HardwareProfile h = box(384, 2, 24);
  PlanOptions o;
  o.workload.context = 32768;
  o.workload.prompt = 256;  // short prompts: no copy buffers, VRAM left for experts
  Plan p = plan_placement(m, h, o).value();
  ASSERT_TRUE(p.feasible);
  EXPECT_EQ(p.placement.n_gpu_layers, m.dims.n_layer);
  EXPECT_TRUE(p.placement.output_on_gpu);
  EXPECT_EQ(p.placement.gpu_kv_bytes, m.kv_bytes_per_token * 32768 / m.dims.n_layer * m.dims.n_layer);
  // A 24 GiB GPU holds the resident set and a few layers of experts.
  EXPECT_FALSE(p.placement.gpu_expert_layers.empty());
  EXPECT_TRUE(p.placement.numa_partitioned);
  // With a 4 GB budget only part of the stack fits: the last layers, as -ngl counts.
  o.gpu_budget_bytes = 4000000000ull;
  Plan q = plan_placement(m, h, o).value();
  ASSERT_TRUE(q.feasible);
  EXPECT_LT(q.placement.n_gpu_layers, m.dims.n_layer);
  EXPECT_TRUE(q.placement.gpu_expert_layers.empty());
  EXPECT_LT(q.decode_single.tok_s.value, p.decode_single.tok_s.value);
  expect_within_capacity(q, h, o, "budget");
}

TEST(Placement, Deterministic) {
  ModelDesc m = catalog("qwen3-235b-a22b", "Q4_K_M");
  HardwareProfile h = box(96, 2, 16, 2000);
  PlanOptions o;
  Plan a = plan_placement(m, h, o).value(), b = plan_placement(m, h, o).value();
  EXPECT_EQ(a.decisions, b.decisions);
  EXPECT_EQ(a.placement.node_expert_bytes, b.placement.node_expert_bytes);
  EXPECT_EQ(a.placement.gpu_expert_layers, b.placement.gpu_expert_layers);
  EXPECT_EQ(a.decode_single.tok_s.value, b.decode_single.tok_s.value);
  EXPECT_EQ(llama_cpp_args(m, a.placement), llama_cpp_args(m, b.placement));
}

TEST(Placement, InfeasibleSaysWhatIsMissing) {
  ModelDesc m = catalog("deepseek-v3", "Q4_K_M");
  HardwareProfile h = box(128, 2, 24);  // 256 GiB, no NVMe
  PlanOptions o;
  Plan p = plan_placement(m, h, o).value();
  ASSERT_FALSE(p.feasible);
  ASSERT_FALSE(p.shortfalls.empty());
  const std::string& s = p.shortfalls.front();
  EXPECT_NE(s.find("needs "), std::string::npos) << s;
  EXPECT_NE(s.find(" DRAM, has "), std::string::npos) << s;
  // The largest smaller quantization that fits, or more memory.
  EXPECT_TRUE(std::regex_search(s, std::regex("needs \\d+ GB DRAM, has \\d+ GB usable .*: use [A-Z0-9_]+ \\(\\d+ GB\\) or add \\d+ GB$"))) << s;
  // With NVMe the same box runs, reading the rest from the drive, slowly.
  HardwareProfile n = box(128, 2, 24, 2000);
  Plan q = plan_placement(m, n, o).value();
  ASSERT_TRUE(q.feasible);
  EXPECT_GT(q.placement.nvme_expert_bytes, 0u);
  EXPECT_GT(q.decode_single.step.nvme.value, q.decode_single.step.dram_experts.value);
}

TEST(Placement, BadInputNamesTheField) {
  ModelDesc m = catalog("qwen3-30b-a3b", "Q4_K_M");
  HardwareProfile h = box(64, 1, 0);
  h.numa.clear();
  auto r = plan_placement(m, h, PlanOptions{});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("numa: expected at least one NUMA node"), std::string::npos);
  h = box(64, 1, 8);
  h.gpus[0].vram_bytes = 0;
  r = plan_placement(m, h, PlanOptions{});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("gpus[0].vram_bytes: expected > 0, got 0"), std::string::npos);
  PlanOptions o;
  o.workload.context = 0;
  r = plan_placement(m, box(64, 1, 8), o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("context"), std::string::npos);
}

// NUMA layouts from hwloc exports, through the hardware files that cite them.
TEST(Placement, NumaSplitOnTwoSocketsAndFourNodes) {
  ModelDesc m = catalog("deepseek-v3", "Q4_K_M");
  for (const char* file : {"2x-xeon-6430-topology.yaml", "epyc-9654-nps4-h100.yaml"}) {
    auto h = load_hardware(std::string(STRATA_TEST_FIXTURES) + "/hardware/" + file);
    ASSERT_TRUE(h.is_ok()) << h.status().message();
    const size_t nodes = h->numa.size();
    ASSERT_GE(nodes, 2u) << file;
    PlanOptions o;
    o.workload.context = 8192;
    Plan p = plan_placement(m, *h, o).value();
    ASSERT_TRUE(p.feasible) << file << ": " << (p.shortfalls.empty() ? "" : p.shortfalls.front());
    expect_within_capacity(p, *h, o, file);
    const Placement& pl = p.placement;
    ASSERT_EQ(pl.node_expert_bytes.size(), nodes) << file;
    // Binding experts to nodes avoids cross-node reads but makes the busiest
    // node decide; the planner keeps whichever is faster, and says so.
    if (nodes == 2) {
      EXPECT_TRUE(pl.numa_partitioned) << file << ": cross-socket links are slow";
    }
    double traffic = 0;
    int total_cores = 0;
    for (const NumaSpec& n : h->numa) total_cores += n.cores;
    for (size_t i = 0; i < nodes; ++i) {
      traffic += pl.node_traffic[i];
      // Experts (and so traffic) in proportion to the node's cores.
      EXPECT_NEAR(pl.node_traffic[i], double(h->numa[i].cores) / total_cores, 0.01) << file << " node " << i;
    }
    EXPECT_NEAR(traffic, 1.0, 1e-9);
    EXPECT_GE(p.decode_single.tok_s.value, p.decode_interleaved.tok_s.value - 1e-9) << file;
    bool said = false;
    for (const std::string& d : p.decisions) {
      said |= d.find("split over " + std::to_string(nodes) + " NUMA nodes") != std::string::npos ||
              d.find("interleaved over " + std::to_string(nodes) + " nodes") != std::string::npos;
    }
    EXPECT_TRUE(said) << file;
  }
}

TEST(Placement, IntegerSetRegexMatchesExactlyTheSet) {
  const std::vector<std::vector<uint32_t>> sets = {
      {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
       32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60},
      {0}, {7}, {9, 10}, {19, 20, 21}, {1, 3, 5, 99, 100, 101, 150, 199, 200}, {10, 11, 12, 13, 14, 15, 16, 17, 18, 19}};
  for (const auto& set : sets) {
    const std::string re = integer_set_regex(set);
    std::regex r("^" + re + "$");
    for (uint32_t n = 0; n <= 300; ++n) {
      const bool in = std::find(set.begin(), set.end(), n) != set.end();
      EXPECT_EQ(std::regex_match(std::to_string(n), r), in) << re << " on " << n;
    }
  }
  EXPECT_EQ(integer_set_regex({3, 4, 5, 6, 7, 8, 9, 10, 11, 12}), "([3-9]|1[0-2])");
}

TEST(Placement, LlamaCppOverrideNamesTheCpuLayers) {
  ModelDesc m = catalog("deepseek-v3", "Q4_K_M");
  Plan p = plan_placement(m, box(384, 2, 24), PlanOptions{}).value();
  ASSERT_TRUE(p.feasible);
  const std::string args = llama_cpp_args(m, p.placement);
  ASSERT_EQ(args.rfind("-ngl 99 -ot \"blk\\.", 0), 0u) << args;
  // The regex must select exactly the MoE layers whose experts stay on the CPU.
  const size_t a = args.find("blk\\.") + 5, b = args.find("\\.ffn_");
  std::regex r("^" + args.substr(a, b - a) + "$");
  for (uint32_t L = 0; L < m.dims.n_layer; ++L) {
    const bool moe = L >= 3;
    const bool on_gpu = std::find(p.placement.gpu_expert_layers.begin(), p.placement.gpu_expert_layers.end(), L) !=
                        p.placement.gpu_expert_layers.end();
    EXPECT_EQ(std::regex_match(std::to_string(L), r), moe && !on_gpu) << L << " " << args;
  }
  Plan cpu = plan_placement(m, box(384, 2, 0), PlanOptions{}).value();
  EXPECT_EQ(llama_cpp_args(m, cpu.placement), "-ngl 0");
}

TEST(Placement, ClusterSketchForManyUsers) {
  ModelDesc m = catalog("deepseek-v3", "Q4_K_M");
  ClusterSketch c = sketch_cluster(m, "FP8", 200, 20, 8192);
  // 671 GB of FP8 weights and 200 x 8192 tokens of latent cache: more than 8 H100s.
  EXPECT_GE(c.n_gpus, 16u);
  EXPECT_EQ(c.n_gpus % 8, 0u);
  EXPECT_EQ(c.n_nodes, c.n_gpus / 8);
  bool sglang = false, vllm = false;
  for (const std::string& l : c.lines) {
    sglang |= l.find("sglang.launch_server") != std::string::npos && l.find("--ep-size") != std::string::npos;
    vllm |= l.find("vllm serve") != std::string::npos && l.find("--enable-expert-parallel") != std::string::npos;
  }
  EXPECT_TRUE(sglang && vllm);
}

}  // namespace
}  // namespace strata
