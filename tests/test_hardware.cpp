// Hardware profiles: the parts catalog (arithmetic, sanity of every entry,
// tolerant lookup), hardware files (every example machine in
// tests/fixtures/hardware and every bad file in bad/ with its exact error),
// the profile JSON round trip and cache, detection from a fake sysfs tree and
// from this machine, and one quick real calibration run (< 3 s).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/qgemm_packed.h"
#include "cpu_kernels/quant_ref.h"
#include "offload/calibrate.h"
#include "offload/hardware_detect.h"
#include "offload/hardware_file.h"
#include "offload/parts_catalog.h"
#include "offload/topology.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kGiB = 1ull << 30;

const fs::path kHw = fs::path(STRATA_TEST_FIXTURES) / "hardware";
const fs::path kTopo = fs::path(STRATA_TEST_FIXTURES) / "topology";

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("strata_test_hw_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// ---- parts catalog --------------------------------------------------------------

TEST(PartsCatalog, MemoryArithmetic) {
  auto d = find_memory("DDR5-4800");
  ASSERT_TRUE(d.is_ok());
  EXPECT_DOUBLE_EQ((*d)->channel_gbps(), 38.4);
  EXPECT_NEAR(12 * (*d)->channel_gbps(), 460.8, 1e-9);  // a full Genoa socket
  EXPECT_DOUBLE_EQ((*find_memory("DDR4-3200"))->channel_gbps(), 25.6);
  EXPECT_DOUBLE_EQ((*find_memory("DDR5-5600"))->channel_gbps(), 44.8);
  EXPECT_DOUBLE_EQ((*find_memory("DDR5-6000"))->channel_gbps(), 48.0);
  EXPECT_DOUBLE_EQ((*find_memory("DDR5-6400"))->channel_gbps(), 51.2);
  EXPECT_DOUBLE_EQ(pcie_x16_gbps(4), 31.5);
  EXPECT_DOUBLE_EQ(pcie_x16_gbps(5), 63.0);
  EXPECT_EQ(pcie_x16_gbps(2), 0);
}

TEST(PartsCatalog, EveryEntryIsSane) {
  std::set<std::string> keys;
  for (const GpuPart& g : gpu_parts()) {
    SCOPED_TRACE(g.name);
    EXPECT_TRUE(keys.insert(catalog_key(g.name)).second);
    EXPECT_GE(g.vram_gib, 16);
    EXPECT_LE(g.vram_gib, 192);
    EXPECT_GE(g.mem_gbps, 500);
    EXPECT_LE(g.mem_gbps, 8000);
    EXPECT_GE(g.bf16_tflops, 30);
    EXPECT_LE(g.bf16_tflops, 2500);
    EXPECT_TRUE(g.pcie_gen == 4 || g.pcie_gen == 5);
    EXPECT_GT(g.sms, 40);
    EXPECT_GT(g.price_usd, 500);
    EXPECT_GT(std::string(g.source).size(), 20u);
    auto back = find_gpu(g.name);
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(*back, &g);
  }
  for (const CpuPart& c : cpu_parts()) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(keys.insert(catalog_key(c.name)).second);
    EXPECT_GE(c.cores, 8);
    EXPECT_LE(c.cores, 192);
    EXPECT_GE(c.threads, c.cores);
    EXPECT_LE(c.threads, 2 * c.cores);
    EXPECT_GE(c.memory_channels, 2);
    EXPECT_LE(c.memory_channels, 12);
    EXPECT_GE(c.memory_mts_1dpc, 4400);
    EXPECT_LE(c.memory_mts_2dpc, c.memory_mts_1dpc);
    EXPECT_GE(c.max_sockets, 1);
    EXPECT_GT(c.base_ghz, 1.0);
    EXPECT_LT(c.base_ghz, 6.0);
    EXPECT_GT(c.l3_mib, 16u);
    EXPECT_TRUE(c.avx2);
    if (c.amx || c.avx512_vnni || c.avx512_bf16) {
      EXPECT_TRUE(c.avx512);
    }
    EXPECT_EQ(std::string(c.memory_kind), "DDR5");
    EXPECT_GT(c.price_usd, 300);
    EXPECT_GT(std::string(c.source).size(), 20u);
    // Its memory kind exists in the catalog at its top data rate or below.
    bool has_memory = false;
    for (const MemoryPart& m : memory_parts()) has_memory |= std::string(m.kind) == c.memory_kind && m.mts <= c.memory_mts_1dpc;
    EXPECT_TRUE(has_memory);
    auto back = find_cpu(c.name);
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(*back, &c);
  }
  for (const MemoryPart& m : memory_parts()) {
    SCOPED_TRACE(m.name);
    EXPECT_EQ(std::string(m.name), std::string(m.kind) + "-" + std::to_string(m.mts));
    EXPECT_NEAR(m.channel_gbps(), m.mts * 8 / 1000.0, 1e-12);
    EXPECT_GT(std::string(m.source).size(), 20u);
  }
  for (const NvmePart& n : nvme_parts()) {
    SCOPED_TRACE(n.name);
    EXPECT_TRUE(keys.insert(catalog_key(n.name)).second);
    EXPECT_GE(n.pcie_gen, 3);
    EXPECT_LE(n.pcie_gen, 5);
    // No x4 drive reads faster than its link (gen3 3.94, gen4 7.88, gen5 15.75 GB/s).
    EXPECT_LE(n.seq_read_gbps, pcie_x16_gbps(n.pcie_gen) / 4);
    EXPECT_GT(n.seq_read_gbps, pcie_x16_gbps(n.pcie_gen) / 8);
    EXPECT_LE(n.rand_read_gbps, n.seq_read_gbps);
    EXPECT_GT(std::string(n.source).size(), 20u);
  }
  for (bool server : {true, false}) {
    for (const StreamEfficiency* e : {&stream_efficiency(server), &cross_numa_share(server)}) {
      EXPECT_GT(e->lo, 0.2);
      EXPECT_LE(e->lo, e->value);
      EXPECT_LE(e->value, e->hi);
      EXPECT_LE(e->hi, 1.0);
      EXPECT_GT(std::string(e->source).size(), 20u);
    }
  }
  for (int gen : {3, 4, 5}) ASSERT_NE(generic_nvme(gen), nullptr);
}

TEST(PartsCatalog, LookupIsTolerant) {
  auto name_of = [](auto r) { return r.is_ok() ? std::string((*r)->name) : r.status().message(); };
  EXPECT_EQ(name_of(find_gpu("rtx4090")), "RTX 4090");
  EXPECT_EQ(name_of(find_gpu("RTX 4090")), "RTX 4090");
  EXPECT_EQ(name_of(find_gpu("NVIDIA GeForce RTX 4090")), "RTX 4090");
  EXPECT_EQ(name_of(find_gpu("rtx-4090d")), "RTX 4090 D");
  EXPECT_EQ(name_of(find_gpu("NVIDIA GeForce RTX 4090 D")), "RTX 4090 D");
  EXPECT_EQ(name_of(find_gpu("NVIDIA A100-SXM4-80GB")), "A100 80GB SXM");
  EXPECT_EQ(name_of(find_gpu("NVIDIA A100-PCIE-40GB")), "A100 40GB PCIe");
  EXPECT_EQ(name_of(find_gpu("NVIDIA H100 80GB HBM3")), "H100 SXM");
  EXPECT_EQ(name_of(find_gpu("NVIDIA H100 PCIe")), "H100 PCIe");
  EXPECT_EQ(name_of(find_gpu("NVIDIA RTX 6000 Ada Generation")), "RTX 6000 Ada");
  EXPECT_EQ(name_of(find_cpu("epyc9654")), "EPYC 9654");
  EXPECT_EQ(name_of(find_cpu("AMD EPYC 9654")), "EPYC 9654");
  EXPECT_EQ(name_of(find_cpu("9654")), "EPYC 9654");
  EXPECT_EQ(name_of(find_cpu("Intel Xeon Platinum 8480+")), "Xeon Platinum 8480+");
  EXPECT_EQ(name_of(find_cpu("ryzen 9 9950x")), "Ryzen 9 9950X");
  EXPECT_EQ(name_of(find_cpu("core ultra 9 285k")), "Core Ultra 9 285K");
  EXPECT_EQ(name_of(find_memory("ddr5 4800")), "DDR5-4800");
  EXPECT_EQ(name_of(find_nvme("samsung 990pro")), "Samsung 990 Pro");
  EXPECT_EQ(name_of(find_nvme("gen5")), "PCIe 5.0 NVMe");
}

TEST(PartsCatalog, UnknownNamesListTheClosest) {
  auto g = find_gpu("RTX 4080");
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(g.status().message().rfind("unknown GPU \"RTX 4080\"; closest: RTX 4090", 0), 0u) << g.status().message();
  auto c = find_cpu("EPYC 9655");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("EPYC 9654"), std::string::npos) << c.status().message();
  auto m = find_memory("DDR5-4000");
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("closest: DDR5-4"), std::string::npos) << m.status().message();
  EXPECT_EQ(find_gpu("  ").status().code(), StatusCode::kInvalidArgument);
}

TEST(PartsCatalog, MatchesOsModelStrings) {
  auto name = [](const CpuPart* p) { return p ? std::string(p->name) : std::string("none"); };
  EXPECT_EQ(name(match_cpu_model_string("AMD EPYC 9654 96-Core Processor")), "EPYC 9654");
  EXPECT_EQ(name(match_cpu_model_string("Intel(R) Xeon(R) Platinum 8480+")), "Xeon Platinum 8480+");
  EXPECT_EQ(name(match_cpu_model_string("AMD Ryzen 9 7950X 16-Core Processor")), "Ryzen 9 7950X");
  EXPECT_EQ(name(match_cpu_model_string("13th Gen Intel(R) Core(TM) i9-14900K")), "Core i9-14900K");
  EXPECT_EQ(name(match_cpu_model_string("Intel(R) Xeon(R) Processor")), "none");
}

// ---- hardware files ---------------------------------------------------------------

Result<HardwareProfile> load(const char* name) { return load_hardware((kHw / name).string()); }

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

TEST(HardwareFile, TwoSocketEpyc) {
  auto p = load("2x-epyc-9654-rtx4090.yaml");
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->name, "2x EPYC 9654, 24x 32 GiB DDR5-4800, RTX 4090");
  EXPECT_EQ(p->price_usd, 38000);
  EXPECT_EQ(p->cpu.model, "AMD EPYC 9654");
  EXPECT_EQ(p->cpu.sockets, 2);
  EXPECT_EQ(p->cpu.cores_per_socket, 96);
  EXPECT_EQ(p->cpu.threads_per_core, 2);
  EXPECT_TRUE(p->cpu.avx512 && p->cpu.avx512_bf16);
  EXPECT_FALSE(p->cpu.amx);
  EXPECT_EQ(p->memory.mts, 4800);
  EXPECT_EQ(p->memory.channels_per_socket, 12);
  EXPECT_EQ(p->dram_bytes(), 768 * kGiB);
  ASSERT_EQ(p->numa.size(), 2u);
  for (const NumaSpec& n : p->numa) {
    EXPECT_EQ(n.cores, 96);
    EXPECT_EQ(n.dram_bytes, 384 * kGiB);
    // 12 channels x 38.4 GB/s = 460.8 GB/s theoretical, x 0.70 / 0.78 / 0.85.
    EXPECT_NEAR(n.read_gbps.value, 460.8 * 0.78, 1e-6);
    EXPECT_NEAR(n.read_gbps.lo, 460.8 * 0.70, 1e-6);
    EXPECT_NEAR(n.read_gbps.hi, 460.8 * 0.85, 1e-6);
    EXPECT_TRUE(starts_with(n.read_gbps.source, "nominal: 12 ch x DDR5-4800")) << n.read_gbps.source;
  }
  EXPECT_EQ(p->numa[1].package, 1);
  EXPECT_NEAR(p->cross_numa_gbps.value, 460.8 * 0.78 * 0.5, 1e-6);
  ASSERT_EQ(p->gpus.size(), 1u);
  EXPECT_EQ(p->gpus[0].name, "RTX 4090");
  EXPECT_EQ(p->gpus[0].vram_bytes, 24 * kGiB);
  EXPECT_EQ(p->gpus[0].pcie_gen, 4);
  EXPECT_NEAR(p->gpus[0].mem_gbps.value, 1008 * 0.9, 1e-6);
  EXPECT_NEAR(p->gpus[0].h2d_gbps.value, 31.5 * 0.82, 1e-6);
  EXPECT_TRUE(starts_with(p->gpus[0].h2d_gbps.source, "nominal: PCIe 4.0 x16"));
  ASSERT_EQ(p->storage.size(), 2u);
  EXPECT_EQ(p->storage[1].capacity_bytes, 4000000000000ull);
  EXPECT_NEAR(p->storage[0].seq_read_gbps.hi, 7.45, 1e-9);
}

TEST(HardwareFile, TopologyFromHwlocXml) {
  auto p = load("2x-xeon-6430-topology.yaml");
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->numa.size(), 2u);
  EXPECT_EQ(p->numa[0].cores, 32);
  EXPECT_EQ(p->numa[1].package, 1);
  EXPECT_EQ(p->numa[1].dram_bytes, 384 * kGiB);
  EXPECT_TRUE(p->cpu.amx);
  EXPECT_EQ(p->memory.mts, 4400);
  EXPECT_NEAR(p->numa[0].read_gbps.value, 8 * 35.2 * 0.78, 1e-6);
  ASSERT_EQ(p->gpus.size(), 2u);
  EXPECT_EQ(p->gpus[0].numa, 0);
  EXPECT_EQ(p->gpus[1].numa, 1);
  ASSERT_EQ(p->storage.size(), 1u);
  EXPECT_EQ(p->storage[0].name, "PCIe 4.0 NVMe");
}

TEST(HardwareFile, EpycNps4) {
  auto p = load("epyc-9654-nps4-h100.yaml");
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->numa.size(), 4u);
  for (const NumaSpec& n : p->numa) {
    EXPECT_EQ(n.cores, 24);
    EXPECT_EQ(n.dram_bytes, 96 * kGiB);
    EXPECT_EQ(n.package, 0);
    EXPECT_NEAR(n.read_gbps.value, 3 * 38.4 * 0.78, 1e-6);  // 12 channels over 4 nodes
  }
  // Remote nodes of the same socket: 75-95 % of local.
  EXPECT_NEAR(p->cross_numa_gbps.value, 3 * 38.4 * 0.78 * 0.85, 1e-6);
  ASSERT_EQ(p->gpus.size(), 1u);
  EXPECT_EQ(p->gpus[0].name, "H100 PCIe");
  EXPECT_NEAR(p->gpus[0].h2d_gbps.value, 63.0 * 0.82, 1e-6);
  ASSERT_EQ(p->storage.size(), 1u);
  EXPECT_EQ(p->storage[0].capacity_bytes, 7680000000000ull);
}

TEST(HardwareFile, DesktopTwoDimmsPerChannelSlowsMemory) {
  auto p = load("desktop-9950x-5090.yaml");
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->memory.mts, 3600);  // AM5 with 2 DIMMs per channel
  EXPECT_EQ(p->memory.dimms_per_channel, 2);
  ASSERT_EQ(p->numa.size(), 1u);
  EXPECT_EQ(p->numa[0].cores, 16);
  EXPECT_NEAR(p->numa[0].read_gbps.value, 2 * 28.8 * 0.70, 1e-6);  // client efficiency
  bool said = false;
  for (const std::string& a : p->assumptions) said |= a.find("DDR5-6000 runs at 3600 MT/s") != std::string::npos;
  EXPECT_TRUE(said);
  EXPECT_FALSE(p->cross_numa_gbps.known());
  ASSERT_EQ(p->gpus.size(), 1u);
  EXPECT_EQ(p->gpus[0].vram_bytes, 32 * kGiB);
  EXPECT_EQ(p->gpus[0].pcie_gen, 5);
}

TEST(HardwareFile, JsonWithOverrides) {
  auto p = load("workstation-7995wx.json");
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->cpu.cores_per_socket, 96);
  ASSERT_EQ(p->numa.size(), 1u);
  EXPECT_EQ(p->numa[0].read_gbps.value, 250);
  EXPECT_EQ(p->numa[0].read_gbps.lo, 230);
  EXPECT_EQ(p->numa[0].read_gbps.hi, 265);
  EXPECT_EQ(p->numa[0].read_gbps.source, "STREAM run by the vendor on this configuration");
  ASSERT_EQ(p->gpus.size(), 2u);
  for (const GpuSpec& g : p->gpus) {
    EXPECT_EQ(g.h2d_gbps.value, 24.5);
    EXPECT_TRUE(starts_with(g.h2d_gbps.source, "override in "));
  }
  ASSERT_EQ(p->cpu_kernels.size(), 1u);
  EXPECT_EQ(p->cpu_kernels[0].type, DType::kQ4_K);
  EXPECT_EQ(p->cpu_kernels[0].decode_gbps.value, 180);
  EXPECT_EQ(p->cpu_kernels[0].prefill_gops.value, 4000);
  EXPECT_EQ(p->storage.size(), 4u);
}

TEST(HardwareFile, ExplicitCpuAndCustomParts) {
  auto p = load("custom-cpu.yaml");
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->cpu.model, "Example 64-core");
  EXPECT_TRUE(p->cpu.avx512_vnni);
  EXPECT_FALSE(p->cpu.amx);
  EXPECT_EQ(p->cpu.l3_bytes, 256ull << 20);
  EXPECT_EQ(p->memory.mts, 5600);  // memory_max_mts caps DDR5-6400
  ASSERT_EQ(p->numa.size(), 2u);
  EXPECT_EQ(p->numa[0].cores, 32);
  EXPECT_NEAR(p->numa[0].read_gbps.value, 4 * 44.8 * 0.78, 1e-6);
  ASSERT_EQ(p->gpus.size(), 1u);
  EXPECT_EQ(p->gpus[0].vram_bytes, 64 * kGiB);
  EXPECT_EQ(p->gpus[0].mem_gbps.value, 2000);
  EXPECT_EQ(p->gpus[0].bf16_tflops.lo, 250);
  EXPECT_NEAR(p->gpus[0].h2d_gbps.value, 63.0 * 0.82, 1e-6);
  ASSERT_EQ(p->storage.size(), 1u);
  EXPECT_EQ(p->storage[0].rand_read_gbps.value, 9);
  EXPECT_EQ(p->storage[0].seq_read_gbps.value, 12);
}

// Every bad file and the exact start of its one-line error.
TEST(HardwareFile, BadFilesNameFileFieldAndExpectation) {
  const std::string dir = (kHw / "bad").string() + "/";
  const std::pair<const char*, std::string> cases[] = {
      {"channels-word.yaml", "channels-word.yaml: memory.channels: expected an integer 1..16, got \"twelve\" (line 5)"},
      {"unknown-field.yaml", "unknown-field.yaml: memroy: unknown field (did you mean \"memory\"?); expected one of: "},
      {"unknown-nested-field.yaml", "unknown-nested-field.yaml: memory.chanels: unknown field (did you mean \"channels\"?)"},
      {"unknown-cpu.yaml", "unknown-cpu.yaml: cpu: unknown CPU \"EPYC 9655\"; closest: EPYC 9654"},
      {"too-many-channels.yaml",
       "too-many-channels.yaml: memory.channels: expected at most 12 (channels per socket of AMD EPYC 9654), got \"16\""},
      {"ddr4-on-ddr5.yaml", "ddr4-on-ddr5.yaml: memory.type: expected DDR5 (what EPYC 9654 takes), got \"DDR4-3200\""},
      {"bad-capacity.yaml", "bad-capacity.yaml: memory.capacity: expected a size such as 768GiB, 2TB or a byte count, got \"lots\""},
      {"unknown-gpu.yaml", "unknown-gpu.yaml: gpus[0]: unknown GPU \"RTX 4080\"; closest: RTX 4090"},
      {"gpu-count.yaml", "gpu-count.yaml: gpus[0].count: expected an integer 1..16, got \"0\" (line 5)"},
      {"missing-topology.yaml", "missing-topology.yaml: topology: " + dir + "nope.xml: cannot open hwloc XML file"},
      {"topology-sockets.yaml", "topology-sockets.yaml: topology: ../../topology/2socket.xml has 2 package(s), expected 1 (sockets)"},
      {"too-many-sockets.yaml", "too-many-sockets.yaml: sockets: expected an integer 1..1, got \"2\" (line 2)"},
      {"not-yaml.yaml", "not-yaml.yaml: not valid YAML or JSON: "},
      {"override-count.yaml",
       "override-count.yaml: overrides.numa_read_gbps: expected a list of 2 values (one per item) or one value, got a list"},
      {"dimms.json", "dimms.json: memory.dimms_per_channel: expected an integer 1..2, got \"3\" (line 3)"},
      {"missing-memory.yaml", "missing-memory.yaml: memory: expected a map with type and capacity, got nothing"},
      {"custom-cpu-incomplete.yaml",
       "custom-cpu-incomplete.yaml: cpu.memory_channels: expected a value (required when cpu has no catalog part)"},
  };
  for (const auto& [file, want] : cases) {
    SCOPED_TRACE(file);
    auto p = load_hardware(dir + file);
    ASSERT_FALSE(p.is_ok());
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidFormat);
    // Messages name the file as given; strip the directory for comparison.
    std::string msg = p.status().message();
    ASSERT_TRUE(starts_with(msg, dir.c_str())) << msg;
    msg = msg.substr(dir.size());
    EXPECT_TRUE(starts_with(msg, want.c_str())) << "got:  " << msg << "\nwant: " << want;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
  // Every file in bad/ is covered above.
  size_t n_files = 0;
  for (const auto& e : fs::directory_iterator(kHw / "bad")) n_files += e.is_regular_file();
  EXPECT_EQ(n_files, std::size(cases));
}

TEST(HardwareFile, MissingFileIsNotFound) {
  auto p = load_hardware("/nonexistent/machine.yaml");
  ASSERT_FALSE(p.is_ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(p.status().message(), "/nonexistent/machine.yaml: cannot open hardware file");
}

// ---- profile JSON and the cache ----------------------------------------------------

TEST(ProfileJson, RoundTripsEveryExample) {
  for (const char* f : {"2x-epyc-9654-rtx4090.yaml", "epyc-9654-nps4-h100.yaml", "workstation-7995wx.json",
                        "custom-cpu.yaml"}) {
    SCOPED_TRACE(f);
    auto p = load(f);
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    const std::string j = profile_to_json(*p);
    auto back = profile_from_json(j, "x.json");
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    EXPECT_EQ(profile_to_json(*back), j);
    EXPECT_EQ(back->numa[0].read_gbps.value, p->numa[0].read_gbps.value);
    EXPECT_EQ(back->dram_bytes(), p->dram_bytes());
  }
}

TEST(ProfileJson, RejectsUnknownAndMistypedFields) {
  auto p = load("desktop-9950x-5090.yaml");
  ASSERT_TRUE(p.is_ok());
  std::string j = profile_to_json(*p);
  std::string typo = j;
  typo.replace(typo.find("\"sockets\""), 9, "\"sokets\"");
  auto a = profile_from_json(typo, "cache.json");
  ASSERT_FALSE(a.is_ok());
  EXPECT_TRUE(starts_with(a.status().message(), "cache.json: cpu.sokets: unknown field")) << a.status().message();
  std::string wrong = j;
  wrong.replace(wrong.find("\"dimms_per_channel\": 2"), 22, "\"dimms_per_channel\": \"two\"");
  auto b = profile_from_json(wrong, "cache.json");
  ASSERT_FALSE(b.is_ok());
  EXPECT_TRUE(starts_with(b.status().message(), "cache.json: memory.dimms_per_channel: expected a number"))
      << b.status().message();
}

TEST(ProfileCache, KeyedByFingerprint) {
  TempDir tmp;
  const std::string path = (tmp.path() / "sub" / "profile.json").string();
  auto a = load("2x-epyc-9654-rtx4090.yaml");
  auto b = load("desktop-9950x-5090.yaml");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_NE(machine_fingerprint(*a), machine_fingerprint(*b));
  EXPECT_EQ(load_cached_profile(path, machine_fingerprint(*a)).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_cached_profile(path, *a).is_ok());
  ASSERT_TRUE(store_cached_profile(path, *b).is_ok());
  auto ra = load_cached_profile(path, machine_fingerprint(*a));
  auto rb = load_cached_profile(path, machine_fingerprint(*b));
  ASSERT_TRUE(ra.is_ok()) << ra.status().to_string();
  ASSERT_TRUE(rb.is_ok()) << rb.status().to_string();
  EXPECT_EQ(profile_to_json(*ra), profile_to_json(*a));
  EXPECT_EQ(profile_to_json(*rb), profile_to_json(*b));
  // A changed machine (another GPU) has another fingerprint: not in the cache.
  HardwareProfile c = *a;
  c.gpus.push_back(c.gpus[0]);
  EXPECT_EQ(load_cached_profile(path, machine_fingerprint(c)).status().code(), StatusCode::kNotFound);
  write_file(path, "{not json");
  EXPECT_EQ(load_cached_profile(path, machine_fingerprint(*a)).status().code(), StatusCode::kInvalidFormat);
}

// ---- detection -----------------------------------------------------------------------

TEST(HardwareDetect, LinkSpeeds) {
  EXPECT_EQ(pcie_gen_from_link_speed("2.5 GT/s PCIe"), 1);
  EXPECT_EQ(pcie_gen_from_link_speed("8.0 GT/s PCIe"), 3);
  EXPECT_EQ(pcie_gen_from_link_speed("16.0 GT/s PCIe"), 4);
  EXPECT_EQ(pcie_gen_from_link_speed("32.0 GT/s PCIe"), 5);
  EXPECT_EQ(pcie_gen_from_link_speed("64.0 GT/s PCIe"), 6);
  EXPECT_EQ(pcie_gen_from_link_speed("Unknown"), 0);
}

TEST(HardwareDetect, FakeSysfsAndCpuinfo) {
  TempDir tmp;
  const fs::path sys = tmp.path() / "sys";
  write_file(sys / "block/nvme0n1/size", "3907029168\n");  // 2 TB in 512-byte sectors
  write_file(sys / "block/nvme0n1/queue/rotational", "0\n");
  write_file(sys / "block/nvme0n1/device/model", "Samsung SSD 990 PRO 2TB                 \n");
  write_file(sys / "block/nvme0n1/device/device/current_link_speed", "16.0 GT/s PCIe\n");
  write_file(sys / "block/nvme0n1/device/device/current_link_width", "4\n");
  write_file(sys / "block/nvme1n1/size", "1000000000\n");
  write_file(sys / "block/nvme1n1/queue/rotational", "0\n");
  write_file(sys / "block/nvme1n1/device/model", "Unknown Gen5 Drive\n");
  write_file(sys / "block/nvme1n1/device/device/current_link_speed", "32.0 GT/s PCIe\n");
  write_file(sys / "block/nvme1n1/device/device/current_link_width", "4\n");
  write_file(sys / "block/sda/size", "1000\n");
  write_file(sys / "block/sda/queue/rotational", "1\n");
  write_file(sys / "block/loop0/size", "1000\n");
  const fs::path cpuinfo = tmp.path() / "cpuinfo";
  write_file(cpuinfo,
             "processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
             "flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16\n\n"
             "processor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\nflags\t\t: fpu\n");
  auto topo = Topology::from_xml((kTopo / "2socket.xml").string());
  ASSERT_TRUE(topo.is_ok());
  DetectOptions o;
  o.sysfs_root = sys.string();
  o.cpuinfo_path = cpuinfo.string();
  o.topology = &*topo;
  o.cuda = false;
  auto p = detect_hardware(o);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->cpu.model, "AMD EPYC 9654 96-Core Processor");
  EXPECT_EQ(p->cpu.sockets, 2);
  EXPECT_EQ(p->cpu.cores_per_socket, 32);
  EXPECT_EQ(p->cpu.threads_per_core, 2);
  EXPECT_TRUE(p->cpu.avx2 && p->cpu.avx512 && p->cpu.avx512_vnni && p->cpu.avx512_bf16);
  EXPECT_FALSE(p->cpu.amx);
  EXPECT_EQ(p->cpu.l3_bytes, 2 * (60ull << 20));
  EXPECT_EQ(p->memory.channels_max_per_socket, 12);  // from the catalog match
  EXPECT_EQ(p->cpu.base_ghz, 2.4);
  ASSERT_EQ(p->numa.size(), 2u);
  EXPECT_EQ(p->numa[1].dram_bytes, 384 * kGiB);
  EXPECT_EQ(p->numa[1].cores, 32);
  EXPECT_FALSE(p->numa[0].read_gbps.known());  // unknown until calibrated
  ASSERT_EQ(p->storage.size(), 3u);             // loop0 skipped
  const StorageSpec& n0 = p->storage[0];
  EXPECT_EQ(n0.path, "/dev/nvme0n1");
  EXPECT_EQ(n0.name, "Samsung SSD 990 PRO 2TB (/dev/nvme0n1)");
  EXPECT_EQ(n0.capacity_bytes, 3907029168ull * 512);
  EXPECT_EQ(n0.pcie_gen, 4);
  EXPECT_EQ(n0.pcie_width, 4);
  EXPECT_NEAR(n0.seq_read_gbps.hi, 7.45, 1e-9);
  EXPECT_TRUE(starts_with(n0.seq_read_gbps.source, "nominal: catalog Samsung 990 Pro"));
  const StorageSpec& n1 = p->storage[1];
  EXPECT_EQ(n1.pcie_gen, 5);
  EXPECT_TRUE(starts_with(n1.seq_read_gbps.source, "nominal: catalog PCIe 5.0 NVMe")) << n1.seq_read_gbps.source;
  const StorageSpec& sda = p->storage[2];
  EXPECT_TRUE(sda.rotational);
  EXPECT_EQ(sda.pcie_gen, 0);
  EXPECT_FALSE(sda.seq_read_gbps.known());
}

TEST(HardwareDetect, ThisMachine) {
  auto p = detect_hardware();
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  auto topo = Topology::this_machine();
  ASSERT_TRUE(topo.is_ok());
  EXPECT_EQ(p->numa.size(), topo->numa_nodes().size());
  EXPECT_EQ(p->cpu.sockets * p->cpu.cores_per_socket, static_cast<int>(topo->cores().size()));
  EXPECT_EQ(p->dram_bytes(), topo->memory_bytes());
  // The model string is /proc/cpuinfo's.
  std::ifstream f("/proc/cpuinfo");
  std::string line, model;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  if (!model.empty()) {
    EXPECT_EQ(p->cpu.model, model);
  }
  EXPECT_FALSE(machine_fingerprint(*p).empty());
}

// ---- a real (tiny) calibration -----------------------------------------------------------

TEST(Calibrate, QuickProbesMeasureThisMachine) {
  TempDir tmp;
  auto detected = detect_hardware();
  ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
  CalibrateOptions o;
  o.quick = true;
  o.use_cache = false;
  o.probe_gpu = false;
  o.progress = nullptr;
  // Small buffers keep this under ~3 s on a busy 2-core machine; the default
  // sizes (several times the last-level cache) are for real measurements.
  o.dram_bytes = 96 << 20;
  o.storage_bytes = 16 << 20;
  o.kernel_bytes = 16 << 20;
  o.storage_path = tmp.path().string();
  o.seconds_per_probe = 0.05;
  o.min_runs = 2;
  auto p = calibrate(*detected, o);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  for (const NumaSpec& n : p->numa) {
    const Figure& f = n.read_gbps;
    EXPECT_TRUE(f.known());
    EXPECT_LE(f.lo, f.value);
    EXPECT_LE(f.value, f.hi);
    EXPECT_GT(f.lo, 0.05);   // even a loaded machine streams more than 50 MB/s
    EXPECT_LT(f.hi, 5000);   // nor reads 5 TB/s, even from cache (a clock bug would)
    EXPECT_TRUE(starts_with(f.source, "measured ")) << f.source;
  }
  // When the temporary file's filesystem sits on a block device the kernel
  // lists, the figures land on that detected device, not on a new entry.
  struct stat st {};
  ASSERT_EQ(::stat(tmp.path().c_str(), &st), 0);
  const bool listed_device = fs::exists("/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" +
                                        std::to_string(minor(st.st_dev)));
  EXPECT_EQ(p->storage.size(), detected->storage.size() + (listed_device ? 0 : 1));
  bool storage_measured = false;
  for (const StorageSpec& s : p->storage)
    if (s.seq_read_gbps.known()) {
      storage_measured = true;
      if (listed_device) {
        EXPECT_EQ(s.path.rfind("/dev/", 0), 0u) << s.path;
      }
      EXPECT_TRUE(starts_with(s.seq_read_gbps.source, "measured ")) << s.seq_read_gbps.source;
      EXPECT_NE(s.seq_read_gbps.source.find(tmp.path().string()), std::string::npos);
      EXPECT_TRUE(s.rand_read_gbps.known());
    }
  EXPECT_TRUE(storage_measured);
  // The temporary file is gone.
  EXPECT_TRUE(fs::is_empty(tmp.path()));
  // Kernel rates were measured, or the profile says why not.
  bool kernels_said = false;
  for (const std::string& a : p->assumptions) kernels_said |= a.find("CPU kernel") != std::string::npos;
  for (const KernelRate& k : p->cpu_kernels) {
    EXPECT_TRUE(k.decode_gbps.known());
    EXPECT_TRUE(k.prefill_gops.known());
    EXPECT_TRUE(starts_with(k.decode_gbps.source, "measured ")) << k.decode_gbps.source;
    // Prefill is measured on the kernel a 512-row batch runs on: qgemm (on
    // the file's rows or repacked ones) or oneDNN.
    const std::string& ps = k.prefill_gops.source;
    EXPECT_TRUE(ps.find("(qgemm_rows ") != std::string::npos || ps.find("(qgemm_packed_rows ") != std::string::npos ||
                ps.find("(onednn-") != std::string::npos)
        << ps;
    // Decode is measured on the layout the runtime computes on.
    const bool packs = qgemm_packed_fast(active_cpu_isa(), k.type);
    EXPECT_NE(k.decode_gbps.source.find(packs ? "(qgemm_packed_rows " : "(qgemm_rows "), std::string::npos)
        << k.decode_gbps.source;
  }
  EXPECT_TRUE(!p->cpu_kernels.empty() || kernels_said);
}

// Quick, silent probes of the given kernel types on small weights (no GPU),
// short enough for a busy 2-core machine.
CalibrateOptions quick_kernel_probes(std::vector<DType> types) {
  CalibrateOptions o;
  o.quick = true;
  o.probe_gpu = false;
  o.progress = nullptr;
  o.kernel_types = std::move(types);
  o.kernel_bytes = 16 << 20;
  o.seconds_per_probe = 0.05;
  o.min_runs = 2;
  return o;
}

// A cached kernel rate is kept only when it was measured on the kernel this
// build would time; one from another build (another revision or layout) is
// measured again, and the new figure replaces it in the cache.
TEST(Calibrate, CachedRatesOfOtherKernelsAreMeasuredAgain) {
  TempDir tmp;
  auto detected = detect_hardware();
  ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
  const std::string path = tmp.path().string() + "/profile.json";
  HardwareProfile old = *detected;
  KernelRate stale;
  stale.type = DType::kQ8_0;
  stale.decode_gbps = {1.0, 0.9, 1.1, "measured 2026-01-01 00:00 UTC (qgemm_rows avx2, 1 row x 4096 inputs)"};
  stale.prefill_gops = {2.0, 1.9, 2.1, "measured 2026-01-01 00:00 UTC (qgemm_rows avx2, 512 rows)"};
  old.cpu_kernels = {stale};
  ASSERT_TRUE(store_cached_profile(path, old).is_ok());

  CalibrateOptions o = quick_kernel_probes({DType::kQ8_0});
  o.profile_path = path;
  auto p = this_machine_profile(o);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->cpu_kernels.size(), 1u);
  const KernelRate& k = p->cpu_kernels[0];
  EXPECT_EQ(k.type, DType::kQ8_0);
  EXPECT_EQ(k.decode_gbps.source.find("2026-01-01"), std::string::npos) << k.decode_gbps.source;
  EXPECT_NE(k.decode_gbps.source.find(" r" + std::to_string(kQgemmRevision) + ","), std::string::npos)
      << k.decode_gbps.source;

  // Measured on this build's kernel: the next call keeps it, value and all.
  HardwareProfile cur = *p;
  cur.cpu_kernels[0].decode_gbps.value = 123.0;
  ASSERT_TRUE(store_cached_profile(path, cur).is_ok());
  auto again = this_machine_profile(o);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  ASSERT_EQ(again->cpu_kernels.size(), 1u);
  EXPECT_EQ(again->cpu_kernels[0].decode_gbps.value, 123.0);
}

// IQ4_XS has no quantizer in this build; its rates are measured on random
// blocks all the same, so a plan of an IQ4_XS model assumes nothing.
TEST(Calibrate, TypesWithoutAQuantizerAreMeasured) {
  ASSERT_FALSE(can_quantize(DType::kIQ4_XS));
  auto detected = detect_hardware();
  ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
  CalibrateOptions o = quick_kernel_probes({DType::kIQ4_XS});
  o.use_cache = false;
  o.probe_dram = false;
  o.probe_storage = false;
  auto p = calibrate(*detected, o);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  const auto it = std::find_if(p->cpu_kernels.begin(), p->cpu_kernels.end(),
                               [](const KernelRate& k) { return k.type == DType::kIQ4_XS; });
  ASSERT_NE(it, p->cpu_kernels.end());
  EXPECT_TRUE(starts_with(it->decode_gbps.source, "measured ")) << it->decode_gbps.source;
  EXPECT_GT(it->decode_gbps.value, 0.0);
  EXPECT_GT(it->prefill_gops.value, 0.0);
  for (const std::string& a : p->assumptions) EXPECT_EQ(a.find("iq4_xs"), std::string::npos) << a;
}

TEST(Calibrate, RejectsAProfileOfAnotherMachine) {
  auto other = load("epyc-9654-nps4-h100.yaml");
  ASSERT_TRUE(other.is_ok());
  CalibrateOptions o;
  o.use_cache = false;
  o.progress = nullptr;
  auto topo = Topology::this_machine();
  ASSERT_TRUE(topo.is_ok());
  if (topo->numa_nodes().size() == 4) GTEST_SKIP() << "this machine has 4 nodes too";
  auto p = calibrate(*other, o);
  ASSERT_FALSE(p.is_ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
}

// Full-length probes with progress on stderr: run by hand with
//   test_hardware --gtest_also_run_disabled_tests --gtest_filter='*Full*'
TEST(Calibrate, DISABLED_FullThisMachine) {
  CalibrateOptions o;
  o.use_cache = false;
  auto p = this_machine_profile(o);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  std::printf("%s\n", profile_to_json(*p).c_str());
}

}  // namespace
}  // namespace strata
