// hardware_detect: /proc/cpuinfo (or cpu_isa.h's detection), hwloc topology,
// CUDA device enumeration and sysfs (PCIe links, block devices) combined into
// one profile with every rate unknown or nominal.
#include "offload/hardware_detect.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "offload/parts_catalog.h"

#ifdef STRATA_HAVE_CPU_ISA
#include "cpu_kernels/cpu_isa.h"
#endif
#ifdef STRATA_HAVE_CUDA
#include "gpu_kernels/device_info.cuh"
#endif

namespace strata {
namespace {

namespace fs = std::filesystem;

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// First line of a small sysfs file, trimmed; "" when unreadable.
std::string read_line(const fs::path& p) {
  std::ifstream f(p);
  std::string line;
  if (!f || !std::getline(f, line)) return "";
  return trim(line);
}

struct CpuInfo {
  std::string model;
  std::set<std::string> flags;
};

// The first processor's "model name" and "flags".
CpuInfo read_cpuinfo(const std::string& path) {
  CpuInfo info;
  std::ifstream f(path);
  std::string line;
  bool have_flags = false;
  while (std::getline(f, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    const std::string value = trim(line.substr(colon + 1));
    if (key == "model name" && info.model.empty()) info.model = value;
    if (key == "flags" && !have_flags) {
      std::istringstream ss(value);
      std::string flag;
      while (ss >> flag) info.flags.insert(flag);
      have_flags = true;
    }
    if (!info.model.empty() && have_flags) break;
  }
  return info;
}

// "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz" -> 2.0
double ghz_from_model(const std::string& model) {
  const size_t at = model.find('@');
  if (at == std::string::npos) return 0;
  double v = 0;
  if (std::sscanf(model.c_str() + at + 1, " %lfGHz", &v) == 1) return v;
  return 0;
}

void detect_isa(CpuSpec& cpu, const CpuInfo& info, const DetectOptions& o) {
  const auto has = [&](const char* f) { return info.flags.count(f) > 0; };
  cpu.avx2 = has("avx2") && has("fma");
  cpu.avx512 = has("avx512f") && has("avx512bw") && has("avx512vl");
  cpu.avx512_vnni = cpu.avx512 && has("avx512_vnni");
  cpu.avx512_bf16 = cpu.avx512 && has("avx512_bf16");
  cpu.amx = has("amx_tile") && (has("amx_int8") || has("amx_bf16"));
#ifdef STRATA_HAVE_CPU_ISA
  // cpuid + xgetbv (+ the AMX permission) says what can really run here; the
  // flags above are only what the kernel lists.
  if (o.cpuinfo_path == "/proc/cpuinfo") {
    const CpuFeatures f = detect_cpu_features();
    cpu.avx2 = f.avx2_fma;
    cpu.avx512 = f.avx512;
    cpu.avx512_vnni = f.avx512_vnni;
    cpu.avx512_bf16 = f.avx512_bf16;
    cpu.amx = f.amx_int8 || f.amx_bf16;
  }
#else
  (void)o;
#endif
}

// PCIe link of a PCI device directory (current_link_speed / current_link_width).
void read_link(const fs::path& dev, int& gen, int& width) {
  gen = pcie_gen_from_link_speed(read_line(dev / "current_link_speed"));
  const std::string w = read_line(dev / "current_link_width");
  width = w.empty() ? 0 : std::atoi(w.c_str());
}

// Profile NUMA index of the node the kernel numbers `os_node` (-1: unknown -> 0).
[[maybe_unused]] int numa_index_of(const Topology& t, int os_node) {
  for (const TopoNuma& n : t.numa_nodes())
    if (n.os_index == os_node) return n.index;
  return 0;
}

bool skip_block_device(const std::string& name) {
  for (const char* prefix : {"loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd", "zd"})
    if (name.rfind(prefix, 0) == 0) return true;
  return false;
}

// Catalog drive whose name appears in the drive's model string
// ("Samsung SSD 990 PRO 2TB" contains "990pro"), else the generic entry of its PCIe generation.
const NvmePart* nvme_part_for(const std::string& model, int gen) {
  const std::string key = catalog_key(model);
  for (const NvmePart& p : nvme_parts()) {
    if (std::string(p.name).rfind("PCIe ", 0) == 0) continue;
    std::vector<std::string> keys{catalog_key(p.name)};
    std::string aliases = p.aliases;
    size_t start = 0;
    while (start < aliases.size()) {
      size_t bar = aliases.find('|', start);
      if (bar == std::string::npos) bar = aliases.size();
      keys.push_back(catalog_key(aliases.substr(start, bar - start)));
      start = bar + 1;
    }
    for (const std::string& k : keys)
      if (k.size() >= 4 && key.find(k) != std::string::npos) return &p;
  }
  return generic_nvme(gen);
}

void detect_storage(HardwareProfile& p, const DetectOptions& o) {
  const fs::path block = fs::path(o.sysfs_root) / "block";
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(block, ec)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (skip_block_device(name)) continue;
    const fs::path dir = block / name;
    StorageSpec s;
    s.path = "/dev/" + name;
    const std::string model = read_line(dir / "device" / "model");
    s.name = model.empty() ? s.path : model + " (" + s.path + ")";
    const std::string sectors = read_line(dir / "size");
    s.capacity_bytes = sectors.empty() ? 0 : std::stoull(sectors) * 512;  // sysfs counts 512-byte sectors
    s.rotational = read_line(dir / "queue" / "rotational") == "1";
    if (s.capacity_bytes == 0) continue;  // empty card readers, unattached virtual disks
    if (name.rfind("nvme", 0) == 0) {
      // block/nvme0n1/device is the controller; its device link is the PCI function.
      read_link(dir / "device" / "device", s.pcie_gen, s.pcie_width);
      if (const NvmePart* part = nvme_part_for(model, s.pcie_gen)) fill_nominal_nvme(s, *part);
    }
    p.storage.push_back(std::move(s));
  }
}

void detect_gpus(HardwareProfile& p, const Topology& topo, const DetectOptions& o) {
  const fs::path pci = fs::path(o.sysfs_root) / "bus" / "pci" / "devices";
#ifdef STRATA_HAVE_CUDA
  if (o.cuda) {
    const gpu::CudaDevices devs = gpu::cuda_devices();
    if (devs.devices.empty() && !devs.reason.empty()) p.assumptions.push_back("no CUDA device: " + devs.reason);
    for (const gpu::CudaDeviceInfo& d : devs.devices) {
      GpuSpec g;
      g.name = d.name;
      g.vram_bytes = d.total_bytes;
      g.sms = d.sm_count;
      char bus[32];
      std::snprintf(bus, sizeof bus, "%04x:%02x:%02x.0", d.pci_domain, d.pci_bus, d.pci_device);
      read_link(pci / bus, g.pcie_gen, g.pcie_width);
      const std::string node = read_line(pci / bus / "numa_node");
      g.numa = numa_index_of(topo, node.empty() ? -1 : std::atoi(node.c_str()));
      auto part = find_gpu(d.name);
      if (part.is_ok()) {
        fill_nominal_gpu(g, **part);
      } else {
        fill_nominal_h2d(g);
        p.assumptions.push_back(d.name + " is not in the parts catalog: its memory bandwidth and TFLOPS are unknown");
      }
      p.gpus.push_back(std::move(g));
    }
    return;
  }
#endif
  // Without CUDA, say so when an NVIDIA display/3D controller is present.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(pci, ec)) {
    if (read_line(e.path() / "vendor") != "0x10de") continue;
    if (read_line(e.path() / "class").rfind("0x03", 0) != 0) continue;
    p.assumptions.push_back("NVIDIA GPU at " + e.path().filename().string() +
                            " not used: this build has no CUDA support (or CUDA enumeration was off)");
  }
}

}  // namespace

int pcie_gen_from_link_speed(const std::string& speed) {
  const double gts = std::atof(speed.c_str());
  if (gts >= 60) return 6;
  if (gts >= 30) return 5;
  if (gts >= 15) return 4;
  if (gts >= 7.5) return 3;
  if (gts >= 4.5) return 2;
  if (gts >= 2) return 1;
  return 0;
}

Result<HardwareProfile> detect_hardware(const DetectOptions& o) {
  Topology owned;
  const Topology* topo = o.topology;
  if (!topo) {
    STRATA_ASSIGN_OR_RETURN(owned, Topology::this_machine());
    topo = &owned;
  }
  HardwareProfile p;
  char host[256] = {};
  p.name = gethostname(host, sizeof host - 1) == 0 && host[0] ? std::string("this machine (") + host + ")"
                                                            : "this machine";

  const CpuInfo info = read_cpuinfo(o.cpuinfo_path);
  CpuSpec& cpu = p.cpu;
  cpu.model = info.model.empty() ? "unknown CPU" : info.model;
  cpu.sockets = topo->n_packages();
  cpu.cores_per_socket = static_cast<int>(topo->cores().size()) / std::max(1, cpu.sockets);
  cpu.threads_per_core = std::max(1, topo->n_pus() / std::max<int>(1, static_cast<int>(topo->cores().size())));
  detect_isa(cpu, info, o);
  const std::string base_khz = read_line(fs::path(o.sysfs_root) / "devices/system/cpu/cpu0/cpufreq/base_frequency");
  cpu.base_ghz = !base_khz.empty() ? std::atof(base_khz.c_str()) / 1e6 : ghz_from_model(info.model);
  int llc_level = 0;
  for (const TopoCache& c : topo->caches())
    if (c.level > llc_level) llc_level = c.level, cpu.l3_bytes = 0;
  for (const TopoCache& c : topo->caches())
    if (c.level == llc_level) cpu.l3_bytes += c.bytes * static_cast<uint64_t>(c.count);

  const CpuPart* part = match_cpu_model_string(info.model);
  if (part) {
    p.memory.channels_max_per_socket = part->memory_channels;
    if (cpu.base_ghz == 0) cpu.base_ghz = part->base_ghz;
    p.assumptions.push_back(std::string("CPU matches catalog ") + part->name + ": " +
                            std::to_string(part->memory_channels) + " memory channels per socket");
  }
  p.memory.bytes = topo->memory_bytes();
  p.assumptions.push_back(
      "memory type and populated channels are not visible to strata without SMBIOS; DRAM bandwidth comes from "
      "calibration");

  for (const TopoNuma& t : topo->numa_nodes()) {
    NumaSpec n;
    n.index = t.index;
    n.package = t.package;
    n.dram_bytes = t.memory_bytes;
    n.cores = static_cast<int>(t.cores.size());
    p.numa.push_back(n);
  }
  if (p.numa.empty()) return internal_error("topology has no NUMA node");

  detect_gpus(p, *topo, o);
  detect_storage(p, o);
  return p;
}

}  // namespace strata
