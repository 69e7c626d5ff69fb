// Topology: hwloc loading (this machine, XML, synthetic), the flat tables the
// rest of strata reads (packages, NUMA nodes, cores, caches, PCI devices),
// and thread/memory binding on this machine.
#include "offload/topology.h"

#include <hwloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <utility>

namespace strata {

struct TopologyState {
  hwloc_topology_t topo = nullptr;
  bool this_system = false;
  int n_packages = 0;
  int n_pus = 0;
  std::vector<TopoNuma> numa;
  std::vector<TopoCore> cores;
  std::vector<TopoCache> caches;
  std::vector<TopoPci> pci;
  std::vector<hwloc_obj_t> core_objs;  // parallel to cores
  std::vector<hwloc_obj_t> numa_objs;  // parallel to numa

  TopologyState() = default;
  TopologyState(const TopologyState&) = delete;
  TopologyState& operator=(const TopologyState&) = delete;
  ~TopologyState() {
    if (topo) hwloc_topology_destroy(topo);
  }
};

namespace {

// Logical index of the package above `obj`, 0 when the machine has no package level.
int package_of(hwloc_obj_t obj) {
  for (hwloc_obj_t o = obj; o; o = o->parent)
    if (o->type == HWLOC_OBJ_PACKAGE) return static_cast<int>(o->logical_index);
  return 0;
}

// Index of the NUMA node whose cpuset best covers `cpuset` (the first node
// that contains it, else the first that intersects it, else 0).
int numa_covering(const std::vector<hwloc_obj_t>& numa_objs, hwloc_const_cpuset_t cpuset) {
  if (!cpuset) return 0;
  for (size_t i = 0; i < numa_objs.size(); ++i)
    if (numa_objs[i]->cpuset && hwloc_bitmap_isincluded(cpuset, numa_objs[i]->cpuset)) return static_cast<int>(i);
  for (size_t i = 0; i < numa_objs.size(); ++i)
    if (numa_objs[i]->cpuset && hwloc_bitmap_intersects(cpuset, numa_objs[i]->cpuset)) return static_cast<int>(i);
  return 0;
}

std::string pci_bus_id(const hwloc_obj_t o) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%01x", o->attr->pcidev.domain, o->attr->pcidev.bus,
                o->attr->pcidev.dev, o->attr->pcidev.func);
  return buf;
}

// Reads the loaded hwloc topology into the flat tables.
Status build_tables(TopologyState& s) {
  hwloc_topology_t t = s.topo;
  s.n_packages = std::max(0, hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE));
  if (s.n_packages == 0) s.n_packages = 1;  // some virtual machines expose no package level
  s.n_pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
  if (s.n_pus <= 0) return invalid_format("expected at least one PU, got none");

  const int n_numa = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
  if (n_numa <= 0) return invalid_format("expected at least one NUMA node, got none");
  for (int i = 0; i < n_numa; ++i) {
    hwloc_obj_t o = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
    TopoNuma n;
    n.index = i;
    n.os_index = static_cast<int>(o->os_index);
    n.package = package_of(o);
    n.memory_bytes = o->attr ? o->attr->numanode.local_memory : 0;
    s.numa.push_back(std::move(n));
    s.numa_objs.push_back(o);
  }

  // Cores; a machine that reports PUs without cores gets one core per PU.
  hwloc_obj_type_t core_type = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
  const int n_cores = hwloc_get_nbobjs_by_type(t, core_type);
  for (int i = 0; i < n_cores; ++i) {
    hwloc_obj_t o = hwloc_get_obj_by_type(t, core_type, static_cast<unsigned>(i));
    TopoCore c;
    c.index = i;
    c.package = package_of(o);
    c.numa = numa_covering(s.numa_objs, o->cpuset);
    for (hwloc_obj_t pu = hwloc_get_next_obj_inside_cpuset_by_type(t, o->cpuset, HWLOC_OBJ_PU, nullptr); pu;
         pu = hwloc_get_next_obj_inside_cpuset_by_type(t, o->cpuset, HWLOC_OBJ_PU, pu))
      c.pus.push_back(static_cast<int>(pu->os_index));
    if (c.pus.empty()) return invalid_format("expected at least one PU in core L#" + std::to_string(i) + ", got none");
    s.numa[static_cast<size_t>(c.numa)].cores.push_back(i);
    s.cores.push_back(std::move(c));
    s.core_objs.push_back(o);
  }

  // Data and unified caches, grouped by (level, size).
  std::map<std::pair<int, uint64_t>, int> cache_count;
  const hwloc_obj_type_t cache_types[] = {HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE,
                                          HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L5CACHE};
  for (hwloc_obj_type_t ct : cache_types) {
    const int n = hwloc_get_nbobjs_by_type(t, ct);
    for (int i = 0; i < n; ++i) {
      hwloc_obj_t o = hwloc_get_obj_by_type(t, ct, static_cast<unsigned>(i));
      if (!o->attr || o->attr->cache.type == HWLOC_OBJ_CACHE_INSTRUCTION) continue;
      cache_count[{static_cast<int>(o->attr->cache.depth), o->attr->cache.size}]++;
    }
  }
  for (const auto& [key, count] : cache_count) s.caches.push_back(TopoCache{key.first, key.second, count});

  for (hwloc_obj_t o = hwloc_get_next_pcidev(t, nullptr); o; o = hwloc_get_next_pcidev(t, o)) {
    TopoPci p;
    p.vendor_id = o->attr->pcidev.vendor_id;
    p.device_id = o->attr->pcidev.device_id;
    p.link_gbps = o->attr->pcidev.linkspeed;
    p.bus_id = pci_bus_id(o);
    if (o->name) {
      p.name = o->name;
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "pci %04x:%04x", p.vendor_id, p.device_id);
      p.name = buf;
    }
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(t, o);
    p.numa = numa_covering(s.numa_objs, anc ? anc->cpuset : nullptr);
    s.pci.push_back(std::move(p));
  }
  return Status::ok();
}

// init -> configure(topo) -> load -> tables. `what` names the source in errors.
template <typename Configure>
Result<std::shared_ptr<TopologyState>> load(const std::string& what, Configure configure) {
  auto s = std::make_shared<TopologyState>();
  if (hwloc_topology_init(&s->topo) != 0) return internal_error(what + ": hwloc_topology_init failed");
  STRATA_RETURN_IF_ERROR(configure(s->topo));
  if (hwloc_topology_load(s->topo) != 0)
    return invalid_format(what + ": hwloc could not load the topology (" + std::strerror(errno) + ")");
  s->this_system = hwloc_topology_is_thissystem(s->topo) != 0;
  Status st = build_tables(*s);
  if (!st.is_ok()) return Status(st.code(), what + ": " + st.message());
  return s;
}

}  // namespace

Result<Topology> Topology::this_machine() {
  auto r = load("this machine", [](hwloc_topology_t t) {
    // PCI devices that matter (GPUs, NVMe, NICs) with their locality and link speed.
    hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    return Status::ok();
  });
  if (!r.is_ok()) return r.status();
  Topology topo;
  topo.s_ = std::move(r).value();
  return topo;
}

Result<Topology> Topology::from_xml(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return not_found(path + ": cannot open hwloc XML file (" + std::strerror(errno) + ")");
  std::fclose(f);
  auto r = load(path, [&](hwloc_topology_t t) {
    if (hwloc_topology_set_xml(t, path.c_str()) != 0)
      return invalid_format(path + ": not a hwloc XML topology (" + std::strerror(errno) + ")");
    hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    return Status::ok();
  });
  if (!r.is_ok()) return r.status();
  Topology topo;
  topo.s_ = std::move(r).value();
  return topo;
}

Result<Topology> Topology::synthetic(const std::string& desc) {
  const std::string what = "synthetic topology \"" + desc + "\"";
  auto r = load(what, [&](hwloc_topology_t t) {
    if (hwloc_topology_set_synthetic(t, desc.c_str()) != 0)
      return invalid_argument(what + ": expected a hwloc synthetic description like \"pack:2 numa:1 core:8 pu:2\"");
    return Status::ok();
  });
  if (!r.is_ok()) return r.status();
  Topology topo;
  topo.s_ = std::move(r).value();
  return topo;
}

int Topology::n_packages() const { return s_->n_packages; }
const std::vector<TopoNuma>& Topology::numa_nodes() const { return s_->numa; }
const std::vector<TopoCore>& Topology::cores() const { return s_->cores; }
int Topology::n_pus() const { return s_->n_pus; }
const std::vector<TopoCache>& Topology::caches() const { return s_->caches; }
const std::vector<TopoPci>& Topology::pci_devices() const { return s_->pci; }
bool Topology::is_this_system() const { return s_->this_system; }

uint64_t Topology::memory_bytes() const {
  uint64_t b = 0;
  for (const TopoNuma& n : s_->numa) b += n.memory_bytes;
  return b;
}

Status Topology::bind_this_thread_to_core(int core) const {
  if (!s_->this_system) return unsupported("thread binding needs this machine's topology, not a loaded description");
  if (core < 0 || core >= static_cast<int>(s_->cores.size()))
    return invalid_argument("expected a core index 0.." + std::to_string(s_->cores.size() - 1) + ", got " +
                            std::to_string(core));
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  hwloc_bitmap_only(set, static_cast<unsigned>(s_->cores[static_cast<size_t>(core)].pus.front()));
  const int rc = hwloc_set_cpubind(s_->topo, set, HWLOC_CPUBIND_THREAD);
  const int err = errno;
  hwloc_bitmap_free(set);
  if (rc != 0)
    return io_error("binding the thread to core " + std::to_string(core) + " failed (" + std::strerror(err) + ")");
  return Status::ok();
}

Status Topology::bind_memory_to_node(void* p, size_t bytes, int numa) const {
  if (!s_->this_system) return unsupported("memory binding needs this machine's topology, not a loaded description");
  if (numa < 0 || numa >= static_cast<int>(s_->numa.size()))
    return invalid_argument("expected a NUMA node index 0.." + std::to_string(s_->numa.size() - 1) + ", got " +
                            std::to_string(numa));
  if (bytes == 0) return Status::ok();
  // mbind works on whole pages: widen the range to page boundaries.
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes + page - 1) & ~(page - 1);
  const int rc = hwloc_set_area_membind(s_->topo, reinterpret_cast<void*>(begin), end - begin,
                                        s_->numa_objs[static_cast<size_t>(numa)]->nodeset, HWLOC_MEMBIND_BIND,
                                        HWLOC_MEMBIND_MIGRATE | HWLOC_MEMBIND_BYNODESET);
  if (rc != 0)
    return io_error("binding " + std::to_string(bytes) + " bytes to NUMA node " + std::to_string(numa) + " failed (" +
                    std::strerror(errno) + ")");
  return Status::ok();
}

void* Topology::alloc_on_node(size_t bytes, int numa) const {
  if (bytes == 0) bytes = 1;
  // Anonymous pages are page-aligned and not yet faulted in, so binding them
  // before first touch places every page on the node without migration.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (s_->this_system && numa >= 0 && numa < static_cast<int>(s_->numa.size()) && s_->numa.size() > 1) {
    // A failure (kernel without NUMA support) leaves the default policy: the fallback.
    (void)hwloc_set_area_membind(s_->topo, p, bytes, s_->numa_objs[static_cast<size_t>(numa)]->nodeset,
                                 HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_BYNODESET);
  }
  return p;
}

void Topology::free_on_node(void* p, size_t bytes) const {
  if (!p) return;
  munmap(p, bytes == 0 ? 1 : bytes);
}

}  // namespace strata
