// Greedy per-layer partition of routed experts over NUMA nodes: decode reads
// each token's chosen experts from every node at once only if every layer's
// popular experts are spread in proportion to the nodes' speed.
#include "offload/numa_partition.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "offload/topology.h"
#include "runtime/base/bytes.h"

namespace strata {
Result<NumaPartition> partition_experts(std::span<const NumaNodeBudget> nodes, std::span<const ExpertBytes> experts) {
  if (nodes.empty()) return invalid_argument("NUMA partition: expected at least one node, got none");
  uint64_t capacity = 0, need = 0;
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (!(nodes[n].weight > 0)) {
      return invalid_argument("NUMA partition: node " + std::to_string(n) + ": expected a weight > 0, got " +
                              std::to_string(nodes[n].weight));
    }
    capacity += nodes[n].capacity_bytes;
  }
  // Experts by layer (layers ascending), checking for duplicates.
  std::map<int, std::vector<size_t>> by_layer;
  std::set<std::pair<int, int>> seen;
  for (size_t i = 0; i < experts.size(); ++i) {
    if (!seen.insert({experts[i].layer, experts[i].expert}).second) {
      return invalid_argument("NUMA partition: layer " + std::to_string(experts[i].layer) + " expert " +
                              std::to_string(experts[i].expert) + " listed twice");
    }
    by_layer[experts[i].layer].push_back(i);
    need += experts[i].bytes;
  }
  if (need > capacity) {
    return out_of_memory("NUMA partition: the experts need " + format_bytes(need) + " but the " + std::to_string(nodes.size()) +
                         " node(s) hold " + format_bytes(capacity) + ": " + format_bytes(need - capacity) + " (" +
                         std::to_string(need - capacity) + " bytes) short");
  }

  NumaPartition p;
  p.node_of.assign(experts.size(), -1);
  p.node_bytes.assign(nodes.size(), 0);
  p.node_traffic.assign(nodes.size(), 0.0);
  std::vector<double> layer_load(nodes.size());
  for (auto& [layer, idx] : by_layer) {
    bool known = true;
    double sum = 0;
    for (size_t i : idx) {
      known = known && experts[i].traffic >= 0;
      sum += std::max(0.0, experts[i].traffic);
    }
    if (!(sum > 0)) known = false;
    auto share = [&](size_t i) { return known ? experts[i].traffic / sum : 1.0 / double(idx.size()); };
    // Most popular first (then larger, then lower id): the classic greedy
    // for balancing, and a fixed order for determinism.
    std::vector<size_t> order = idx;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const double ta = share(a), tb = share(b);
      if (ta != tb) return ta > tb;
      if (experts[a].bytes != experts[b].bytes) return experts[a].bytes > experts[b].bytes;
      return experts[a].expert < experts[b].expert;
    });
    std::fill(layer_load.begin(), layer_load.end(), 0.0);
    for (size_t i : order) {
      const double t = share(i);
      const uint64_t b = experts[i].bytes;
      int best = -1;
      double best_load = 0, best_fill = 0;
      uint64_t most_free = 0;
      for (size_t n = 0; n < nodes.size(); ++n) {
        const uint64_t free = nodes[n].capacity_bytes - p.node_bytes[n];
        most_free = std::max(most_free, free);
        if (b > free) continue;
        const double load = (layer_load[n] + t) / nodes[n].weight;
        const double fill = nodes[n].capacity_bytes ? double(p.node_bytes[n] + b) / double(nodes[n].capacity_bytes) : 0.0;
        if (best < 0 || load < best_load || (load == best_load && fill < best_fill)) {
          best = int(n);
          best_load = load;
          best_fill = fill;
        }
      }
      if (best < 0) {
        return out_of_memory("NUMA partition: layer " + std::to_string(layer) + " expert " +
                             std::to_string(experts[i].expert) + " (" + std::to_string(b) +
                             " bytes) fits on no node: the emptiest has " + std::to_string(most_free) + " bytes free, " +
                             std::to_string(b - most_free) + " bytes short");
      }
      p.node_of[i] = best;
      p.node_bytes[size_t(best)] += b;
      p.node_traffic[size_t(best)] += t;
      layer_load[size_t(best)] += t;
    }
  }
  return p;
}

std::vector<NumaNodeBudget> numa_budgets(const Topology& topology, double reserve_fraction) {
  std::vector<NumaNodeBudget> v;
  reserve_fraction = std::clamp(reserve_fraction, 0.0, 1.0);
  for (const TopoNuma& n : topology.numa_nodes()) {
    NumaNodeBudget b;
    b.capacity_bytes = uint64_t(double(n.memory_bytes) * (1.0 - reserve_fraction));
    b.weight = std::max<double>(1.0, double(n.cores.size()));
    v.push_back(b);
  }
  return v;
}

}  // namespace strata
