// Parts catalog data and name lookup. Figures are the vendors' published
// nominal values (spec sheets, whitepapers, list prices); the efficiency
// factors summarize published measurements. Sources are named per entry.
#include "offload/parts_catalog.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <utility>

namespace strata {
namespace {

// clang-format off
constexpr GpuPart kGpus[] = {
  // name, aliases, VRAM GiB, GB/s, BF16 dense TFLOPS, PCIe gen, SMs, price, source
  {"RTX 3090", "", 24, 936, 71, 4, 82, 1499,
   "NVIDIA Ampere GA102 whitepaper (RTX 3090: BF16 tensor with FP32 accumulate, dense); launch list price"},
  {"RTX 4090", "", 24, 1008, 165.2, 4, 128, 1599,
   "NVIDIA Ada Lovelace architecture whitepaper (RTX 4090, dense FP32-accumulate tensor rate); launch list price"},
  {"RTX 4090 D", "", 24, 1008, 147, 4, 114, 1800,
   "NVIDIA GeForce RTX 4090 D specifications (114 SMs); tensor rate = RTX 4090 scaled by SM count; China list price converted"},
  {"RTX 5090", "", 32, 1792, 209.5, 5, 170, 1999,
   "NVIDIA RTX Blackwell architecture whitepaper (RTX 5090, dense FP32-accumulate tensor rate); launch list price"},
  {"A100 40GB PCIe", "A100-PCIE-40GB|A100 PCIe 40GB", 40, 1555, 312, 4, 108, 10000,
   "NVIDIA A100 Tensor Core GPU datasheet (PCIe 40GB); typical street price"},
  {"A100 40GB SXM", "A100-SXM4-40GB|A100 SXM4 40GB|A100 40GB", 40, 1555, 312, 4, 108, 11000,
   "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB); typical street price"},
  {"A100 80GB PCIe", "A100-PCIE-80GB|A100 PCIe 80GB", 80, 1935, 312, 4, 108, 15000,
   "NVIDIA A100 Tensor Core GPU datasheet (PCIe 80GB); typical street price"},
  {"A100 80GB SXM", "A100-SXM4-80GB|A100 SXM4 80GB|A100 80GB", 80, 2039, 312, 4, 108, 17000,
   "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB); typical street price"},
  {"H100 PCIe", "H100 80GB PCIe|H100-PCIE-80GB", 80, 2000, 756, 5, 114, 25000,
   "NVIDIA H100 Tensor Core GPU datasheet (PCIe; dense = half the with-sparsity figure); typical street price"},
  {"H100 SXM", "H100 80GB HBM3|H100 SXM5|H100-SXM5-80GB|H100", 80, 3350, 989, 5, 132, 30000,
   "NVIDIA H100 Tensor Core GPU datasheet (SXM; dense = half the with-sparsity figure); typical street price"},
  {"H20", "", 96, 4000, 148, 5, 78, 13000,
   "NVIDIA H20 product brief (96 GB HBM3, 4.0 TB/s, 148 TFLOPS BF16 dense); typical street price"},
  {"L20", "", 48, 864, 119.5, 4, 92, 6000,
   "NVIDIA L20 product brief (48 GB GDDR6, 864 GB/s, 119.5 TFLOPS BF16 dense); typical street price"},
  {"L40S", "", 48, 864, 362, 4, 142, 9000,
   "NVIDIA L40S datasheet (362 TFLOPS BF16 dense, 733 with sparsity); typical street price"},
  {"RTX 6000 Ada", "RTX 6000 Ada Generation", 48, 960, 364, 4, 142, 6800,
   "NVIDIA RTX 6000 Ada Generation datasheet (dense BF16 = FP8 sparse figure / 4); list price"},
};

constexpr CpuPart kCpus[] = {
  // name, vendor, cores, threads, base GHz, L3 MiB, memory, channels, MT/s 1DPC, 2DPC, sockets, server,
  // avx2, avx512, vnni, bf16, amx, price, source
  {"EPYC 9124", "AMD", 16, 32, 3.0, 64, "DDR5", 12, 4800, 3600, 2, true, true, true, true, true, false, 1083,
   "AMD EPYC 9004 series specifications (SP5: 12 channels DDR5-4800 1DPC, 3600 2DPC); AMD launch list price"},
  {"EPYC 9354", "AMD", 32, 64, 3.25, 256, "DDR5", 12, 4800, 3600, 2, true, true, true, true, true, false, 3420,
   "AMD EPYC 9004 series specifications; AMD launch list price"},
  {"EPYC 9454", "AMD", 48, 96, 2.75, 256, "DDR5", 12, 4800, 3600, 2, true, true, true, true, true, false, 5225,
   "AMD EPYC 9004 series specifications; AMD launch list price"},
  {"EPYC 9654", "AMD", 96, 192, 2.4, 384, "DDR5", 12, 4800, 3600, 2, true, true, true, true, true, false, 11805,
   "AMD EPYC 9004 series specifications; AMD launch list price"},
  {"EPYC 9135", "AMD", 16, 32, 3.65, 64, "DDR5", 12, 6000, 4400, 2, true, true, true, true, true, false, 1214,
   "AMD EPYC 9005 series specifications (12 channels DDR5-6000 1DPC, 6400 on qualified platforms); AMD list price"},
  {"EPYC 9355", "AMD", 32, 64, 3.55, 256, "DDR5", 12, 6000, 4400, 2, true, true, true, true, true, false, 3694,
   "AMD EPYC 9005 series specifications; AMD list price"},
  {"EPYC 9555", "AMD", 64, 128, 3.2, 256, "DDR5", 12, 6000, 4400, 2, true, true, true, true, true, false, 9826,
   "AMD EPYC 9005 series specifications; AMD list price"},
  {"EPYC 9755", "AMD", 128, 256, 2.7, 512, "DDR5", 12, 6000, 4400, 2, true, true, true, true, true, false, 12984,
   "AMD EPYC 9005 series specifications; AMD list price"},
  {"Xeon Platinum 8480+", "Intel", 56, 112, 2.0, 105, "DDR5", 8, 4800, 4400, 8, true, true, true, true, true, true, 10710,
   "Intel ark: Xeon Platinum 8480+ (4th gen, 8 channels DDR5-4800 1DPC / 4400 2DPC); recommended customer price"},
  {"Xeon Gold 6430", "Intel", 32, 64, 2.1, 60, "DDR5", 8, 4400, 4400, 2, true, true, true, true, true, true, 2128,
   "Intel ark: Xeon Gold 6430 (4th gen, DDR5-4400); recommended customer price"},
  {"Xeon Platinum 8592+", "Intel", 64, 128, 1.9, 320, "DDR5", 8, 5600, 4400, 2, true, true, true, true, true, true, 11600,
   "Intel ark: Xeon Platinum 8592+ (5th gen, 8 channels DDR5-5600 1DPC / 4400 2DPC); recommended customer price"},
  {"Xeon 6980P", "Intel", 128, 256, 2.0, 504, "DDR5", 12, 6400, 5200, 2, true, true, true, true, true, true, 17800,
   "Intel ark: Xeon 6980P (6th gen P-cores, 12 channels DDR5-6400, MRDIMM-8800); recommended customer price"},
  {"Xeon 6767P", "Intel", 64, 128, 2.4, 336, "DDR5", 8, 6400, 5200, 2, true, true, true, true, true, true, 9600,
   "Intel ark: Xeon 6767P (6th gen P-cores, 8 channels DDR5-6400); approximate list price"},
  {"Threadripper 7970X", "AMD", 32, 64, 4.0, 128, "DDR5", 4, 5200, 4400, 1, false, true, true, true, true, false, 2499,
   "AMD Ryzen Threadripper 7970X specifications (TRX50: 4 channels DDR5-5200 RDIMM); launch list price"},
  {"Threadripper PRO 7995WX", "AMD", 96, 192, 2.5, 384, "DDR5", 8, 5200, 4400, 1, true, true, true, true, true, false, 9999,
   "AMD Ryzen Threadripper PRO 7995WX specifications (WRX90: 8 channels DDR5-5200 RDIMM); launch list price"},
  {"Ryzen 9 7950X", "AMD", 16, 32, 4.5, 64, "DDR5", 2, 5200, 3600, 1, false, true, true, true, true, false, 699,
   "AMD Ryzen 9 7950X specifications (AM5: 2 channels DDR5-5200, 2 DIMMs per channel at DDR5-3600); launch list price"},
  {"Ryzen 9 9950X", "AMD", 16, 32, 4.3, 64, "DDR5", 2, 5600, 3600, 1, false, true, true, true, true, false, 649,
   "AMD Ryzen 9 9950X specifications (AM5: 2 channels DDR5-5600, 2 DIMMs per channel at DDR5-3600); launch list price"},
  {"Core i9-14900K", "Intel", 24, 32, 3.2, 36, "DDR5", 2, 5600, 4000, 1, false, true, false, false, false, false, 589,
   "Intel ark: Core i9-14900K (8P+16E, 2 channels DDR5-5600 or DDR4-3200, no AVX-512); recommended customer price"},
  {"Core Ultra 9 285K", "Intel", 24, 24, 3.7, 36, "DDR5", 2, 6400, 4800, 1, false, true, false, false, false, false, 589,
   "Intel ark: Core Ultra 9 285K (8P+16E, 2 channels DDR5-6400, no AVX-512); recommended customer price"},
};

constexpr MemoryPart kMemory[] = {
  {"DDR4-3200", "DDR4", 3200, "JEDEC DDR4 speed bin (JESD79-4): 3200 MT/s x 8 bytes = 25.6 GB/s per channel"},
  {"DDR5-4400", "DDR5", 4400, "JEDEC DDR5 speed bin (JESD79-5): 4400 MT/s x 8 bytes = 35.2 GB/s per channel"},
  {"DDR5-4800", "DDR5", 4800, "JEDEC DDR5 speed bin (JESD79-5): 4800 MT/s x 8 bytes = 38.4 GB/s per channel"},
  {"DDR5-5200", "DDR5", 5200, "JEDEC DDR5 speed bin (JESD79-5): 5200 MT/s x 8 bytes = 41.6 GB/s per channel"},
  {"DDR5-5600", "DDR5", 5600, "JEDEC DDR5 speed bin (JESD79-5): 5600 MT/s x 8 bytes = 44.8 GB/s per channel"},
  {"DDR5-6000", "DDR5", 6000, "JEDEC DDR5 speed bin (JESD79-5): 6000 MT/s x 8 bytes = 48.0 GB/s per channel"},
  {"DDR5-6400", "DDR5", 6400, "JEDEC DDR5 speed bin (JESD79-5): 6400 MT/s x 8 bytes = 51.2 GB/s per channel"},
};

constexpr StreamEfficiency kServerEfficiency = {0.70, 0.78, 0.85,
  "published STREAM results for EPYC 9004/9005 and Xeon 4th-6th gen with every channel populated at "
  "1 DIMM per channel: 70-85 % of theoretical"};
constexpr StreamEfficiency kClientEfficiency = {0.60, 0.70, 0.80,
  "published AIDA64 and STREAM read results for Ryzen 7000/9000 and Core 14th gen / Ultra 200S with "
  "dual-channel DDR5: 60-80 % of theoretical"};
constexpr StreamEfficiency kCrossSocket = {0.35, 0.50, 0.65,
  "published cross-socket STREAM results on 2-socket EPYC 9004 and Xeon 4th gen: remote reads are bound "
  "by the xGMI/UPI links at 35-65 % of local bandwidth"};
constexpr StreamEfficiency kCrossNodeInSocket = {0.75, 0.85, 0.95,
  "published NPS4 / SNC results: a remote node in the same socket reads at 75-95 % of local bandwidth"};

constexpr NvmePart kNvme[] = {
  // name, aliases, PCIe gen, seq GB/s, random 1-8 MiB GB/s, USD per TB, source
  {"PCIe 3.0 NVMe", "gen3|nvme gen3", 3, 3.5, 3.0, 60,
   "typical PCIe 3.0 x4 drive (vendor sequential figures 3.0-3.5 GB/s); large-block random reads ~85 % of sequential"},
  {"PCIe 4.0 NVMe", "gen4|nvme gen4", 4, 7.0, 6.0, 70,
   "typical PCIe 4.0 x4 drive (vendor sequential figures 6.5-7.4 GB/s); large-block random reads ~85 % of sequential"},
  {"PCIe 5.0 NVMe", "gen5|nvme gen5", 5, 14.0, 12.0, 110,
   "typical PCIe 5.0 x4 drive (vendor sequential figures 12-14.9 GB/s); large-block random reads ~85 % of sequential"},
  {"Samsung 990 Pro", "990 Pro", 4, 7.45, 6.3, 90,
   "Samsung 990 PRO data sheet (7,450 MB/s sequential read); random 1-8 MiB reads ~85 % of sequential"},
  {"WD Black SN850X", "SN850X", 4, 7.3, 6.2, 80,
   "WD_BLACK SN850X product brief (7,300 MB/s sequential read); random 1-8 MiB reads ~85 % of sequential"},
  {"Micron 7450 Pro", "7450 Pro|Micron 7450", 4, 6.8, 5.8, 110,
   "Micron 7450 product brief (6,800 MB/s sequential read); random 1-8 MiB reads ~85 % of sequential"},
  {"Samsung 9100 Pro", "9100 Pro", 5, 14.7, 12.5, 130,
   "Samsung 9100 PRO data sheet (14,700 MB/s sequential read); random 1-8 MiB reads ~85 % of sequential"},
  {"Crucial T705", "T705", 5, 14.5, 12.3, 130,
   "Crucial T705 product flyer (14,500 MB/s sequential read); random 1-8 MiB reads ~85 % of sequential"},
  {"Kioxia CM7-R", "CM7-R|CM7", 5, 14.0, 12.0, 150,
   "KIOXIA CM7-R product brief (14,000 MB/s sequential read); random 1-8 MiB reads ~85 % of sequential"},
};
// clang-format on

// Vendor and brand words that carry no identity ("NVIDIA GeForce RTX 4090" is
// the "RTX 4090"), removed from the front of a key, repeatedly.
constexpr const char* kNoiseWords[] = {"nvidia", "geforce", "tesla", "quadro", "amd", "intel", "ryzen", "xeon",
                                       "platinum", "gold", "silver", "core", "processor"};

std::string strip_noise(std::string k) {
  bool again = true;
  while (again) {
    again = false;
    for (const char* w : kNoiseWords) {
      const size_t n = std::strlen(w);
      // A key that is only a noise word ("core") is kept as it is.
      if (k.size() > n && k.compare(0, n, w) == 0) {
        k.erase(0, n);
        again = true;
      }
    }
  }
  return k;
}

// Every key of an entry: its name and each alias.
template <typename Part>
std::vector<std::string> keys_of(const Part& p) {
  std::vector<std::string> keys{catalog_key(p.name)};
  std::string aliases = p.aliases;
  size_t start = 0;
  while (start <= aliases.size() && !aliases.empty()) {
    const size_t bar = aliases.find('|', start);
    const std::string a = aliases.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
    if (!a.empty()) keys.push_back(catalog_key(a));
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  return keys;
}

template <typename Part>
std::vector<std::string> keys_of_simple(const Part& p) {
  return {catalog_key(p.name)};
}

// The model number alone names a CPU too: "9654", "8480+", "7950X".
std::string last_word(const char* name) {
  std::string n = name;
  const size_t sp = n.rfind(' ');
  return sp == std::string::npos ? n : n.substr(sp + 1);
}

std::vector<std::string> cpu_keys(const CpuPart& p) { return {catalog_key(p.name), catalog_key(last_word(p.name))}; }

template <typename Part, typename Keys>
Result<const Part*> find_part(std::span<const Part> parts, const std::string& name, const char* what, Keys keys) {
  const std::string q = catalog_key(name);
  if (q.empty()) return invalid_argument(std::string("expected a ") + what + " name, got \"" + name + "\"");
  for (const Part& p : parts)
    for (const std::string& k : keys(p))
      if (k == q) return &p;
  // Closest names by edit distance of keys; a key that starts with the query
  // ("rtx40" -> RTX 4090, RTX 4090 D) counts as close.
  std::vector<std::pair<size_t, const char*>> scored;
  for (const Part& p : parts) {
    size_t best = SIZE_MAX;
    for (const std::string& k : keys(p)) {
      size_t d = edit_distance(q, k);
      if (k.rfind(q, 0) == 0 || q.rfind(k, 0) == 0) d = std::min(d, size_t{1});
      best = std::min(best, d);
    }
    scored.emplace_back(best, p.name);
  }
  std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string msg = std::string("unknown ") + what + " \"" + name + "\"; closest: ";
  for (size_t i = 0; i < scored.size() && i < 3; ++i) msg += (i ? ", " : "") + std::string(scored[i].second);
  return not_found(msg);
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string catalog_key(const std::string& name) {
  std::string k;
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) k += static_cast<char>(std::tolower(u));
    else if (c == '+') k += '+';
  }
  return strip_noise(k);
}

std::span<const GpuPart> gpu_parts() { return kGpus; }
std::span<const CpuPart> cpu_parts() { return kCpus; }
std::span<const MemoryPart> memory_parts() { return kMemory; }
std::span<const NvmePart> nvme_parts() { return kNvme; }

const StreamEfficiency& stream_efficiency(bool server) { return server ? kServerEfficiency : kClientEfficiency; }
const StreamEfficiency& cross_numa_share(bool across_sockets) {
  return across_sockets ? kCrossSocket : kCrossNodeInSocket;
}

Result<const GpuPart*> find_gpu(const std::string& name) {
  return find_part<GpuPart>(gpu_parts(), name, "GPU", keys_of<GpuPart>);
}
Result<const CpuPart*> find_cpu(const std::string& name) {
  return find_part<CpuPart>(cpu_parts(), name, "CPU", cpu_keys);
}

const CpuPart* match_cpu_model_string(const std::string& model) {
  std::vector<std::string> words;
  std::string w;
  for (char c : model + " ") {
    if (c == ' ' || c == '\t') {
      if (!w.empty()) words.push_back(catalog_key(w));
      w.clear();
    } else {
      w += c;
    }
  }
  for (const CpuPart& p : kCpus) {
    const std::string k = catalog_key(last_word(p.name));
    for (const std::string& word : words)
      if (word == k) return &p;
  }
  return nullptr;
}
Result<const MemoryPart*> find_memory(const std::string& name) {
  return find_part<MemoryPart>(memory_parts(), name, "memory type", keys_of_simple<MemoryPart>);
}
Result<const NvmePart*> find_nvme(const std::string& name) {
  return find_part<NvmePart>(nvme_parts(), name, "NVMe drive", keys_of<NvmePart>);
}

const NvmePart* generic_nvme(int pcie_gen) {
  for (const NvmePart& p : kNvme)
    if (p.pcie_gen == pcie_gen && std::strncmp(p.name, "PCIe ", 5) == 0) return &p;
  return nullptr;
}

double pcie_x16_gbps(int gen) {
  // Per lane: 8 GT/s (gen3), 16, 32, 64 with 128b/130b coding -> 0.985 GB/s, x16.
  switch (gen) {
    case 3: return 15.75;
    case 4: return 31.5;
    case 5: return 63.0;
    case 6: return 121.0;
    default: return 0;
  }
}

namespace {
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
}  // namespace

void fill_nominal_h2d(GpuSpec& g) {
  const int gen = g.pcie_gen;
  const int width = g.pcie_width > 0 ? g.pcie_width : 16;
  const double link = pcie_x16_gbps(gen) * width / 16.0;
  if (link <= 0) return;
  g.h2d_gbps = {link * 0.82, link * 0.75, link * 0.88,
                "nominal: PCIe " + std::to_string(gen) + ".0 x" + std::to_string(width) + " (" + fmt("%.1f", link) +
                    " GB/s) x 75-88 % for pinned copies (published bandwidth tests)"};
}

void fill_nominal_gpu(GpuSpec& g, const GpuPart& part) {
  const std::string cat = std::string("catalog ") + part.name + ": " + part.source;
  g.mem_gbps = {part.mem_gbps * 0.90, part.mem_gbps * 0.80, part.mem_gbps * 0.95,
                "nominal: " + fmt("%.0f", part.mem_gbps) + " GB/s spec x 80-95 % reached by streaming kernels (" + cat +
                    ")"};
  g.bf16_tflops = {part.bf16_tflops * 0.75, part.bf16_tflops * 0.60, part.bf16_tflops,
                   "nominal: " + fmt("%.1f", part.bf16_tflops) + " TFLOPS dense spec x 60-100 % for large GEMMs (" +
                       cat + ")"};
  if (g.pcie_gen == 0) g.pcie_gen = part.pcie_gen;
  fill_nominal_h2d(g);
}

void fill_nominal_nvme(StorageSpec& s, const NvmePart& part) {
  const std::string cat = std::string("catalog ") + part.name + ": " + part.source;
  s.seq_read_gbps = {part.seq_read_gbps * 0.9, part.seq_read_gbps * 0.8, part.seq_read_gbps, "nominal: " + cat};
  s.rand_read_gbps = {part.rand_read_gbps * 0.9, part.rand_read_gbps * 0.7, part.rand_read_gbps, "nominal: " + cat};
}

}  // namespace strata
