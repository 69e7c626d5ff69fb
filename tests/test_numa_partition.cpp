// NUMA partition of routed experts on the committed hwloc machines (2 sockets,
// 4 nodes on one socket, 1-node desktop): balance of bytes and of expected
// traffic per layer, capacities, determinism and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "offload/numa_partition.h"
#include "offload/topology.h"

namespace strata {
namespace {

std::string fixture(const char* name) { return std::string(STRATA_TEST_FIXTURES) + "/topology/" + name; }

// qwen3-30b-a3b-like: n_layer layers of 128 experts of 1.69 MiB (q4_k gate, up, down).
std::vector<ExpertBytes> experts(int n_layer, int n_expert = 128, uint64_t bytes = 1769472) {
  std::vector<ExpertBytes> v;
  for (int l = 0; l < n_layer; ++l) {
    for (int e = 0; e < n_expert; ++e) v.push_back({l, e, bytes, -1.0});
  }
  return v;
}

Topology load(const char* name) {
  auto t = Topology::from_xml(fixture(name));
  EXPECT_TRUE(t.is_ok()) << t.status().to_string();
  return t.is_ok() ? std::move(t.value()) : Topology{};
}

// Per node, per layer: experts assigned.
std::vector<std::vector<int>> count_per_layer(const NumaPartition& p, const std::vector<ExpertBytes>& ex, int n_nodes,
                                              int n_layer) {
  std::vector<std::vector<int>> c(size_t(n_nodes), std::vector<int>(size_t(n_layer), 0));
  for (size_t i = 0; i < ex.size(); ++i) ++c[size_t(p.node_of[i])][size_t(ex[i].layer)];
  return c;
}

TEST(NumaPartition, TwoSocketsSplitEveryLayerEvenly) {
  const Topology t = load("2socket.xml");
  const auto nodes = numa_budgets(t);
  ASSERT_EQ(nodes.size(), 2u);
  const auto ex = experts(48);
  auto p = partition_experts(nodes, ex);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  const auto c = count_per_layer(*p, ex, 2, 48);
  for (int l = 0; l < 48; ++l) {
    EXPECT_EQ(c[0][size_t(l)], 64) << "layer " << l;
    EXPECT_EQ(c[1][size_t(l)], 64) << "layer " << l;
  }
  EXPECT_EQ(p->node_bytes[0], p->node_bytes[1]);
  EXPECT_NEAR(p->node_traffic[0], 24.0, 1e-9);  // half of each layer's traffic
}

TEST(NumaPartition, FourNodesAndOddCountsStayBalancedAcrossLayers) {
  const Topology t = load("4node.xml");
  const auto nodes = numa_budgets(t);
  ASSERT_EQ(nodes.size(), 4u);
  // 10 experts per layer over 4 nodes: 3/3/2/2 per layer, and the extra
  // experts rotate so that over 8 layers bytes stay within one expert.
  const auto ex = experts(8, 10);
  auto p = partition_experts(nodes, ex);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  const auto c = count_per_layer(*p, ex, 4, 8);
  for (int l = 0; l < 8; ++l) {
    int lo = 99, hi = 0;
    for (int n = 0; n < 4; ++n) lo = std::min(lo, c[size_t(n)][size_t(l)]), hi = std::max(hi, c[size_t(n)][size_t(l)]);
    EXPECT_LE(hi - lo, 1) << "layer " << l;
  }
  const auto [mn, mx] = std::minmax_element(p->node_bytes.begin(), p->node_bytes.end());
  EXPECT_LE(*mx - *mn, 1769472u);
}

TEST(NumaPartition, OneNodeTakesEverything) {
  const Topology t = load("desktop.xml");
  const auto ex = experts(4);
  auto p = partition_experts(numa_budgets(t), ex);
  ASSERT_TRUE(p.is_ok());
  for (int n : p->node_of) EXPECT_EQ(n, 0);
  EXPECT_EQ(p->node_bytes[0], 4u * 128 * 1769472);
}

TEST(NumaPartition, SkewedTrafficIsSpreadByPopularity) {
  // Zipf-like popularity: expert e of a layer gets 1/(e+1) (shuffled by layer).
  std::vector<ExpertBytes> ex;
  const int n_layer = 6, n_expert = 64;
  for (int l = 0; l < n_layer; ++l) {
    for (int e = 0; e < n_expert; ++e) ex.push_back({l, e, 1 << 20, 1.0 / (1 + (e * 7 + l * 13) % n_expert)});
  }
  const std::vector<NumaNodeBudget> nodes = {{1ull << 40, 1.0}, {1ull << 40, 1.0}};
  auto p = partition_experts(nodes, ex);
  ASSERT_TRUE(p.is_ok());
  for (int l = 0; l < n_layer; ++l) {
    double sum = 0, t[2] = {0, 0}, biggest = 0;
    for (size_t i = 0; i < ex.size(); ++i) {
      if (ex[i].layer != l) continue;
      sum += ex[i].traffic;
      biggest = std::max(biggest, ex[i].traffic);
      t[p->node_of[i]] += ex[i].traffic;
    }
    // Greedy largest-first: the two halves differ by at most the largest item.
    EXPECT_LE(std::fabs(t[0] - t[1]), biggest) << "layer " << l;
    EXPECT_NEAR((t[0] + t[1]) / sum, 1.0, 1e-12);
  }
}

TEST(NumaPartition, WeightsSetTheShares) {
  // A node with three times the cores gets three quarters of every layer.
  const std::vector<NumaNodeBudget> nodes = {{1ull << 40, 3.0}, {1ull << 40, 1.0}};
  const auto ex = experts(3, 128);
  auto p = partition_experts(nodes, ex);
  ASSERT_TRUE(p.is_ok());
  const auto c = count_per_layer(*p, ex, 2, 3);
  for (int l = 0; l < 3; ++l) {
    EXPECT_EQ(c[0][size_t(l)], 96);
    EXPECT_EQ(c[1][size_t(l)], 32);
  }
}

TEST(NumaPartition, CapacityIsNeverExceeded) {
  // Node 1 holds only 100 experts: the rest go to node 0 although it is slower.
  const uint64_t b = 1 << 20;
  const std::vector<NumaNodeBudget> nodes = {{1000 * b, 1.0}, {100 * b, 4.0}};
  const auto ex = experts(4, 128, b);
  auto p = partition_experts(nodes, ex);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_LE(p->node_bytes[1], 100 * b);
  EXPECT_EQ(p->node_bytes[0] + p->node_bytes[1], 512 * b);
}

TEST(NumaPartition, Deterministic) {
  const Topology t = load("4node.xml");
  auto ex = experts(5, 37, 12345);
  for (size_t i = 0; i < ex.size(); ++i) ex[i].traffic = double((i * 2654435761u) % 1000);
  auto a = partition_experts(numa_budgets(t), ex);
  auto b = partition_experts(numa_budgets(t), ex);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->node_of, b->node_of);
  EXPECT_EQ(a->node_bytes, b->node_bytes);
}

TEST(NumaPartition, TooBigSaysByHowMuch) {
  const uint64_t b = 1 << 20;
  const std::vector<NumaNodeBudget> nodes = {{10 * b, 1.0}, {10 * b, 1.0}};
  auto p = partition_experts(nodes, experts(1, 21, b));
  ASSERT_FALSE(p.is_ok());
  EXPECT_EQ(p.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(p.status().message().find("(1048576 bytes) short"), std::string::npos) << p.status().message();

  // Enough in total, but an expert larger than any node's free space.
  const std::vector<NumaNodeBudget> split = {{3 * b, 1.0}, {3 * b, 1.0}};
  std::vector<ExpertBytes> ex = {{0, 0, 2 * b, -1}, {0, 1, 2 * b, -1}, {0, 2, 2 * b, -1}};
  auto q = partition_experts(split, ex);
  ASSERT_FALSE(q.is_ok());
  EXPECT_NE(q.status().message().find("layer 0 expert 2 (2097152 bytes) fits on no node"), std::string::npos)
      << q.status().message();
  EXPECT_NE(q.status().message().find("1048576 bytes short"), std::string::npos) << q.status().message();
}

TEST(NumaPartition, BadInputIsAnError) {
  EXPECT_FALSE(partition_experts({}, experts(1)).is_ok());
  const std::vector<NumaNodeBudget> zero = {{1ull << 40, 0.0}};
  auto z = partition_experts(zero, experts(1));
  ASSERT_FALSE(z.is_ok());
  EXPECT_NE(z.status().message().find("node 0: expected a weight > 0"), std::string::npos);
  auto dup = experts(1, 2);
  dup.push_back(dup[0]);
  const std::vector<NumaNodeBudget> one = {{1ull << 40, 1.0}};
  auto d = partition_experts(one, dup);
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("layer 0 expert 0 listed twice"), std::string::npos);
}

}  // namespace
}  // namespace strata
