// A machine's layout as hwloc sees it: packages, NUMA nodes with their memory,
// cores and their hardware threads, caches and PCI devices; for this machine
// (where threads and memory can also be bound) or from a hwloc XML file or
// synthetic description of another one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/base/status.h"

namespace strata {

struct TopoCore {
  int index = 0;         // position in Topology::cores(), 0..n-1 in hwloc's logical order
  int package = 0;       // logical index of its package
  int numa = 0;          // index into Topology::numa_nodes() of the node it is local to
  std::vector<int> pus;  // OS indices of its hardware threads (what cpu sets and /proc use)
};

struct TopoNuma {
  int index = 0;          // position in Topology::numa_nodes()
  int os_index = 0;       // the kernel's node number (mbind, /sys/devices/system/node/nodeN)
  int package = 0;        // logical index of the package it belongs to
  uint64_t memory_bytes = 0;
  std::vector<int> cores;  // TopoCore indices local to this node
};

struct TopoCache {
  int level = 0;      // 1, 2, 3 (data/unified caches only)
  uint64_t bytes = 0;  // size of one cache
  int count = 0;      // how many caches of this level and size the machine has
};

struct TopoPci {
  std::string name;       // hwloc's device name when it knows it, else "pci VVVV:DDDD"
  uint16_t vendor_id = 0, device_id = 0;
  int numa = 0;           // index into numa_nodes() of the node closest to the device
  double link_gbps = 0;   // hwloc's link speed in GB/s (0: unknown)
  std::string bus_id;     // "0000:41:00.0"
};

struct TopologyState;  // the hwloc topology and the tables above

// Copies share one hwloc topology (read-only after load), so a Topology is
// cheap to pass by value and safe to use from several threads.
class Topology {
 public:
  // Detects this machine with hwloc (including PCI devices when hwloc's I/O
  // discovery is available).
  static Result<Topology> this_machine();
  // Loads a hwloc XML export (lstopo --of xml); errors name the file.
  static Result<Topology> from_xml(const std::string& path);
  // Builds a hwloc synthetic topology, e.g. "pack:2 numa:1 core:8 pu:2" or
  // with memory "pack:2 [numa(memory=412316860416)] core:32 pu:2".
  static Result<Topology> synthetic(const std::string& desc);

  int n_packages() const;
  const std::vector<TopoNuma>& numa_nodes() const;
  const std::vector<TopoCore>& cores() const;
  int n_pus() const;
  const std::vector<TopoCache>& caches() const;
  const std::vector<TopoPci>& pci_devices() const;
  uint64_t memory_bytes() const;  // sum over NUMA nodes

  // True when loaded from this machine; the binding calls below need it and
  // return kUnsupported (or fall back, for alloc) otherwise.
  bool is_this_system() const;

  // Binds the calling thread to the core's first hardware thread.
  Status bind_this_thread_to_core(int core) const;
  // Binds (and migrates) the pages of [p, p+bytes) to NUMA node `numa`
  // (index into numa_nodes()). The range is widened to whole pages.
  Status bind_memory_to_node(void* p, size_t bytes, int numa) const;
  // Allocates `bytes` on node `numa` (page-aligned). Falls back to a plain
  // page-aligned allocation when binding is unsupported (one node, not this
  // system, no NUMA support in the kernel). Returns nullptr only when out of
  // memory. Free with free_on_node with the same size.
  void* alloc_on_node(size_t bytes, int numa) const;
  void free_on_node(void* p, size_t bytes) const;

 private:
  std::shared_ptr<const TopologyState> s_;
};

}  // namespace strata
