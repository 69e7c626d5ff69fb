// Topology: the committed hwloc XML machines (2 sockets, EPYC NPS4, desktop)
// read back with the packages, nodes, cores, memory and caches their
// synthetic descriptions in tests/fixtures/topology/generate.sh say; synthetic
// strings; bad inputs named in errors; this machine checked against what the
// kernel reports (/proc/meminfo, sched_getaffinity, sched_getcpu) and binding.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "offload/topology.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMiB = 1ull << 20;

std::string fixture(const char* name) { return (fs::path(STRATA_TEST_FIXTURES) / "topology" / name).string(); }

// Structural invariants every topology must satisfy, whatever its source.
void check_consistent(const Topology& t) {
  ASSERT_FALSE(t.numa_nodes().empty());
  ASSERT_FALSE(t.cores().empty());
  std::set<int> pus;
  size_t cores_in_nodes = 0;
  for (size_t i = 0; i < t.numa_nodes().size(); ++i) {
    const TopoNuma& n = t.numa_nodes()[i];
    EXPECT_EQ(n.index, static_cast<int>(i));
    EXPECT_GE(n.package, 0);
    EXPECT_LT(n.package, t.n_packages());
    for (int c : n.cores) {
      ASSERT_GE(c, 0);
      ASSERT_LT(c, static_cast<int>(t.cores().size()));
      EXPECT_EQ(t.cores()[static_cast<size_t>(c)].numa, static_cast<int>(i));
    }
    cores_in_nodes += n.cores.size();
  }
  EXPECT_EQ(cores_in_nodes, t.cores().size());
  for (size_t i = 0; i < t.cores().size(); ++i) {
    const TopoCore& c = t.cores()[i];
    EXPECT_EQ(c.index, static_cast<int>(i));
    EXPECT_FALSE(c.pus.empty());
    for (int pu : c.pus) EXPECT_TRUE(pus.insert(pu).second) << "PU " << pu << " in two cores";
  }
  EXPECT_EQ(static_cast<int>(pus.size()), t.n_pus());
}

const TopoCache* find_cache(const Topology& t, int level) {
  for (const TopoCache& c : t.caches())
    if (c.level == level) return &c;
  return nullptr;
}

TEST(Topology, TwoSocketXml) {
  auto t = Topology::from_xml(fixture("2socket.xml"));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  check_consistent(*t);
  EXPECT_FALSE(t->is_this_system());
  EXPECT_EQ(t->n_packages(), 2);
  ASSERT_EQ(t->numa_nodes().size(), 2u);
  EXPECT_EQ(t->cores().size(), 64u);
  EXPECT_EQ(t->n_pus(), 128);
  for (int i = 0; i < 2; ++i) {
    const TopoNuma& n = t->numa_nodes()[static_cast<size_t>(i)];
    EXPECT_EQ(n.package, i);
    EXPECT_EQ(n.os_index, i);
    EXPECT_EQ(n.memory_bytes, 384 * kGiB);
    EXPECT_EQ(n.cores.size(), 32u);
    for (int c : n.cores) EXPECT_EQ(t->cores()[static_cast<size_t>(c)].package, i);
  }
  EXPECT_EQ(t->memory_bytes(), 768 * kGiB);
  // Two hardware threads per core, OS indices consecutive per core.
  EXPECT_EQ(t->cores()[5].pus, (std::vector<int>{10, 11}));
  const TopoCache* l3 = find_cache(*t, 3);
  ASSERT_NE(l3, nullptr);
  EXPECT_EQ(l3->bytes, 60 * kMiB);
  EXPECT_EQ(l3->count, 2);
  const TopoCache* l2 = find_cache(*t, 2);
  ASSERT_NE(l2, nullptr);
  EXPECT_EQ(l2->bytes, 2 * kMiB);
  EXPECT_EQ(l2->count, 64);
}

TEST(Topology, EpycNps4Xml) {
  auto t = Topology::from_xml(fixture("4node.xml"));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  check_consistent(*t);
  EXPECT_EQ(t->n_packages(), 1);
  ASSERT_EQ(t->numa_nodes().size(), 4u);
  EXPECT_EQ(t->cores().size(), 96u);
  for (int i = 0; i < 4; ++i) {
    const TopoNuma& n = t->numa_nodes()[static_cast<size_t>(i)];
    EXPECT_EQ(n.package, 0);
    EXPECT_EQ(n.memory_bytes, 96 * kGiB);
    ASSERT_EQ(n.cores.size(), 24u);
    // Node i holds cores 24i .. 24i+23.
    EXPECT_EQ(n.cores.front(), 24 * i);
    EXPECT_EQ(n.cores.back(), 24 * i + 23);
  }
  EXPECT_EQ(t->memory_bytes(), 384 * kGiB);
  const TopoCache* l3 = find_cache(*t, 3);
  ASSERT_NE(l3, nullptr);
  EXPECT_EQ(l3->bytes, 32 * kMiB);
  EXPECT_EQ(l3->count, 12);
}

TEST(Topology, DesktopXml) {
  auto t = Topology::from_xml(fixture("desktop.xml"));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  check_consistent(*t);
  EXPECT_EQ(t->n_packages(), 1);
  ASSERT_EQ(t->numa_nodes().size(), 1u);
  EXPECT_EQ(t->cores().size(), 16u);
  EXPECT_EQ(t->n_pus(), 32);
  EXPECT_EQ(t->numa_nodes()[0].memory_bytes, 192 * kGiB);
  const TopoCache* l1 = find_cache(*t, 1);
  ASSERT_NE(l1, nullptr);
  EXPECT_EQ(l1->bytes, 48 * 1024u);
  EXPECT_EQ(l1->count, 16);
  EXPECT_TRUE(t->pci_devices().empty());
}

TEST(Topology, Synthetic) {
  auto t = Topology::synthetic("pack:2 numa:1 core:8 pu:2");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  check_consistent(*t);
  EXPECT_EQ(t->n_packages(), 2);
  EXPECT_EQ(t->numa_nodes().size(), 2u);
  EXPECT_EQ(t->cores().size(), 16u);
  EXPECT_EQ(t->n_pus(), 32);
  EXPECT_EQ(t->numa_nodes()[1].cores.front(), 8);
}

TEST(Topology, SyntheticWithoutCoresUsesPus) {
  auto t = Topology::synthetic("pack:1 pu:4");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  check_consistent(*t);
  EXPECT_EQ(t->cores().size(), 4u);
  EXPECT_EQ(t->cores()[3].pus, (std::vector<int>{3}));
}

TEST(Topology, BadSyntheticIsAnError) {
  auto t = Topology::synthetic("pack:two core:banana");
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("pack:two core:banana"), std::string::npos) << t.status().message();
}

TEST(Topology, MissingXmlNamesTheFile) {
  auto t = Topology::from_xml("/nonexistent/strata/machine.xml");
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_NE(t.status().message().find("/nonexistent/strata/machine.xml"), std::string::npos);
}

TEST(Topology, MalformedXmlNamesTheFile) {
  const fs::path p = fs::temp_directory_path() / ("strata_test_topology_bad_" + std::to_string(::getpid()) + ".xml");
  {
    std::ofstream f(p);
    f << "<?xml version=\"1.0\"?>\n<topology version=\"2.0\"><object type=\"Machine\"";  // truncated
  }
  auto t = Topology::from_xml(p.string());
  fs::remove(p);
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find(p.string()), std::string::npos) << t.status().message();
}

TEST(Topology, BindingNeedsThisSystem) {
  auto t = Topology::from_xml(fixture("desktop.xml"));
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->bind_this_thread_to_core(0).code(), StatusCode::kUnsupported);
  std::vector<char> buf(8192);
  EXPECT_EQ(t->bind_memory_to_node(buf.data(), buf.size(), 0).code(), StatusCode::kUnsupported);
  // Allocation still works: a plain page-aligned block.
  void* p = t->alloc_on_node(1 << 20, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
  std::memset(p, 1, 1 << 20);
  t->free_on_node(p, 1 << 20);
}

// Per-node MemTotal from /sys/devices/system/node/node*/meminfo, bytes by
// node number; empty when the kernel exposes no NUMA nodes.
std::map<int, uint64_t> sysfs_node_memory() {
  std::map<int, uint64_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/devices/system/node", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("node", 0) != 0 || name.size() == 4 || name.find_first_not_of("0123456789", 4) != std::string::npos)
      continue;
    std::ifstream f(e.path() / "meminfo");
    std::string line;
    while (std::getline(f, line)) {
      const size_t k = line.find("MemTotal:");
      if (k == std::string::npos) continue;
      out[std::stoi(name.substr(4))] = std::stoull(line.substr(k + 9)) * 1024;
    }
  }
  return out;
}

TEST(Topology, ThisMachineMatchesTheKernel) {
  auto t = Topology::this_machine();
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  check_consistent(*t);
  EXPECT_TRUE(t->is_this_system());
  // Every CPU this process may run on is a PU of some core.
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  std::set<int> pus;
  for (const TopoCore& c : t->cores()) pus.insert(c.pus.begin(), c.pus.end());
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) {
      EXPECT_TRUE(pus.count(cpu)) << "cpu " << cpu << " missing from the topology";
    }
  // Nodes and their memory as the kernel lists them.
  const std::map<int, uint64_t> nodes = sysfs_node_memory();
  if (nodes.empty()) GTEST_SKIP() << "no /sys/devices/system/node";
  ASSERT_EQ(t->numa_nodes().size(), nodes.size());
  for (const TopoNuma& n : t->numa_nodes()) {
    ASSERT_TRUE(nodes.count(n.os_index)) << "node " << n.os_index;
    const double want = static_cast<double>(nodes.at(n.os_index));
    EXPECT_NEAR(static_cast<double>(n.memory_bytes), want, 0.01 * want) << "node " << n.os_index;
  }
}

TEST(Topology, BindsThreadsAndMemoryOnThisMachine) {
  auto t = Topology::this_machine();
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  const int last = static_cast<int>(t->cores().size()) - 1;
  const int pu = t->cores()[static_cast<size_t>(last)].pus.front();
  if (!CPU_ISSET(pu, &allowed)) GTEST_SKIP() << "core " << last << " is outside this process's CPU set";
  Status bind;
  int ran_on = -1;
  std::thread th([&] {
    bind = t->bind_this_thread_to_core(last);
    ran_on = sched_getcpu();
  });
  th.join();
  ASSERT_TRUE(bind.is_ok()) << bind.to_string();
  EXPECT_EQ(ran_on, pu);
  EXPECT_EQ(t->bind_this_thread_to_core(last + 1).code(), StatusCode::kInvalidArgument);

  const size_t bytes = 4 << 20;
  void* p = t->alloc_on_node(bytes, 0);
  ASSERT_NE(p, nullptr);
  std::memset(p, 7, bytes);
  Status st = t->bind_memory_to_node(static_cast<char*>(p) + 100, bytes - 200, 0);
  // Kernels built without NUMA support refuse mbind; that is reported, not hidden.
  EXPECT_TRUE(st.is_ok() || st.code() == StatusCode::kIoError) << st.to_string();
  EXPECT_EQ(static_cast<unsigned char*>(p)[bytes - 1], 7);
  EXPECT_EQ(t->bind_memory_to_node(p, bytes, static_cast<int>(t->numa_nodes().size())).code(),
            StatusCode::kInvalidArgument);
  t->free_on_node(p, bytes);
}

}  // namespace
}  // namespace strata
