// Which NUMA node holds each routed expert: a pure function of the nodes'
// capacities and speeds and the experts' sizes and expected traffic, shared by
// the CPU expert executor (at load) and the placement planner (on paper).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/base/status.h"

namespace strata {

class Topology;

// One NUMA node as the partition sees it.
struct NumaNodeBudget {
  uint64_t capacity_bytes = 0;  // expert bytes it may hold
  double weight = 1.0;          // its share of the work: cores or read bandwidth (> 0)
};

// One routed expert: its bytes (gate + up + down) and the expected share of
// its layer's tokens routed to it (from routing statistics; any scale, it is
// normalized per layer). traffic < 0 means unknown: experts of a layer with
// any unknown traffic count as equally popular.
struct ExpertBytes {
  int layer = 0;
  int expert = 0;
  uint64_t bytes = 0;
  double traffic = -1;
};

struct NumaPartition {
  std::vector<int> node_of;          // per input expert (same order): index into the nodes
  std::vector<uint64_t> node_bytes;  // per node: expert bytes assigned
  std::vector<double> node_traffic;  // per node: expected traffic summed over layers (each layer sums to 1)
};

// Assigns every expert to one node. Per layer, experts go (most popular first)
// to the node whose traffic share relative to its weight stays lowest, so the
// experts one token picks are spread over all nodes in proportion to their
// speed; ties go to the node with the least bytes relative to its capacity,
// then the lower index. No node exceeds its capacity. Deterministic: the same
// input gives the same output.
// Errors (invalid_argument / out_of_memory): no nodes, a weight <= 0,
// duplicate (layer, expert), or experts that do not fit, saying by how much.
Result<NumaPartition> partition_experts(std::span<const NumaNodeBudget> nodes, std::span<const ExpertBytes> experts);

// The nodes of a topology: capacity = the node's memory less `reserve_fraction`
// of it (for the OS, activations, KV cache), weight = its cores.
std::vector<NumaNodeBudget> numa_budgets(const Topology& topology, double reserve_fraction = 0.1);

}  // namespace strata
