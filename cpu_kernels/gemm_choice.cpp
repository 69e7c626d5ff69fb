// The qgemm / oneDNN choice (gemm_choice.h): a policy, and under auto a
// measured answer cached per shape.
#include "cpu_kernels/gemm_choice.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unistd.h>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/dnnl_gemm.h"
#include "cpu_kernels/qgemm.h"
#include "runtime/base/rng.h"

namespace strata {
namespace {

constexpr int64_t kMaxBucketRows = 512;

struct State {
  std::mutex mu;
  bool policy_set = false;
  GemmPolicy policy = GemmPolicy::kAuto;
  // (type, n_in, n_out, bucket, isa) -> choice
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int>, GemmChoice> choices;
  std::string file;  // use_gemm_choice_file's, or empty
};

using ChoiceKey = std::tuple<int, int64_t, int64_t, int64_t, int>;
ChoiceKey key_of(const GemmChoice& c) {
  return {int(c.w_type), c.n_in, c.n_out, c.rows, int(c.isa)};
}

nlohmann::json to_json(const GemmChoice& c) {
  return {{"type", std::string(dtype_name(c.w_type))}, {"n_in", c.n_in}, {"n_out", c.n_out}, {"rows", c.rows},
          {"isa", std::string(cpu_isa_name(c.isa))}, {"path", gemm_path_name(c.path)}, {"qgemm_ms", c.native_ms},
          {"onednn_f32_ms", c.dnnl_f32_ms}, {"onednn_bf16_ms", c.dnnl_bf16_ms}};
}

// One recorded choice; false when any field is missing or unknown.
bool from_json(const nlohmann::json& j, GemmChoice& c) {
  if (!j.is_object()) return false;
  for (const char* f : {"type", "isa", "path"}) {
    if (!j.contains(f) || !j[f].is_string()) return false;
  }
  for (const char* f : {"n_in", "n_out", "rows"}) {
    if (!j.contains(f) || !j[f].is_number_integer() || j[f].get<int64_t>() <= 0) return false;
  }
  const std::optional<DType> t = dtype_from_name(j["type"].get<std::string>());
  const Result<CpuIsa> isa = cpu_isa_from_name(j["isa"].get<std::string>());
  const std::string path = j["path"].get<std::string>();
  if (!t || !isa.is_ok()) return false;
  c.w_type = *t;
  c.isa = *isa;
  c.n_in = j["n_in"].get<int64_t>();
  c.n_out = j["n_out"].get<int64_t>();
  c.rows = j["rows"].get<int64_t>();
  bool known = false;
  for (GemmPath p : {GemmPath::kNative, GemmPath::kDnnlF32, GemmPath::kDnnlBF16}) {
    if (path == gemm_path_name(p)) c.path = p, known = true;
  }
  if (!known) return false;
  auto ms = [&](const char* f) { return j.contains(f) && j[f].is_number() ? j[f].get<double>() : 0.0; };
  c.native_ms = ms("qgemm_ms");
  c.dnnl_f32_ms = ms("onednn_f32_ms");
  c.dnnl_bf16_ms = ms("onednn_bf16_ms");
  return true;
}

// The file's JSON, or why it cannot be used.
Result<nlohmann::json> read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return not_found(path + ": no gemm choice file");
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("machines") || !j["machines"].is_object()) {
    return invalid_format(path + ": expected a strata gemm choice file ({\"version\": 1, \"machines\": {...}})");
  }
  return j;
}

const std::string& brand() {
  static const std::string b = cpu_brand().empty() ? std::string("unknown CPU") : cpu_brand();
  return b;
}

// The CPU and this build of strata (size and time of the executable): a
// rebuilt or upgraded binary has other kernels, so it measures again.
std::string machine() {
  static const std::string m = [] {
    std::error_code ec;
    const auto size = std::filesystem::file_size("/proc/self/exe", ec);
    const auto time = std::filesystem::last_write_time("/proc/self/exe", ec);
    return brand() + " | build " + std::to_string(ec ? 0 : size) + "-" +
           std::to_string(ec ? 0 : static_cast<long long>(time.time_since_epoch().count()));
  }();
  return m;
}

// The choices a parsed file (read_file) records for this CPU and build, into
// `out` (keys already there are kept); `path` names the file in errors.
Status merge_choices(const nlohmann::json& j, const std::string& path, std::map<ChoiceKey, GemmChoice>& out) {
  const nlohmann::json& m = j["machines"];
  if (!m.contains(machine())) return Status::ok();
  if (!m[machine()].is_array()) return invalid_format(path + ": machines[\"" + machine() + "\"]: expected a list of choices");
  size_t i = 0;
  for (const nlohmann::json& e : m[machine()]) {
    GemmChoice c;
    if (!from_json(e, c)) {
      return invalid_format(path + ": machines[\"" + machine() + "\"][" + std::to_string(i) +
                            "]: expected type, n_in, n_out, rows, isa and path (qgemm, onednn-f32 or onednn-bf16)");
    }
    out.emplace(key_of(c), c);
    ++i;
  }
  return Status::ok();
}

// The same from the file; a missing file records nothing.
Status merge_file(const std::string& path, std::map<ChoiceKey, GemmChoice>& out) {
  Result<nlohmann::json> j = read_file(path);
  if (j.status().code() == StatusCode::kNotFound) return Status::ok();
  if (!j.is_ok()) return j.status();
  return merge_choices(*j, path, out);
}

// Adds this process's choices to the file under this CPU, keeping what the
// file already records (the first measurement of a key stays, so every later
// run agrees with the runs before it). Caller holds the lock. Failures are
// skipped (see use_gemm_choice_file).
void write_file(const State& s) {
  if (s.file.empty()) return;
  Result<nlohmann::json> old = read_file(s.file);
  nlohmann::json j = old.is_ok() ? *old : nlohmann::json{{"version", 1}, {"machines", nlohmann::json::object()}};
  std::map<ChoiceKey, GemmChoice> all;
  if (old.is_ok() && !merge_choices(j, s.file, all).is_ok()) {  // damaged: start over
    all.clear();
    j = nlohmann::json{{"version", 1}, {"machines", nlohmann::json::object()}};
  }
  for (const auto& [k, c] : s.choices) all.emplace(k, c);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [k, c] : all) list.push_back(to_json(c));
  // Records of other builds on this CPU are stale.
  for (auto it = j["machines"].begin(); it != j["machines"].end();) {
    if (it.key().rfind(brand() + " | build ", 0) == 0 && it.key() != machine()) {
      it = j["machines"].erase(it);
    } else {
      ++it;
    }
  }
  j["machines"][machine()] = std::move(list);
  std::error_code ec;
  const std::filesystem::path p(s.file);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  const std::string tmp = s.file + ".tmp" + std::to_string(getpid());
  {
    std::ofstream f(tmp);
    if (!f) return;
    f << j.dump(1) << "\n";
    if (!f) return;
  }
  std::filesystem::rename(tmp, s.file, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

State& state() {
  static State s;
  return s;
}

GemmPolicy policy_from_env() {
  const char* e = std::getenv("STRATA_PREFILL_GEMM");
  if (!e || !*e) return GemmPolicy::kAuto;
  Result<GemmPolicy> p = parse_gemm_policy(e);
  return p.is_ok() ? *p : GemmPolicy::kAuto;
}

int64_t bucket_of(int64_t n_rows) {
  int64_t b = kDnnlMinRows;
  while (b * 2 <= std::min(n_rows, kMaxBucketRows)) b *= 2;
  return b;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Estimated seconds of the whole product (all n_out rows) for `rows` rows on
// one thread: activation preparation once, plus kernel(block) on blocks of
// `probe_out` output rows scaled to n_out (best of two runs after a warm-up).
// Each run takes the next block of weight rows, so that, as in a real
// product, the weights are not already in cache.
template <class Prep, class Kernel>
double estimate(Prep prep, Kernel kernel, int64_t probe_out, int64_t n_out, int64_t& block) {
  const int64_t n_blocks = std::max<int64_t>(1, n_out / probe_out);
  auto next = [&] { return (block++) % n_blocks * probe_out; };
  auto t0 = Clock::now();
  if (!prep()) return 0;
  const double t_prep = seconds_since(t0);
  if (!kernel(next())) return 0;
  double best = 1e30;
  for (int i = 0; i < 2; ++i) {
    const int64_t o = next();
    t0 = Clock::now();
    if (!kernel(o)) return 0;
    best = std::min(best, seconds_since(t0));
  }
  return t_prep + best * double(n_out) / double(probe_out);
}

GemmChoice measure(DType w_type, const void* w, int64_t n_in, int64_t n_out, int64_t rows) {
  GemmChoice c;
  c.isa = active_cpu_isa();
  c.w_type = w_type;
  c.n_in = n_in;
  c.n_out = n_out;
  c.rows = rows;
  const int64_t probe_out = std::min(n_out, 2 * dnnl_gemm_tile_rows(n_in));
  int64_t block = 0;
  // Block o's output goes to y + (n_out - o): every write stays inside y.
  std::vector<float> y(size_t(rows * probe_out + n_out));
  std::vector<float> x(size_t(rows * n_in));
  Xoshiro256 rng(uint64_t(n_in) * 31 + uint64_t(n_out));
  for (float& v : x) v = float(rng.uniform() * 2 - 1);
  const int64_t x_stride = n_in;
  if (qgemm_supports(w_type)) {
    ActPack pack;
    c.native_ms = 1e3 * estimate(
                            [&] {
                              act_pack_prepare(pack, w_type, n_in, rows);
                              act_pack_rows(pack, x.data(), x_stride, 0, rows);
                              return true;
                            },
                            [&](int64_t o) {
                              qgemm_rows(w_type, w, n_in, o, o + probe_out, pack, y.data() + (n_out - o), probe_out);
                              return true;
                            },
                            probe_out, n_out, block);
  }
  for (DnnlPrecision p : {DnnlPrecision::kF32, DnnlPrecision::kBF16}) {
    if (!dnnl_precision_available(p)) continue;
    DnnlActs acts;
    const double ms =
        1e3 * estimate(
                  [&] {
                    acts.prepare(p, x.data(), x_stride, n_in, rows);
                    return true;
                  },
                  [&](int64_t o) {
                    return dnnl_gemm_rows(w_type, w, n_in, o, o + probe_out, acts, y.data() + (n_out - o), probe_out).is_ok();
                  },
                  probe_out, n_out, block);
    (p == DnnlPrecision::kF32 ? c.dnnl_f32_ms : c.dnnl_bf16_ms) = ms;
  }
  double best = c.native_ms > 0 ? c.native_ms : 1e30;
  c.path = GemmPath::kNative;
  if (c.dnnl_f32_ms > 0 && c.dnnl_f32_ms < best) {
    best = c.dnnl_f32_ms;
    c.path = GemmPath::kDnnlF32;
  }
  if (c.dnnl_bf16_ms > 0 && c.dnnl_bf16_ms < best) c.path = GemmPath::kDnnlBF16;
  return c;
}

GemmPath any_dnnl() {
  if (dnnl_precision_available(DnnlPrecision::kF32)) return GemmPath::kDnnlF32;
  if (dnnl_precision_available(DnnlPrecision::kBF16)) return GemmPath::kDnnlBF16;
  return GemmPath::kNative;
}

}  // namespace

const char* gemm_path_name(GemmPath p) {
  switch (p) {
    case GemmPath::kNative: return "qgemm";
    case GemmPath::kDnnlF32: return "onednn-f32";
    case GemmPath::kDnnlBF16: return "onednn-bf16";
  }
  return "?";
}

Result<GemmPolicy> parse_gemm_policy(std::string_view name) {
  if (name == "auto") return GemmPolicy::kAuto;
  if (name == "native" || name == "qgemm") return GemmPolicy::kNative;
  if (name == "onednn") return GemmPolicy::kDnnl;
  return invalid_argument("unknown prefill GEMM policy '" + std::string(name) + "' (expected auto, native or onednn)");
}

const char* gemm_policy_name(GemmPolicy p) {
  switch (p) {
    case GemmPolicy::kAuto: return "auto";
    case GemmPolicy::kNative: return "native";
    case GemmPolicy::kDnnl: return "onednn";
  }
  return "?";
}

void set_gemm_policy(GemmPolicy p) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.policy_set = true;
  s.policy = p;
  s.choices.clear();
}

Status use_gemm_choice_file(const std::string& path) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.file = path;
  if (path.empty()) return Status::ok();
  std::map<ChoiceKey, GemmChoice> loaded;
  STRATA_RETURN_IF_ERROR(merge_file(path, loaded));
  for (const auto& [k, c] : loaded) s.choices[k] = c;
  return Status::ok();
}

GemmPolicy gemm_policy() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.policy_set) {
    s.policy = policy_from_env();
    s.policy_set = true;
  }
  return s.policy;
}

GemmPath choose_gemm_path(DType w_type, const void* w, int64_t n_in, int64_t n_out, int64_t n_rows) {
  if (n_rows < kDnnlMinRows || n_out <= 0 || !dnnl_gemm_supports(w_type)) return GemmPath::kNative;
  const GemmPolicy policy = gemm_policy();
  if (policy == GemmPolicy::kNative) return GemmPath::kNative;
  if (policy == GemmPolicy::kDnnl || !qgemm_supports(w_type)) return any_dnnl();
  const int64_t bucket = bucket_of(n_rows);
  const ChoiceKey key{int(w_type), n_in, n_out, bucket, int(active_cpu_isa())};
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.choices.find(key);
    if (it != s.choices.end()) return it->second.path;
    // Another process may have measured it since the file was loaded.
    if (!s.file.empty()) {
      std::map<ChoiceKey, GemmChoice> now;
      if (merge_file(s.file, now).is_ok()) {
        for (const auto& [k, c] : now) s.choices.emplace(k, c);
      }
      it = s.choices.find(key);
      if (it != s.choices.end()) return it->second.path;
    }
  }
  const GemmChoice c = measure(w_type, w, n_in, n_out, bucket);
  std::lock_guard<std::mutex> lock(s.mu);
  const auto [it, added] = s.choices.emplace(key, c);
  if (added) write_file(s);
  return it->second.path;
}

std::vector<GemmChoice> gemm_choices() {
  const bool in_effect = gemm_policy() == GemmPolicy::kAuto;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<GemmChoice> out;
  if (!in_effect) return out;
  for (const auto& [k, c] : s.choices) out.push_back(c);
  return out;
}

std::string gemm_choice_json(const GemmChoice& c) { return to_json(c).dump(); }

DnnlPrecision dnnl_precision_of(GemmPath p) {
  return p == GemmPath::kDnnlBF16 ? DnnlPrecision::kBF16 : DnnlPrecision::kF32;
}

std::string describe(const GemmChoice& c) {
  char buf[256];
  char rows[48];
  if (c.rows >= kMaxBucketRows) {
    std::snprintf(rows, sizeof rows, "%lld+", (long long)c.rows);
  } else {
    std::snprintf(rows, sizeof rows, "%lld-%lld", (long long)c.rows, 2 * (long long)c.rows - 1);
  }
  std::snprintf(buf, sizeof buf, "%s %lldx%lld, %s rows: %s (", std::string(dtype_name(c.w_type)).c_str(),
                (long long)c.n_in, (long long)c.n_out, rows, gemm_path_name(c.path));
  std::string s = buf;
  auto add = [&](const char* name, double ms) {
    if (ms <= 0) return;
    if (s.back() != '(') s += ", ";
    std::snprintf(buf, sizeof buf, "%s %.2f ms", name, ms);
    s += buf;
  };
  add("qgemm", c.native_ms);
  add("onednn-f32", c.dnnl_f32_ms);
  add("onednn-bf16", c.dnnl_bf16_ms);
  return s + ")";
}

}  // namespace strata
