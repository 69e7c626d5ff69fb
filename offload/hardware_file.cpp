// Hardware files (YAML/JSON, read with yaml-cpp) -> HardwareProfile, and the
// profile's JSON form. Every field is checked by type and range; errors carry
// file, field path and line; unknown fields are errors so a typo never passes
// silently as a default.
#include "offload/hardware_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>

#include "offload/parts_catalog.h"
#include "offload/topology.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// ---- field readers over yaml-cpp nodes ------------------------------------

struct Ctx {
  std::string file;
};

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "\"" + n.Scalar() + "\"";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "an undefined value";
  }
}

std::string line_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.line >= 0 ? " (line " + std::to_string(m.line + 1) + ")" : "";
}

Status field_error(const Ctx& c, const std::string& path, const YAML::Node& n, const std::string& expected) {
  return invalid_format(c.file + ": " + path + ": expected " + expected + ", got " + describe(n) + line_of(n));
}

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

// `n` must be a map whose keys are all in `allowed`.
Status check_map(const Ctx& c, const YAML::Node& n, const std::string& path, std::initializer_list<const char*> allowed) {
  if (!n.IsMap()) return field_error(c, path.empty() ? "(top level)" : path, n, "a map");
  for (const auto& kv : n) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
    bool ok = false;
    const char* closest = nullptr;
    size_t best = SIZE_MAX;
    std::string list;
    for (const char* a : allowed) {
      if (key == a) ok = true;
      const size_t d = edit_distance(key, a);
      if (d < best) best = d, closest = a;
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    if (ok) continue;
    std::string msg = c.file + ": " + join_path(path, key) + ": unknown field";
    if (closest && best <= 3) msg += " (did you mean \"" + std::string(closest) + "\"?)";
    msg += "; expected one of: " + list + line_of(kv.first);
    return invalid_format(msg);
  }
  return Status::ok();
}

Result<std::string> get_string(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar() || n.Scalar().empty()) return field_error(c, path, n, "a non-empty string");
  return n.Scalar();
}

Result<int64_t> get_int(const Ctx& c, const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi) {
  const std::string expected = "an integer " + std::to_string(lo) + ".." + std::to_string(hi);
  if (!n.IsScalar()) return field_error(c, path, n, expected);
  const std::string& s = n.Scalar();
  int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return field_error(c, path, n, expected);
  return v;
}

Result<double> get_number(const Ctx& c, const YAML::Node& n, const std::string& path, double lo, double hi) {
  std::ostringstream e;
  e << "a number " << lo << ".." << hi;
  if (!n.IsScalar()) return field_error(c, path, n, e.str());
  const std::string& s = n.Scalar();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < lo || v > hi)
    return field_error(c, path, n, e.str());
  return v;
}

Result<bool> get_bool(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (s == "true" || s == "yes") return true;
    if (s == "false" || s == "no") return false;
  }
  return field_error(c, path, n, "true or false");
}

// "768GiB", "768 GiB", "4TB", "1.5TiB" or a plain byte count. Binary suffixes
// are powers of 1024, decimal ones powers of 1000 (DIMMs sold as "64GB" hold 64 GiB).
Result<uint64_t> get_size(const Ctx& c, const YAML::Node& n, const std::string& path) {
  const char* expected = "a size such as 768GiB, 2TB or a byte count";
  if (!n.IsScalar()) return field_error(c, path, n, expected);
  const std::string& s = n.Scalar();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(v) || v <= 0) return field_error(c, path, n, expected);
  std::string unit(end);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char ch) { return std::tolower(ch); });
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},         {"b", 1},          {"kb", 1e3},  {"mb", 1e6},  {"gb", 1e9},  {"tb", 1e12},
      {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
  for (const auto& [name, mul] : kUnits)
    if (unit == name) {
      const double bytes = v * mul;
      if (bytes < 1 || bytes > 1e18) return field_error(c, path, n, expected);
      return static_cast<uint64_t>(std::llround(bytes));
    }
  return field_error(c, path, n, expected);
}

// A rate: a number, or {value, lo, hi, source} with lo <= value <= hi.
Result<Figure> get_figure(const Ctx& c, const YAML::Node& n, const std::string& path, const std::string& default_source) {
  Figure f;
  if (n.IsMap()) {
    STRATA_RETURN_IF_ERROR(check_map(c, n, path, {"value", "lo", "hi", "source"}));
    if (!n["value"]) return field_error(c, join_path(path, "value"), n["value"], "a number > 0");
    STRATA_ASSIGN_OR_RETURN(f.value, get_number(c, n["value"], join_path(path, "value"), 1e-9, 1e12));
    f.lo = f.hi = f.value;
    if (n["lo"]) { STRATA_ASSIGN_OR_RETURN(f.lo, get_number(c, n["lo"], join_path(path, "lo"), 0, f.value)); }
    if (n["hi"]) { STRATA_ASSIGN_OR_RETURN(f.hi, get_number(c, n["hi"], join_path(path, "hi"), f.value, 1e12)); }
    f.source = default_source;
    if (n["source"]) { STRATA_ASSIGN_OR_RETURN(f.source, get_string(c, n["source"], join_path(path, "source"))); }
    return f;
  }
  STRATA_ASSIGN_OR_RETURN(f.value, get_number(c, n, path, 1e-9, 1e12));
  f.lo = f.hi = f.value;
  f.source = default_source;
  return f;
}

Result<YAML::Node> parse_yaml(const std::string& text, const std::string& file) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_format(file + ": not valid YAML or JSON: " + e.msg + " (line " + std::to_string(e.mark.line + 1) +
                          ")");
  }
}

// ---- nominal figures --------------------------------------------------------

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

Figure scaled(double nominal, const StreamEfficiency& e, const std::string& what) {
  Figure f;
  f.value = nominal * e.value;
  f.lo = nominal * e.lo;
  f.hi = nominal * e.hi;
  f.source = "nominal: " + what + " x " + fmt("%.0f", e.lo * 100) + "-" + fmt("%.0f", e.hi * 100) + " % (" +
             e.source + ")";
  return f;
}


struct Built {
  HardwareProfile p;
  const CpuPart* cpu_part = nullptr;
  bool cpu_server = true;
  int numa_per_socket = 1;
  int memory_max_mts = 0;  // cpu.memory_max_mts; 0: the catalog part's limit
  double parts_price = 0;
};

Status read_cpu(const Ctx& c, const YAML::Node& n, Built& b) {
  CpuSpec& cpu = b.p.cpu;
  MemorySpec& mem = b.p.memory;
  auto from_part = [&](const CpuPart& part) {
    b.cpu_part = &part;
    cpu.model = std::string(part.vendor) + " " + part.name;
    cpu.cores_per_socket = part.cores;
    cpu.threads_per_core = std::max(1, part.threads / part.cores);
    cpu.base_ghz = part.base_ghz;
    cpu.avx2 = part.avx2, cpu.avx512 = part.avx512, cpu.avx512_vnni = part.avx512_vnni;
    cpu.avx512_bf16 = part.avx512_bf16, cpu.amx = part.amx;
    cpu.l3_bytes = part.l3_mib << 20;
    mem.channels_max_per_socket = part.memory_channels;
    b.cpu_server = part.server;
  };
  if (n.IsScalar()) {
    auto part = find_cpu(n.Scalar());
    if (!part.is_ok()) return invalid_format(c.file + ": cpu: " + part.status().message() + line_of(n));
    from_part(**part);
    return Status::ok();
  }
  STRATA_RETURN_IF_ERROR(check_map(c, n, "cpu",
                                   {"part", "model", "cores", "threads_per_core", "base_ghz", "isa", "l3",
                                    "memory_channels", "memory_max_mts", "server"}));
  if (n["part"]) {
    auto part = find_cpu(n["part"].Scalar());
    if (!part.is_ok()) return invalid_format(c.file + ": cpu.part: " + part.status().message() + line_of(n["part"]));
    from_part(**part);
  } else {
    for (const char* req : {"model", "cores", "memory_channels"})
      if (!n[req])
        return invalid_format(c.file + ": cpu." + req + ": expected a value (required when cpu has no catalog part)" +
                              line_of(n));
  }
  if (n["model"]) { STRATA_ASSIGN_OR_RETURN(cpu.model, get_string(c, n["model"], "cpu.model")); }
  if (n["cores"]) {
    STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["cores"], "cpu.cores", 1, 1024));
    cpu.cores_per_socket = static_cast<int>(v);
  }
  if (n["threads_per_core"]) {
    STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["threads_per_core"], "cpu.threads_per_core", 1, 8));
    cpu.threads_per_core = static_cast<int>(v);
  }
  if (n["base_ghz"]) { STRATA_ASSIGN_OR_RETURN(cpu.base_ghz, get_number(c, n["base_ghz"], "cpu.base_ghz", 0.1, 10)); }
  if (n["l3"]) { STRATA_ASSIGN_OR_RETURN(cpu.l3_bytes, get_size(c, n["l3"], "cpu.l3")); }
  if (n["memory_channels"]) {
    STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["memory_channels"], "cpu.memory_channels", 1, 16));
    mem.channels_max_per_socket = static_cast<int>(v);
  }
  if (n["server"]) { STRATA_ASSIGN_OR_RETURN(b.cpu_server, get_bool(c, n["server"], "cpu.server")); }
  if (n["memory_max_mts"]) {
    STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["memory_max_mts"], "cpu.memory_max_mts", 1600, 12800));
    b.memory_max_mts = static_cast<int>(v);
  }
  if (n["isa"]) {
    const YAML::Node& isa = n["isa"];
    if (!isa.IsSequence()) return field_error(c, "cpu.isa", isa, "a list of avx2, avx512, avx512_vnni, avx512_bf16, amx");
    cpu.avx2 = cpu.avx512 = cpu.avx512_vnni = cpu.avx512_bf16 = cpu.amx = false;
    for (size_t i = 0; i < isa.size(); ++i) {
      const std::string path = "cpu.isa[" + std::to_string(i) + "]";
      const std::string s = isa[i].IsScalar() ? isa[i].Scalar() : "";
      if (s == "avx2") cpu.avx2 = true;
      else if (s == "avx512") cpu.avx512 = true;
      else if (s == "avx512_vnni") cpu.avx512_vnni = true;
      else if (s == "avx512_bf16") cpu.avx512_bf16 = true;
      else if (s == "amx") cpu.amx = true;
      else return field_error(c, path, isa[i], "one of avx2, avx512, avx512_vnni, avx512_bf16, amx");
    }
  }
  return Status::ok();
}

// The data rate DIMMs of `type` run at on this CPU with `dpc` DIMMs per channel.
int platform_mts(const Built& b, const MemoryPart& type, int dpc) {
  int limit = 0;
  if (b.cpu_part) limit = dpc >= 2 ? b.cpu_part->memory_mts_2dpc : b.cpu_part->memory_mts_1dpc;
  if (b.memory_max_mts > 0) limit = b.memory_max_mts;
  return limit > 0 ? std::min(limit, type.mts) : type.mts;
}

Status read_memory(const Ctx& c, const YAML::Node& n, Built& b) {
  STRATA_RETURN_IF_ERROR(check_map(c, n, "memory", {"type", "channels", "dimms_per_channel", "capacity"}));
  MemorySpec& mem = b.p.memory;
  for (const char* req : {"type", "capacity"})
    if (!n[req]) return invalid_format(c.file + ": memory." + req + ": expected a value, got nothing" + line_of(n));
  STRATA_ASSIGN_OR_RETURN(std::string type_name, get_string(c, n["type"], "memory.type"));
  auto type = find_memory(type_name);
  if (!type.is_ok()) return invalid_format(c.file + ": memory.type: " + type.status().message() + line_of(n["type"]));
  const MemoryPart& t = **type;
  if (b.cpu_part && std::string(b.cpu_part->memory_kind) != t.kind)
    return invalid_format(c.file + ": memory.type: expected " + b.cpu_part->memory_kind + " (what " +
                          b.cpu_part->name + " takes), got \"" + type_name + "\"" + line_of(n["type"]));
  mem.type = t.name;
  mem.channels_per_socket = mem.channels_max_per_socket;
  if (n["channels"]) {
    STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["channels"], "memory.channels", 1, 16));
    if (mem.channels_max_per_socket > 0 && v > mem.channels_max_per_socket)
      return field_error(c, "memory.channels", n["channels"],
                         "at most " + std::to_string(mem.channels_max_per_socket) + " (channels per socket of " +
                             b.p.cpu.model + ")");
    mem.channels_per_socket = static_cast<int>(v);
  }
  if (mem.channels_per_socket <= 0)
    return invalid_format(c.file + ": memory.channels: expected a value (the CPU's channel count is unknown)" +
                          line_of(n));
  if (n["dimms_per_channel"]) {
    STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["dimms_per_channel"], "memory.dimms_per_channel", 1, 2));
    if (v == 2 && b.cpu_part && b.cpu_part->memory_mts_2dpc == 0)
      return field_error(c, "memory.dimms_per_channel", n["dimms_per_channel"],
                         std::string("1 (") + b.cpu_part->name + " supports one DIMM per channel)");
    mem.dimms_per_channel = static_cast<int>(v);
  }
  STRATA_ASSIGN_OR_RETURN(mem.bytes, get_size(c, n["capacity"], "memory.capacity"));
  mem.mts = platform_mts(b, t, mem.dimms_per_channel);
  if (mem.mts < t.mts)
    b.p.assumptions.push_back(std::string(t.name) + " runs at " + std::to_string(mem.mts) + " MT/s on " + b.p.cpu.model +
                              " with " + std::to_string(mem.dimms_per_channel) + " DIMM(s) per channel (platform limit)");
  if (mem.channels_per_socket < mem.channels_max_per_socket)
    b.p.assumptions.push_back("only " + std::to_string(mem.channels_per_socket) + " of " +
                              std::to_string(mem.channels_max_per_socket) +
                              " memory channels per socket are populated: bandwidth scales with populated channels");
  return Status::ok();
}

Status read_gpu(const Ctx& c, const YAML::Node& n, const std::string& path, Built& b) {
  GpuSpec g;
  int count = 1;
  const GpuPart* part = nullptr;
  if (n.IsMap()) {
    STRATA_RETURN_IF_ERROR(check_map(c, n, path,
                                     {"name", "count", "numa", "vram", "mem_gbps", "bf16_tflops", "sms", "pcie_gen",
                                      "pcie_width", "price_usd"}));
    if (!n["name"]) return invalid_format(c.file + ": " + path + ".name: expected a GPU name, got nothing" + line_of(n));
  }
  // (yaml-cpp's Node assignment overwrites the node's content, so pick once.)
  const YAML::Node name_node = n.IsMap() ? n["name"] : n;
  STRATA_ASSIGN_OR_RETURN(g.name, get_string(c, name_node, n.IsMap() ? path + ".name" : path));
  auto found = find_gpu(g.name);
  const bool custom = n.IsMap() && n["vram"] && n["mem_gbps"];
  if (found.is_ok()) {
    part = *found;
    g.name = part->name;
    g.vram_bytes = static_cast<uint64_t>(part->vram_gib * 1073741824.0);
    g.sms = part->sms;
    g.pcie_gen = part->pcie_gen;
    g.pcie_width = 16;
  } else if (!custom) {
    return invalid_format(c.file + ": " + (n.IsMap() ? path + ".name" : path) + ": " + found.status().message() +
                          " (or give vram and mem_gbps for a GPU outside the catalog)" + line_of(name_node));
  }
  double price = part ? part->price_usd : 0;
  if (n.IsMap()) {
    if (n["count"]) {
      STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["count"], path + ".count", 1, 16));
      count = static_cast<int>(v);
    }
    if (n["numa"]) {
      STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["numa"], path + ".numa", 0, 63));
      g.numa = static_cast<int>(v);
    }
    if (n["vram"]) { STRATA_ASSIGN_OR_RETURN(g.vram_bytes, get_size(c, n["vram"], path + ".vram")); }
    if (n["sms"]) {
      STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["sms"], path + ".sms", 1, 1024));
      g.sms = static_cast<int>(v);
    }
    if (n["pcie_gen"]) {
      STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["pcie_gen"], path + ".pcie_gen", 3, 6));
      g.pcie_gen = static_cast<int>(v);
    }
    if (n["pcie_width"]) {
      STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["pcie_width"], path + ".pcie_width", 1, 16));
      g.pcie_width = static_cast<int>(v);
    }
    if (n["price_usd"]) { STRATA_ASSIGN_OR_RETURN(price, get_number(c, n["price_usd"], path + ".price_usd", 0, 1e7)); }
  }
  if (part) fill_nominal_gpu(g, *part);
  if (!part) {
    if (g.pcie_gen == 0) g.pcie_gen = 4;
    if (g.pcie_width == 0) g.pcie_width = 16;
    fill_nominal_h2d(g);
  }
  const std::string src = c.file + ": " + path;
  if (n.IsMap() && n["mem_gbps"]) {
    STRATA_ASSIGN_OR_RETURN(g.mem_gbps, get_figure(c, n["mem_gbps"], path + ".mem_gbps", "given in " + src));
  }
  if (n.IsMap() && n["bf16_tflops"]) {
    STRATA_ASSIGN_OR_RETURN(g.bf16_tflops, get_figure(c, n["bf16_tflops"], path + ".bf16_tflops", "given in " + src));
  }
  for (int i = 0; i < count; ++i) b.p.gpus.push_back(g);
  b.parts_price += price * count;
  return Status::ok();
}

Status read_nvme(const Ctx& c, const YAML::Node& n, const std::string& path, Built& b) {
  StorageSpec s;
  int count = 1;
  if (n.IsMap()) {
    STRATA_RETURN_IF_ERROR(
        check_map(c, n, path, {"name", "count", "capacity", "pcie_gen", "seq_read_gbps", "rand_read_gbps"}));
    if (!n["name"]) return invalid_format(c.file + ": " + path + ".name: expected a drive name, got nothing" + line_of(n));
  }
  const YAML::Node name_node = n.IsMap() ? n["name"] : n;
  const std::string name_path = n.IsMap() ? path + ".name" : path;
  STRATA_ASSIGN_OR_RETURN(s.name, get_string(c, name_node, name_path));
  auto found = find_nvme(s.name);
  const bool custom = n.IsMap() && n["seq_read_gbps"] && n["rand_read_gbps"] && n["pcie_gen"];
  const NvmePart* part = found.is_ok() ? *found : nullptr;
  if (!part && !custom)
    return invalid_format(c.file + ": " + name_path + ": " + found.status().message() +
                          " (or give pcie_gen, seq_read_gbps and rand_read_gbps for a drive outside the catalog)" +
                          line_of(name_node));
  if (part) {
    s.name = part->name;
    s.pcie_gen = part->pcie_gen;
    s.pcie_width = 4;
    fill_nominal_nvme(s, *part);
  }
  s.capacity_bytes = 2000000000000ull;  // 2 TB unless given
  if (n.IsMap()) {
    if (n["count"]) {
      STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["count"], path + ".count", 1, 32));
      count = static_cast<int>(v);
    }
    if (n["capacity"]) {
      STRATA_ASSIGN_OR_RETURN(s.capacity_bytes, get_size(c, n["capacity"], path + ".capacity"));
    } else {
      b.p.assumptions.push_back(s.name + ": capacity not given, 2 TB assumed");
    }
    if (n["pcie_gen"]) {
      STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, n["pcie_gen"], path + ".pcie_gen", 3, 6));
      s.pcie_gen = static_cast<int>(v);
    }
    const std::string src = "given in " + c.file + ": " + path;
    if (n["seq_read_gbps"]) {
      STRATA_ASSIGN_OR_RETURN(s.seq_read_gbps, get_figure(c, n["seq_read_gbps"], path + ".seq_read_gbps", src));
    }
    if (n["rand_read_gbps"]) {
      STRATA_ASSIGN_OR_RETURN(s.rand_read_gbps, get_figure(c, n["rand_read_gbps"], path + ".rand_read_gbps", src));
    }
  } else {
    b.p.assumptions.push_back(s.name + ": capacity not given, 2 TB assumed");
  }
  for (int i = 0; i < count; ++i) b.p.storage.push_back(s);
  if (part) b.parts_price += part->price_usd_per_tb * static_cast<double>(s.capacity_bytes) / 1e12 * count;
  return Status::ok();
}

// Applies a figure that may be one value for all or a list, one per item.
template <typename Items, typename Get>
Status apply_override(const Ctx& c, const YAML::Node& n, const std::string& path, Items& items, Get get) {
  const std::string src = "override in " + c.file;
  if (n.IsSequence()) {
    if (n.size() != items.size())
      return field_error(c, path, n, "a list of " + std::to_string(items.size()) + " values (one per item) or one value");
    for (size_t i = 0; i < items.size(); ++i) {
      STRATA_ASSIGN_OR_RETURN(get(items[i]), get_figure(c, n[i], path + "[" + std::to_string(i) + "]", src));
    }
    return Status::ok();
  }
  STRATA_ASSIGN_OR_RETURN(Figure f, get_figure(c, n, path, src));
  for (auto& it : items) get(it) = f;
  return Status::ok();
}

Status read_overrides(const Ctx& c, const YAML::Node& n, Built& b) {
  STRATA_RETURN_IF_ERROR(check_map(c, n, "overrides",
                                   {"numa_read_gbps", "cross_numa_gbps", "gpu_mem_gbps", "gpu_bf16_tflops",
                                    "gpu_h2d_gbps", "gpu_gemv_gbps", "nvme_seq_read_gbps", "nvme_rand_read_gbps",
                                    "cpu_kernels"}));
  HardwareProfile& p = b.p;
  const std::string src = "override in " + c.file;
  if (n["numa_read_gbps"])
    STRATA_RETURN_IF_ERROR(apply_override(c, n["numa_read_gbps"], "overrides.numa_read_gbps", p.numa,
                                          [](NumaSpec& s) -> Figure& { return s.read_gbps; }));
  if (n["cross_numa_gbps"]) {
    STRATA_ASSIGN_OR_RETURN(p.cross_numa_gbps, get_figure(c, n["cross_numa_gbps"], "overrides.cross_numa_gbps", src));
  }
  struct GpuField {
    const char* key;
    Figure GpuSpec::*field;
  };
  for (const GpuField& f : {GpuField{"gpu_mem_gbps", &GpuSpec::mem_gbps}, GpuField{"gpu_bf16_tflops", &GpuSpec::bf16_tflops},
                            GpuField{"gpu_h2d_gbps", &GpuSpec::h2d_gbps}, GpuField{"gpu_gemv_gbps", &GpuSpec::gemv_gbps}}) {
    if (!n[f.key]) continue;
    if (p.gpus.empty()) return field_error(c, std::string("overrides.") + f.key, n[f.key], "no value (the machine has no GPU)");
    STRATA_RETURN_IF_ERROR(apply_override(c, n[f.key], std::string("overrides.") + f.key, p.gpus,
                                          [&](GpuSpec& g) -> Figure& { return g.*(f.field); }));
  }
  struct NvmeField {
    const char* key;
    Figure StorageSpec::*field;
  };
  for (const NvmeField& f : {NvmeField{"nvme_seq_read_gbps", &StorageSpec::seq_read_gbps},
                             NvmeField{"nvme_rand_read_gbps", &StorageSpec::rand_read_gbps}}) {
    if (!n[f.key]) continue;
    if (p.storage.empty()) return field_error(c, std::string("overrides.") + f.key, n[f.key], "no value (the machine has no NVMe)");
    STRATA_RETURN_IF_ERROR(apply_override(c, n[f.key], std::string("overrides.") + f.key, p.storage,
                                          [&](StorageSpec& s) -> Figure& { return s.*(f.field); }));
  }
  if (n["cpu_kernels"]) {
    const YAML::Node& k = n["cpu_kernels"];
    if (!k.IsMap()) return field_error(c, "overrides.cpu_kernels", k, "a map from weight type (q4_k, ...) to rates");
    for (const auto& kv : k) {
      const std::string type_name = kv.first.Scalar();
      const std::string path = "overrides.cpu_kernels." + type_name;
      const auto dt = dtype_from_name(type_name);
      if (!dt) return field_error(c, path, kv.first, "a GGUF weight type name such as q4_k, q8_0, bf16");
      STRATA_RETURN_IF_ERROR(check_map(c, kv.second, path, {"decode_gbps", "prefill_gops"}));
      KernelRate r;
      r.type = *dt;
      if (kv.second["decode_gbps"]) {
        STRATA_ASSIGN_OR_RETURN(r.decode_gbps, get_figure(c, kv.second["decode_gbps"], path + ".decode_gbps", src));
      }
      if (kv.second["prefill_gops"]) {
        STRATA_ASSIGN_OR_RETURN(r.prefill_gops, get_figure(c, kv.second["prefill_gops"], path + ".prefill_gops", src));
      }
      p.cpu_kernels.erase(std::remove_if(p.cpu_kernels.begin(), p.cpu_kernels.end(),
                                         [&](const KernelRate& x) { return x.type == r.type; }),
                          p.cpu_kernels.end());
      p.cpu_kernels.push_back(r);
    }
  }
  return Status::ok();
}

// NUMA nodes from an hwloc XML file or from sockets x numa_per_socket, with
// nominal read bandwidth from populated channels.
Status build_numa(const Ctx& c, const YAML::Node& root, const std::string& base_dir, Built& b) {
  HardwareProfile& p = b.p;
  const MemorySpec& mem = p.memory;
  const int sockets = p.cpu.sockets;
  std::vector<NumaSpec> nodes;
  if (root["topology"]) {
    STRATA_ASSIGN_OR_RETURN(std::string rel, get_string(c, root["topology"], "topology"));
    const fs::path path = fs::path(rel).is_absolute() ? fs::path(rel) : fs::path(base_dir) / rel;
    auto topo = Topology::from_xml(path.string());
    if (!topo.is_ok()) return invalid_format(c.file + ": topology: " + topo.status().message());
    if (topo->n_packages() != sockets)
      return invalid_format(c.file + ": topology: " + rel + " has " + std::to_string(topo->n_packages()) +
                            " package(s), expected " + std::to_string(sockets) + " (sockets)" + line_of(root["topology"]));
    if (b.cpu_part && static_cast<int>(topo->cores().size()) != sockets * p.cpu.cores_per_socket)
      p.assumptions.push_back("topology " + rel + " has " + std::to_string(topo->cores().size()) + " cores, the CPU " +
                              std::to_string(sockets * p.cpu.cores_per_socket) + ": NUMA layout from the topology");
    const uint64_t topo_mem = topo->memory_bytes();
    for (const TopoNuma& t : topo->numa_nodes()) {
      NumaSpec n;
      n.index = t.index;
      n.package = t.package;
      n.cores = static_cast<int>(t.cores.size());
      // Capacity from memory.capacity, split as the topology splits its memory.
      n.dram_bytes = topo_mem > 0 ? static_cast<uint64_t>(static_cast<double>(mem.bytes) * t.memory_bytes / topo_mem)
                                  : mem.bytes / topo->numa_nodes().size();
      nodes.push_back(n);
    }
    b.numa_per_socket = std::max<int>(1, static_cast<int>(nodes.size()) / sockets);
  } else {
    const int nps = b.numa_per_socket;
    if (p.cpu.cores_per_socket % nps != 0)
      return field_error(c, "numa_per_socket", root["numa_per_socket"],
                         "a divisor of the " + std::to_string(p.cpu.cores_per_socket) + " cores per socket");
    for (int s = 0; s < sockets; ++s)
      for (int i = 0; i < nps; ++i) {
        NumaSpec n;
        n.index = s * nps + i;
        n.package = s;
        n.cores = p.cpu.cores_per_socket / nps;
        n.dram_bytes = mem.bytes / static_cast<uint64_t>(sockets * nps);
        nodes.push_back(n);
      }
  }
  // Each node gets its socket's populated channels divided among the socket's nodes.
  const auto* type = *find_memory(mem.type);
  const double ch_gbps = mem.mts * 8.0 / 1000.0;
  const StreamEfficiency& eff = stream_efficiency(b.cpu_server);
  for (NumaSpec& n : nodes) {
    const double channels = static_cast<double>(mem.channels_per_socket) / b.numa_per_socket;
    const std::string what = fmt("%g", channels) + " ch x " + type->name +
                             (mem.mts != type->mts ? " at " + std::to_string(mem.mts) + " MT/s" : "") + " (" +
                             fmt("%.1f", ch_gbps) + " GB/s per channel)";
    n.read_gbps = scaled(channels * ch_gbps, eff, what);
  }
  p.numa = std::move(nodes);
  if (p.numa.size() > 1) {
    const StreamEfficiency& share = cross_numa_share(sockets > 1);
    const Figure& local = p.numa[0].read_gbps;
    p.cross_numa_gbps = {local.value * share.value, local.lo * share.lo, local.hi * share.hi,
                         "nominal: local node bandwidth x " + fmt("%.0f", share.lo * 100) + "-" +
                             fmt("%.0f", share.hi * 100) + " % (" + share.source + ")"};
  }
  return Status::ok();
}

Result<HardwareProfile> build_profile(const Ctx& c, const YAML::Node& root, const std::string& base_dir) {
  STRATA_RETURN_IF_ERROR(check_map(c, root, "",
                                   {"name", "price_usd", "cpu", "sockets", "numa_per_socket", "memory", "gpus", "nvme",
                                    "topology", "overrides"}));
  Built b;
  HardwareProfile& p = b.p;
  p.name = fs::path(c.file).filename().string();
  if (root["name"]) { STRATA_ASSIGN_OR_RETURN(p.name, get_string(c, root["name"], "name")); }
  if (root["price_usd"]) { STRATA_ASSIGN_OR_RETURN(p.price_usd, get_number(c, root["price_usd"], "price_usd", 0, 1e9)); }
  if (!root["cpu"]) return invalid_format(c.file + ": cpu: expected a catalog CPU name or a map, got nothing");
  if (!root["memory"]) return invalid_format(c.file + ": memory: expected a map with type and capacity, got nothing");
  STRATA_RETURN_IF_ERROR(read_cpu(c, root["cpu"], b));
  if (root["sockets"]) {
    const int max_sockets = b.cpu_part ? b.cpu_part->max_sockets : 8;
    STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, root["sockets"], "sockets", 1, max_sockets));
    p.cpu.sockets = static_cast<int>(v);
  }
  if (root["numa_per_socket"]) {
    STRATA_ASSIGN_OR_RETURN(int64_t v, get_int(c, root["numa_per_socket"], "numa_per_socket", 1, 8));
    b.numa_per_socket = static_cast<int>(v);
  }
  STRATA_RETURN_IF_ERROR(read_memory(c, root["memory"], b));
  STRATA_RETURN_IF_ERROR(build_numa(c, root, base_dir, b));
  if (b.cpu_part) b.parts_price += b.cpu_part->price_usd * p.cpu.sockets;
  for (const char* list_key : {"gpus", "nvme"}) {
    const YAML::Node& l = root[list_key];
    if (!l) continue;
    const bool gpu = std::string(list_key) == "gpus";
    if (l.IsSequence()) {
      for (size_t i = 0; i < l.size(); ++i) {
        const std::string path = std::string(list_key) + "[" + std::to_string(i) + "]";
        STRATA_RETURN_IF_ERROR(gpu ? read_gpu(c, l[i], path, b) : read_nvme(c, l[i], path, b));
      }
    } else if (l.IsScalar() || l.IsMap()) {
      STRATA_RETURN_IF_ERROR(gpu ? read_gpu(c, l, list_key, b) : read_nvme(c, l, list_key, b));
    } else {
      return field_error(c, list_key, l, "a name, a map or a list of them");
    }
  }
  for (const GpuSpec& g : p.gpus)
    if (g.numa >= static_cast<int>(p.numa.size()))
      return invalid_format(c.file + ": gpus: " + g.name + " is on NUMA node " + std::to_string(g.numa) +
                            ", expected 0.." + std::to_string(p.numa.size() - 1));
  if (root["overrides"]) STRATA_RETURN_IF_ERROR(read_overrides(c, root["overrides"], b));
  if (p.price_usd == 0 && b.parts_price > 0)
    p.assumptions.push_back("price not given; catalog parts (CPU, GPUs, NVMe) add up to $" + fmt("%.0f", b.parts_price) +
                            ", memory, board, power and chassis not included");
  p.assumptions.push_back("rates are nominal (catalog figures and published efficiency ranges), not measured");
  return p;
}

// ---- profile JSON -------------------------------------------------------------

nlohmann::json figure_json(const Figure& f) {
  return {{"value", f.value}, {"lo", f.lo}, {"hi", f.hi}, {"source", f.source}};
}

}  // namespace

Result<HardwareProfile> parse_hardware(const std::string& text, const std::string& file, const std::string& base_dir) {
  const Ctx c{file};
  STRATA_ASSIGN_OR_RETURN(YAML::Node root, parse_yaml(text, file));
  if (!root.IsMap()) return invalid_format(file + ": expected a map of fields (name, cpu, memory, ...), got " + describe(root));
  try {
    return build_profile(c, root, base_dir);
  } catch (const YAML::Exception& e) {
    return invalid_format(file + ": " + e.msg);
  }
}

Result<HardwareProfile> load_hardware(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found(path + ": cannot open hardware file");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (!f.good() && !f.eof()) return io_error(path + ": read failed");
  return parse_hardware(ss.str(), path, fs::path(path).parent_path().string());
}

std::string profile_to_json(const HardwareProfile& p, int indent) {
  nlohmann::json j;
  j["name"] = p.name;
  j["price_usd"] = p.price_usd;
  const CpuSpec& c = p.cpu;
  j["cpu"] = {{"model", c.model},       {"sockets", c.sockets},         {"cores_per_socket", c.cores_per_socket},
              {"threads_per_core", c.threads_per_core}, {"base_ghz", c.base_ghz}, {"avx2", c.avx2},
              {"avx512", c.avx512},     {"avx512_vnni", c.avx512_vnni}, {"avx512_bf16", c.avx512_bf16},
              {"amx", c.amx},           {"l3_bytes", c.l3_bytes}};
  const MemorySpec& m = p.memory;
  j["memory"] = {{"type", m.type},
                 {"channels_per_socket", m.channels_per_socket},
                 {"channels_max_per_socket", m.channels_max_per_socket},
                 {"dimms_per_channel", m.dimms_per_channel},
                 {"bytes", m.bytes},
                 {"mts", m.mts}};
  j["numa"] = nlohmann::json::array();
  for (const NumaSpec& n : p.numa)
    j["numa"].push_back({{"index", n.index}, {"package", n.package}, {"dram_bytes", n.dram_bytes}, {"cores", n.cores},
                         {"read_gbps", figure_json(n.read_gbps)}});
  j["cross_numa_gbps"] = figure_json(p.cross_numa_gbps);
  j["gpus"] = nlohmann::json::array();
  for (const GpuSpec& g : p.gpus)
    j["gpus"].push_back({{"name", g.name}, {"vram_bytes", g.vram_bytes}, {"sms", g.sms}, {"numa", g.numa},
                         {"pcie_gen", g.pcie_gen}, {"pcie_width", g.pcie_width}, {"mem_gbps", figure_json(g.mem_gbps)},
                         {"bf16_tflops", figure_json(g.bf16_tflops)}, {"h2d_gbps", figure_json(g.h2d_gbps)},
                         {"gemv_gbps", figure_json(g.gemv_gbps)}});
  j["storage"] = nlohmann::json::array();
  for (const StorageSpec& s : p.storage)
    j["storage"].push_back({{"name", s.name}, {"path", s.path}, {"capacity_bytes", s.capacity_bytes},
                            {"pcie_gen", s.pcie_gen}, {"pcie_width", s.pcie_width}, {"rotational", s.rotational},
                            {"seq_read_gbps", figure_json(s.seq_read_gbps)},
                            {"rand_read_gbps", figure_json(s.rand_read_gbps)}});
  j["cpu_kernels"] = nlohmann::json::array();
  for (const KernelRate& k : p.cpu_kernels)
    j["cpu_kernels"].push_back({{"type", std::string(dtype_name(k.type))}, {"decode_gbps", figure_json(k.decode_gbps)},
                                {"prefill_gops", figure_json(k.prefill_gops)}});
  j["assumptions"] = p.assumptions;
  return j.dump(indent);
}

namespace {

// Readers for the profile JSON: every listed field required, no others.
struct JsonReader {
  Ctx c;
  Status str(const YAML::Node& n, const std::string& path, std::string& out) {
    if (!n.IsScalar()) return field_error(c, path, n, "a string");
    out = n.Scalar();
    return Status::ok();
  }
  template <typename T>
  Status num(const YAML::Node& n, const std::string& path, T& out) {
    STRATA_ASSIGN_OR_RETURN(double v, get_number(c, n, path, -1e18, 1.9e19));
    out = static_cast<T>(v);
    if constexpr (std::is_integral_v<T>) {
      if (static_cast<double>(out) != v) return field_error(c, path, n, "an integer");
    }
    return Status::ok();
  }
  Status boolean(const YAML::Node& n, const std::string& path, bool& out) {
    STRATA_ASSIGN_OR_RETURN(out, get_bool(c, n, path));
    return Status::ok();
  }
  Status figure(const YAML::Node& n, const std::string& path, Figure& f) {
    STRATA_RETURN_IF_ERROR(check_map(c, n, path, {"value", "lo", "hi", "source"}));
    STRATA_RETURN_IF_ERROR(num(n["value"], path + ".value", f.value));
    STRATA_RETURN_IF_ERROR(num(n["lo"], path + ".lo", f.lo));
    STRATA_RETURN_IF_ERROR(num(n["hi"], path + ".hi", f.hi));
    if (n["source"].IsNull()) f.source.clear();
    else STRATA_RETURN_IF_ERROR(str(n["source"], path + ".source", f.source));
    return Status::ok();
  }
  Status list(const YAML::Node& n, const std::string& path) {
    if (!n.IsSequence()) return field_error(c, path, n, "a list");
    return Status::ok();
  }
};

Result<HardwareProfile> read_profile_json(JsonReader& r, const YAML::Node& j) {
  HardwareProfile p;
  STRATA_RETURN_IF_ERROR(check_map(r.c, j, "",
                                   {"name", "price_usd", "cpu", "memory", "numa", "cross_numa_gbps", "gpus", "storage",
                                    "cpu_kernels", "assumptions"}));
  STRATA_RETURN_IF_ERROR(r.str(j["name"], "name", p.name));
  STRATA_RETURN_IF_ERROR(r.num(j["price_usd"], "price_usd", p.price_usd));
  const YAML::Node cpu = j["cpu"];
  STRATA_RETURN_IF_ERROR(check_map(r.c, cpu, "cpu",
                                   {"model", "sockets", "cores_per_socket", "threads_per_core", "base_ghz", "avx2",
                                    "avx512", "avx512_vnni", "avx512_bf16", "amx", "l3_bytes"}));
  STRATA_RETURN_IF_ERROR(r.str(cpu["model"], "cpu.model", p.cpu.model));
  STRATA_RETURN_IF_ERROR(r.num(cpu["sockets"], "cpu.sockets", p.cpu.sockets));
  STRATA_RETURN_IF_ERROR(r.num(cpu["cores_per_socket"], "cpu.cores_per_socket", p.cpu.cores_per_socket));
  STRATA_RETURN_IF_ERROR(r.num(cpu["threads_per_core"], "cpu.threads_per_core", p.cpu.threads_per_core));
  STRATA_RETURN_IF_ERROR(r.num(cpu["base_ghz"], "cpu.base_ghz", p.cpu.base_ghz));
  STRATA_RETURN_IF_ERROR(r.boolean(cpu["avx2"], "cpu.avx2", p.cpu.avx2));
  STRATA_RETURN_IF_ERROR(r.boolean(cpu["avx512"], "cpu.avx512", p.cpu.avx512));
  STRATA_RETURN_IF_ERROR(r.boolean(cpu["avx512_vnni"], "cpu.avx512_vnni", p.cpu.avx512_vnni));
  STRATA_RETURN_IF_ERROR(r.boolean(cpu["avx512_bf16"], "cpu.avx512_bf16", p.cpu.avx512_bf16));
  STRATA_RETURN_IF_ERROR(r.boolean(cpu["amx"], "cpu.amx", p.cpu.amx));
  STRATA_RETURN_IF_ERROR(r.num(cpu["l3_bytes"], "cpu.l3_bytes", p.cpu.l3_bytes));
  const YAML::Node mem = j["memory"];
  STRATA_RETURN_IF_ERROR(check_map(r.c, mem, "memory",
                                   {"type", "channels_per_socket", "channels_max_per_socket", "dimms_per_channel",
                                    "bytes", "mts"}));
  if (mem["type"].IsNull()) p.memory.type.clear();
  else STRATA_RETURN_IF_ERROR(r.str(mem["type"], "memory.type", p.memory.type));
  STRATA_RETURN_IF_ERROR(r.num(mem["channels_per_socket"], "memory.channels_per_socket", p.memory.channels_per_socket));
  STRATA_RETURN_IF_ERROR(
      r.num(mem["channels_max_per_socket"], "memory.channels_max_per_socket", p.memory.channels_max_per_socket));
  STRATA_RETURN_IF_ERROR(r.num(mem["dimms_per_channel"], "memory.dimms_per_channel", p.memory.dimms_per_channel));
  STRATA_RETURN_IF_ERROR(r.num(mem["bytes"], "memory.bytes", p.memory.bytes));
  STRATA_RETURN_IF_ERROR(r.num(mem["mts"], "memory.mts", p.memory.mts));
  STRATA_RETURN_IF_ERROR(r.list(j["numa"], "numa"));
  for (size_t i = 0; i < j["numa"].size(); ++i) {
    const YAML::Node n = j["numa"][i];
    const std::string path = "numa[" + std::to_string(i) + "]";
    STRATA_RETURN_IF_ERROR(check_map(r.c, n, path, {"index", "package", "dram_bytes", "cores", "read_gbps"}));
    NumaSpec s;
    STRATA_RETURN_IF_ERROR(r.num(n["index"], path + ".index", s.index));
    STRATA_RETURN_IF_ERROR(r.num(n["package"], path + ".package", s.package));
    STRATA_RETURN_IF_ERROR(r.num(n["dram_bytes"], path + ".dram_bytes", s.dram_bytes));
    STRATA_RETURN_IF_ERROR(r.num(n["cores"], path + ".cores", s.cores));
    STRATA_RETURN_IF_ERROR(r.figure(n["read_gbps"], path + ".read_gbps", s.read_gbps));
    p.numa.push_back(s);
  }
  STRATA_RETURN_IF_ERROR(r.figure(j["cross_numa_gbps"], "cross_numa_gbps", p.cross_numa_gbps));
  STRATA_RETURN_IF_ERROR(r.list(j["gpus"], "gpus"));
  for (size_t i = 0; i < j["gpus"].size(); ++i) {
    const YAML::Node n = j["gpus"][i];
    const std::string path = "gpus[" + std::to_string(i) + "]";
    STRATA_RETURN_IF_ERROR(check_map(r.c, n, path,
                                     {"name", "vram_bytes", "sms", "numa", "pcie_gen", "pcie_width", "mem_gbps",
                                      "bf16_tflops", "h2d_gbps", "gemv_gbps"}));
    GpuSpec g;
    STRATA_RETURN_IF_ERROR(r.str(n["name"], path + ".name", g.name));
    STRATA_RETURN_IF_ERROR(r.num(n["vram_bytes"], path + ".vram_bytes", g.vram_bytes));
    STRATA_RETURN_IF_ERROR(r.num(n["sms"], path + ".sms", g.sms));
    STRATA_RETURN_IF_ERROR(r.num(n["numa"], path + ".numa", g.numa));
    STRATA_RETURN_IF_ERROR(r.num(n["pcie_gen"], path + ".pcie_gen", g.pcie_gen));
    STRATA_RETURN_IF_ERROR(r.num(n["pcie_width"], path + ".pcie_width", g.pcie_width));
    STRATA_RETURN_IF_ERROR(r.figure(n["mem_gbps"], path + ".mem_gbps", g.mem_gbps));
    STRATA_RETURN_IF_ERROR(r.figure(n["bf16_tflops"], path + ".bf16_tflops", g.bf16_tflops));
    STRATA_RETURN_IF_ERROR(r.figure(n["h2d_gbps"], path + ".h2d_gbps", g.h2d_gbps));
    STRATA_RETURN_IF_ERROR(r.figure(n["gemv_gbps"], path + ".gemv_gbps", g.gemv_gbps));
    p.gpus.push_back(g);
  }
  STRATA_RETURN_IF_ERROR(r.list(j["storage"], "storage"));
  for (size_t i = 0; i < j["storage"].size(); ++i) {
    const YAML::Node n = j["storage"][i];
    const std::string path = "storage[" + std::to_string(i) + "]";
    STRATA_RETURN_IF_ERROR(check_map(r.c, n, path,
                                     {"name", "path", "capacity_bytes", "pcie_gen", "pcie_width", "rotational",
                                      "seq_read_gbps", "rand_read_gbps"}));
    StorageSpec s;
    STRATA_RETURN_IF_ERROR(r.str(n["name"], path + ".name", s.name));
    if (n["path"].IsNull()) s.path.clear();
    else STRATA_RETURN_IF_ERROR(r.str(n["path"], path + ".path", s.path));
    STRATA_RETURN_IF_ERROR(r.num(n["capacity_bytes"], path + ".capacity_bytes", s.capacity_bytes));
    STRATA_RETURN_IF_ERROR(r.num(n["pcie_gen"], path + ".pcie_gen", s.pcie_gen));
    STRATA_RETURN_IF_ERROR(r.num(n["pcie_width"], path + ".pcie_width", s.pcie_width));
    STRATA_RETURN_IF_ERROR(r.boolean(n["rotational"], path + ".rotational", s.rotational));
    STRATA_RETURN_IF_ERROR(r.figure(n["seq_read_gbps"], path + ".seq_read_gbps", s.seq_read_gbps));
    STRATA_RETURN_IF_ERROR(r.figure(n["rand_read_gbps"], path + ".rand_read_gbps", s.rand_read_gbps));
    p.storage.push_back(s);
  }
  STRATA_RETURN_IF_ERROR(r.list(j["cpu_kernels"], "cpu_kernels"));
  for (size_t i = 0; i < j["cpu_kernels"].size(); ++i) {
    const YAML::Node n = j["cpu_kernels"][i];
    const std::string path = "cpu_kernels[" + std::to_string(i) + "]";
    STRATA_RETURN_IF_ERROR(check_map(r.c, n, path, {"type", "decode_gbps", "prefill_gops"}));
    KernelRate k;
    std::string type;
    STRATA_RETURN_IF_ERROR(r.str(n["type"], path + ".type", type));
    const auto dt = dtype_from_name(type);
    if (!dt) return field_error(r.c, path + ".type", n["type"], "a GGUF weight type name");
    k.type = *dt;
    STRATA_RETURN_IF_ERROR(r.figure(n["decode_gbps"], path + ".decode_gbps", k.decode_gbps));
    STRATA_RETURN_IF_ERROR(r.figure(n["prefill_gops"], path + ".prefill_gops", k.prefill_gops));
    p.cpu_kernels.push_back(k);
  }
  STRATA_RETURN_IF_ERROR(r.list(j["assumptions"], "assumptions"));
  for (size_t i = 0; i < j["assumptions"].size(); ++i) {
    std::string a;
    STRATA_RETURN_IF_ERROR(r.str(j["assumptions"][i], "assumptions[" + std::to_string(i) + "]", a));
    p.assumptions.push_back(a);
  }
  if (p.numa.empty()) return invalid_format(r.c.file + ": numa: expected at least one node, got none");
  return p;
}

}  // namespace

Result<HardwareProfile> profile_from_json(const std::string& text, const std::string& what) {
  STRATA_ASSIGN_OR_RETURN(YAML::Node root, parse_yaml(text, what));
  JsonReader r{Ctx{what}};
  try {
    return read_profile_json(r, root);
  } catch (const YAML::Exception& e) {
    return invalid_format(what + ": " + e.msg);
  }
}

}  // namespace strata
