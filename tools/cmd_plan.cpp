// `strata plan`: what fits where and how fast, for a model file or a catalog
// model on this machine or on machines described by hardware files; ranks
// candidates, tries the single changes that could help each, sketches a
// distributed deployment when no box is enough, and with --validate runs
// `strata bench` to print predicted against measured.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "offload/calibrate.h"
#include "offload/hardware_file.h"
#include "offload/model_catalog.h"
#include "offload/parts_catalog.h"
#include "offload/placement.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/model/arch.h"
#include "runtime/model/plan_input.h"
#include "tools/commands.h"
#include "tools/plan_report.h"

namespace strata::tools {
namespace {

struct PlanArgs {
  std::string model_file;
  std::string model_name;
  std::string quant = "Q4_K_M";
  bool this_machine = false;
  std::vector<std::string> hardware;
  std::vector<std::string> compare;
  uint32_t context = 8192, seqs = 1, prompt = 1024, answer = 512;
  uint32_t users = 0;
  double tok_per_user = 0;
  double gpu_budget_gb = 0;
  bool no_gpu = false, no_nvme = false, no_numa = false, no_advice = false;
  std::string format = "text";
  std::string out;
  bool validate = false;
  int validate_prompt = 128, validate_gen = 32, validate_reps = 3;
  bool quick = false, recalibrate = false;
  std::string command;
};

HardwareProfile scaled(HardwareProfile h, double factor, bool memory_bw, bool kernels) {
  auto sc = [&](Figure& f) {
    f.value *= factor;
    f.lo *= factor;
    f.hi *= factor;
  };
  if (memory_bw) {
    for (NumaSpec& n : h.numa) sc(n.read_gbps);
    sc(h.cross_numa_gbps);
  }
  if (kernels) {
    for (KernelRate& k : h.cpu_kernels) {
      sc(k.decode_gbps);
      sc(k.prefill_gops);
    }
  }
  return h;
}

// The single changes worth trying on a candidate, each a new profile.
std::vector<std::pair<std::string, HardwareProfile>> hardware_changes(const HardwareProfile& h, bool spilled) {
  std::vector<std::pair<std::string, HardwareProfile>> v;
  const CpuPart* cpu = match_cpu_model_string(h.cpu.model);
  if (!cpu) {
    auto c = find_cpu(h.cpu.model);
    if (c.is_ok()) cpu = *c;
  }
  if (h.cpu.sockets == 1 && cpu && cpu->max_sockets >= 2) {
    HardwareProfile x = scaled(h, 2.0, false, true);
    const size_t n = x.numa.size();
    for (size_t i = 0; i < n; ++i) {
      NumaSpec s = x.numa[i];
      s.index = static_cast<int>(n + i);
      s.package = 1;
      x.numa.push_back(s);
    }
    x.cpu.sockets = 2;
    x.memory.bytes *= 2;
    if (!x.cross_numa_gbps.known()) {
      const StreamEfficiency& e = cross_numa_share(true);
      const Figure& l = x.numa[0].read_gbps;
      x.cross_numa_gbps = {l.value * e.value, l.lo * e.lo, l.hi * e.hi, "assumed from the catalog's cross-socket share"};
    }
    v.push_back({"a second " + h.cpu.model + " socket with the same memory", x});
  }
  if (h.memory.channels_per_socket > 0 && h.memory.channels_max_per_socket > h.memory.channels_per_socket) {
    const double f = double(h.memory.channels_max_per_socket) / h.memory.channels_per_socket;
    HardwareProfile x = scaled(h, f, true, false);
    for (NumaSpec& n : x.numa) n.dram_bytes = static_cast<uint64_t>(double(n.dram_bytes) * f);
    x.memory.channels_per_socket = h.memory.channels_max_per_socket;
    x.memory.bytes = static_cast<uint64_t>(double(x.memory.bytes) * f);
    v.push_back({"all " + std::to_string(h.memory.channels_max_per_socket) + " memory channels populated (" +
                     std::to_string(h.memory.channels_per_socket) + " now)",
                 x});
  }
  if (!h.gpus.empty() && h.gpus[0].pcie_gen > 0 && h.gpus[0].pcie_gen < 5) {
    HardwareProfile x = h;
    GpuSpec& g = x.gpus[0];
    const double f = pcie_x16_gbps(5) / std::max(pcie_x16_gbps(g.pcie_gen), 1.0);
    g.h2d_gbps.value *= f;
    g.h2d_gbps.lo *= f;
    g.h2d_gbps.hi *= f;
    g.pcie_gen = 5;
    v.push_back({"PCIe 5.0 link to the GPU (" + std::to_string(h.gpus[0].pcie_gen) + ".0 now)", x});
  }
  if (!h.gpus.empty()) {
    const GpuSpec& g = h.gpus[0];
    const GpuPart* best = nullptr;
    for (const GpuPart& p : gpu_parts()) {
      const uint64_t vram = static_cast<uint64_t>(p.vram_gib * double(uint64_t{1} << 30));
      if (vram <= g.vram_bytes + (uint64_t{1} << 30)) continue;
      if (!best || p.vram_gib < best->vram_gib || (p.vram_gib == best->vram_gib && p.mem_gbps > best->mem_gbps)) best = &p;
    }
    if (best) {
      HardwareProfile x = h;
      GpuSpec& ng = x.gpus[0];
      ng.name = best->name;
      ng.vram_bytes = static_cast<uint64_t>(best->vram_gib * double(uint64_t{1} << 30));
      ng.pcie_gen = 0;
      ng.gemv_gbps = Figure{};
      ng.h2d_gbps = Figure{};
      fill_nominal_gpu(ng, *best);
      v.push_back({"a bigger GPU: " + std::string(best->name) + " (" + sig3(best->vram_gib) + " GiB) instead of " + g.name, x});
    }
  } else {
    auto p = find_gpu("RTX 4090");
    if (p.is_ok()) {
      HardwareProfile x = h;
      GpuSpec g;
      g.name = (*p)->name;
      g.vram_bytes = static_cast<uint64_t>((*p)->vram_gib * double(uint64_t{1} << 30));
      g.pcie_width = 16;
      fill_nominal_gpu(g, **p);
      x.gpus.push_back(g);
      v.push_back({"add a GPU: " + g.name, x});
    }
  }
  if (spilled) {
    HardwareProfile x = h;
    for (NumaSpec& n : x.numa) n.dram_bytes *= 2;
    x.memory.bytes *= 2;
    v.push_back({"twice the DRAM (" + gbytes(double(h.dram_bytes()) * 2) + ")", x});
  }
  return v;
}

// The other quantization worth comparing: Q8_0 for 4-bit-or-less models, Q4_K_M otherwise.
std::string other_quant(const ModelDesc& m) {
  const std::string q = m.quant;
  const bool high = q == "Q8_0" || q == "q8_0" || q == "BF16" || q == "bf16" || q == "F16" || q == "f16" ||
                    q == "FP8" || q == "INT8" || q == "Q6_K" || q == "q6_k";
  return high ? "Q4_K_M" : "Q8_0";
}

Candidate make_candidate(const ModelDesc& model, const HardwareProfile& hw, const PlanOptions& opt, bool advice) {
  Candidate c;
  c.hw = hw;
  auto p = plan_placement(model, hw, opt);
  if (!p.is_ok()) {
    c.plan.feasible = false;
    c.plan.shortfalls.push_back(p.status().message());
    return c;
  }
  c.plan = std::move(p).value();
  c.llama_cpp = llama_cpp_args(model, c.plan.placement);
  if (c.plan.feasible && hw.price_usd > 0) c.tok_s_per_kusd = c.plan.decode_single.tok_s.value / (hw.price_usd / 1000);
  if (!advice) return c;
  const double before = c.plan.feasible ? c.plan.decode_single.tok_s.value : 0;
  auto score = [&](const std::string& what, const ModelDesc& m, const HardwareProfile& h) {
    Advice a;
    a.change = what;
    auto q = plan_placement(m, h, opt);
    if (q.is_ok() && q->feasible) {
      a.feasible = true;
      a.tok_s = q->decode_single.tok_s.value;
      a.gain = before > 0 ? a.tok_s / before - 1 : 1e9;
    }
    c.tried.push_back(a);
  };
  for (const auto& [what, h] : hardware_changes(hw, !c.plan.feasible || c.plan.placement.nvme_expert_bytes > 0)) {
    score(what, model, h);
  }
  // The same model at the other quantization, from its dimensions.
  auto scheme = find_quant_scheme(other_quant(model));
  if (scheme.is_ok()) {
    CatalogModel cm{"", model.name, {}, model.dims, "", 0, 0};
    ModelDesc alt = catalog_model_desc(cm, *scheme);
    score(model.quant + " -> " + scheme->name + " (" + gbytes(double(alt.routed_bytes + alt.resident_bytes)) + ")", alt, hw);
  }
  std::stable_sort(c.tried.begin(), c.tried.end(), [](const Advice& a, const Advice& b) {
    if (a.feasible != b.feasible) return a.feasible;
    return a.tok_s > b.tok_s;
  });
  return c;
}

std::string base_name(const std::string& p) { return p.substr(p.find_last_of('/') + 1); }

// Runs this binary's `bench` on the model file and returns its JSON.
Result<nlohmann::json> run_bench(const std::string& file, int n_prompt, int n_gen, int reps) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return io_error("--validate: cannot find the strata binary (/proc/self/exe)");
  self[n] = 0;
  std::string cmd = "'" + std::string(self) + "' bench -m '" + file + "' -p " + std::to_string(n_prompt) + " -n " +
                    std::to_string(n_gen) + " -r " + std::to_string(reps) + " --json --probe-mib 64 --probe-runs 1";
  if (file.find('\'') != std::string::npos) return invalid_argument("--validate: model path must not contain quotes");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return io_error("--validate: cannot run " + cmd);
  std::string out;
  std::array<char, 4096> buf;
  size_t got;
  while ((got = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), got);
  const int rc = pclose(pipe);
  if (rc != 0) return io_error("--validate: strata bench failed (exit " + std::to_string(WEXITSTATUS(rc)) + ")");
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded()) return invalid_format("--validate: strata bench printed no JSON");
  return j;
}

// Predicted tok/s of strata bench's pp and tg tests under one profile.
void predict(const ModelDesc& model, const HardwareProfile& hw, const Placement& pl, int np, int ng, int n_batch,
             Figure* pp, Figure* tg) {
  CostModel cm(model, hw);
  if (np > 0) *pp = cm.prefill_with(pl, static_cast<uint32_t>(np), static_cast<uint32_t>(n_batch), PrefillStrategy::kCpu).tok_s;
  if (ng > 0) {
    // tg from an empty cache: mean step time over contexts 1..ng.
    double s[3] = {0, 0, 0};
    for (int c = 0; c < ng; ++c) {
      DecodeEstimate d = cm.decode(pl, 1, static_cast<uint32_t>(c + 1));
      s[0] += d.step.total.value, s[1] += d.step.total.lo, s[2] += d.step.total.hi;
    }
    *tg = make_range(ng / s[0], ng / s[2], ng / s[1], "tokens per second");
  }
}

double dram_gbps(const HardwareProfile& h) {
  double g = 0;
  for (const NumaSpec& n : h.numa) g += n.read_gbps.value;
  return g;
}

// Probes, benchmarks, probes again: a shared machine changes speed from one
// minute to the next, so a comparison only counts when the DRAM probe before
// and after the benchmark agree within 10 % (up to three attempts; the last
// is reported either way, with both probe figures).
Status validate(const PlanArgs& a, const ModelDesc& model, const CalibrateOptions& co, HardwareProfile before,
                PlanReport* rep) {
  if (a.model_file.empty()) return invalid_argument("--validate: expected a model file (-m FILE) to benchmark");
  PlanOptions o = rep->options;
  o.gpu = -1;  // this machine's run is CPU-only: bench has no GPU path yet
  const std::string name = base_name(a.model_file);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    STRATA_ASSIGN_OR_RETURN(Plan plan, plan_placement(model, before, o));
    if (!plan.feasible) return out_of_memory("--validate: the model does not fit this machine: " + plan.shortfalls.front());
    STRATA_ASSIGN_OR_RETURN(nlohmann::json j, run_bench(a.model_file, a.validate_prompt, a.validate_gen, a.validate_reps));
    STRATA_ASSIGN_OR_RETURN(HardwareProfile after, this_machine_profile(co));
    const double g0 = dram_gbps(before), g1 = dram_gbps(after);
    const bool stable = g0 > 0 && std::fabs(g1 / g0 - 1) <= 0.10;
    if (!stable && attempt < 3) {
      before = std::move(after);
      continue;
    }
    char note[160];
    std::snprintf(note, sizeof note, "DRAM probe %.1f GB/s before, %.1f after%s (attempt %d)", g0, g1,
                  stable ? "" : ": machine state changed, comparison unreliable", attempt);
    for (const auto& t : j["tests"]) {
      ValidationRow v;
      v.model = name;
      v.test = t.value("test", "");
      v.measured = t.value("avg_ts", 0.0);
      v.stddev = t.value("stddev_ts", 0.0);
      v.note = note;
      const int np = t.value("n_prompt", 0), ng = t.value("n_gen", 0), nb = t.value("n_batch", 512);
      // The prediction under both probes: their mean, and the span of both ranges.
      Figure p0, p1, t0, t1;
      predict(model, before, plan.placement, np, ng, nb, &p0, &t0);
      predict(model, after, plan.placement, np, ng, nb, &p1, &t1);
      const Figure& x = np > 0 ? p0 : t0;
      const Figure& y = np > 0 ? p1 : t1;
      v.predicted = make_range((x.value + y.value) / 2, std::min(x.lo, y.lo), std::max(x.hi, y.hi), "tokens per second");
      v.tolerance_pct = np > 0 ? 25 : 15;
      v.error_pct = v.measured > 0 ? 100.0 * (v.predicted.value - v.measured) / v.measured : 0;
      v.within = std::fabs(v.error_pct) <= v.tolerance_pct;
      rep->validation.push_back(v);
    }
    break;
  }
  return Status::ok();
}

// The inputs as a canonical command line (file names without directories,
// so reports of the same inputs compare equal wherever they were run).
std::string echo_command(const PlanArgs& a) {
  std::string c = "strata plan";
  if (!a.model_file.empty()) c += " -m " + base_name(a.model_file);
  else c += " --model " + a.model_name + " --quant " + a.quant;
  if (a.this_machine) c += " --this-machine";
  for (const std::string& h : a.hardware) c += " --hardware " + base_name(h);
  if (!a.compare.empty()) {
    c += " --compare";
    for (const std::string& h : a.compare) c += " " + base_name(h);
  }
  c += " --context " + std::to_string(a.context) + " --prompt " + std::to_string(a.prompt) + " --answer " +
       std::to_string(a.answer);
  if (a.users) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", a.tok_per_user);
    c += " --users " + std::to_string(a.users) + " --tok-per-user " + buf;
  } else if (a.seqs != 1) {
    c += " --seqs " + std::to_string(a.seqs);
  }
  if (a.gpu_budget_gb > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", a.gpu_budget_gb);
    c += " --gpu-budget " + std::string(buf);
  }
  if (a.no_gpu) c += " --no-gpu";
  if (a.no_nvme) c += " --no-nvme";
  if (a.no_numa) c += " --no-numa";
  if (a.validate) c += " --validate";
  return c;
}

void run(const PlanArgs& a) {
  // Model.
  if (a.model_file.empty() == a.model_name.empty()) {
    return fail(invalid_argument("plan: expected a model: -m FILE or --model NAME (" + catalog_model_list() + ")"));
  }
  PlanReport rep;
  rep.command = a.command;
  if (!a.model_file.empty()) {
    auto m = model_desc_from_gguf(a.model_file);
    if (!m.is_ok()) return fail(m.status());
    rep.model = std::move(m).value();
  } else {
    auto cm = find_catalog_model(a.model_name);
    if (!cm.is_ok()) return fail(cm.status());
    auto q = find_quant_scheme(a.quant);
    if (!q.is_ok()) return fail(q.status());
    rep.model = catalog_model_desc(**cm, *q);
    rep.native_format = (*cm)->native_format;
  }
  const ModelDesc& model = rep.model;

  // Workload and options.
  PlanOptions& opt = rep.options;
  opt.workload.context = a.context;
  opt.workload.n_seq = a.users > 0 ? a.users : a.seqs;
  opt.workload.prompt = a.prompt;
  opt.workload.answer = a.answer;
  opt.gpu = a.no_gpu ? -1 : 0;
  opt.gpu_budget_bytes = static_cast<uint64_t>(a.gpu_budget_gb * 1e9);
  opt.allow_nvme = !a.no_nvme;
  opt.numa_partition = !a.no_numa;
  if (a.context < 1) return fail(invalid_argument("--context: expected >= 1 tokens, got 0"));

  // Hardware.
  std::vector<HardwareProfile> profiles;
  CalibrateOptions co;
  if (a.this_machine) {
    // The model's own weight types get their kernel rates measured (not
    // f32: routers and norms only; attention's rate has its own estimate).
    for (const TensorDesc& t : rep.model.shape.tensors) {
      if (t.n_dims >= 2 && t.dtype != DType::kF32 && std::find(co.kernel_types.begin(), co.kernel_types.end(), t.dtype) == co.kernel_types.end()) {
        co.kernel_types.push_back(t.dtype);
      }
    }
    co.quick = a.quick;
    co.recalibrate = a.recalibrate;
    co.profile_path = default_profile_path();
    if (a.validate) {
      // Predicted and measured must see the same machine state (load,
      // clocks, page cache): probe DRAM and kernels afresh, just before the
      // benchmark, and leave the cache alone.
      co.use_cache = false;
      co.quick = true;
      co.probe_storage = false;
      co.probe_gpu = false;
    }
    auto p = this_machine_profile(co);
    if (!p.is_ok()) return fail(p.status());
    profiles.push_back(std::move(p).value());
  }
  std::vector<std::string> files = a.hardware;
  files.insert(files.end(), a.compare.begin(), a.compare.end());
  for (const std::string& f : files) {
    auto p = load_hardware(f);
    if (!p.is_ok()) return fail(p.status());
    profiles.push_back(std::move(p).value());
  }
  if (profiles.empty()) {
    return fail(invalid_argument("plan: expected hardware: --this-machine, --hardware FILE or --compare FILE..."));
  }

  const bool advice = !a.no_advice;
  for (const HardwareProfile& h : profiles) rep.candidates.push_back(make_candidate(model, h, opt, advice));
  // Rank: feasible first; by tok/s per $1000 when every feasible candidate has a price, else tok/s.
  bool all_priced = true;
  for (const Candidate& c : rep.candidates) all_priced &= !c.plan.feasible || c.hw.price_usd > 0;
  std::stable_sort(rep.candidates.begin(), rep.candidates.end(), [&](const Candidate& x, const Candidate& y) {
    if (x.plan.feasible != y.plan.feasible) return x.plan.feasible;
    if (all_priced && rep.candidates.size() > 1) return x.tok_s_per_kusd > y.tok_s_per_kusd;
    return x.plan.decode_single.tok_s.value > y.plan.decode_single.tok_s.value;
  });

  if (a.users > 0) {
    rep.users = a.users;
    rep.tok_per_user = a.tok_per_user;
    bool reached = false;
    for (const Candidate& c : rep.candidates) {
      reached |= c.plan.feasible && c.plan.decode_batch.tok_s_per_seq.value >= a.tok_per_user;
    }
    rep.beyond_one_box = !reached;
    if (!reached) {
      rep.cluster = sketch_cluster(model, rep.native_format.empty() ? "BF16" : rep.native_format, a.users,
                                   a.tok_per_user, a.context);
    }
  }

  if (a.validate) {
    if (!a.this_machine) return fail(invalid_argument("--validate: expected --this-machine (it benchmarks this machine)"));
    Status s = validate(a, model, co, profiles.front(), &rep);
    if (!s.is_ok()) return fail(s);
  }

  std::string text;
  if (a.format == "text") text = render_text(rep, false);
  else if (a.format == "md") text = render_text(rep, true);
  else if (a.format == "json") text = render_json(rep);
  else text = render_html(rep);
  if (a.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    std::ofstream f(a.out, std::ios::binary);
    f << text;
    if (!f.good()) return fail(io_error("-o " + a.out + ": cannot write"));
    std::fprintf(stderr, "strata plan: wrote %s (%zu bytes)\n", a.out.c_str(), text.size());
  }
  for (const ValidationRow& v : rep.validation) {
    if (!v.within) set_exit_code(2);
  }
}

}  // namespace

void register_plan(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "What fits where and how fast: placement, predicted speed, bottleneck and the cheapest improvement");
  cmd->add_option("-m,--model-file", a->model_file, "GGUF model file (metadata and tensor table only are read)");
  cmd->add_option("--model", a->model_name, "Catalog model: " + catalog_model_list());
  cmd->add_option("--quant", a->quant, "Quantization of a catalog model (default Q4_K_M): " + quant_scheme_list());
  cmd->add_flag("--this-machine", a->this_machine, "Plan for this machine (topology + calibration, cached)");
  cmd->add_option("--hardware", a->hardware, "Hardware file(s) (YAML or JSON, see docs/hardware-file.md)");
  cmd->add_option("--compare", a->compare, "Hardware files to rank side by side");
  cmd->add_option("--context", a->context, "Tokens of context per sequence (default 8192)")->check(CLI::Range(1u, 1u << 24));
  cmd->add_option("--seqs", a->seqs, "Concurrent sequences (default 1)")->check(CLI::Range(1u, 1u << 16));
  cmd->add_option("--prompt", a->prompt, "Typical prompt tokens (default 1024)")->check(CLI::Range(1u, 1u << 24));
  cmd->add_option("--answer", a->answer, "Typical answer tokens (default 512)")->check(CLI::Range(1u, 1u << 24));
  cmd->add_option("--users", a->users, "Concurrent users to serve (sets --seqs; with --tok-per-user)")
      ->check(CLI::Range(1u, 1u << 20));
  cmd->add_option("--tok-per-user", a->tok_per_user, "Decode tok/s each user needs")->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--gpu-budget", a->gpu_budget_gb, "Use at most this many GB of VRAM")->check(CLI::Range(0.0, 1e5));
  cmd->add_flag("--no-gpu", a->no_gpu, "Plan for the CPU only");
  cmd->add_flag("--no-nvme", a->no_nvme, "Never read experts from NVMe");
  cmd->add_flag("--no-numa", a->no_numa, "Interleave pages instead of binding experts to NUMA nodes");
  cmd->add_flag("--no-advice", a->no_advice, "Skip evaluating single changes");
  cmd->add_option("--format", a->format, "text, md, html or json (default text)")
      ->check(CLI::IsMember({"text", "md", "html", "json"}));
  cmd->add_option("-o,--output", a->out, "Write the report to this file");
  cmd->add_flag("--validate", a->validate, "Run strata bench on -m FILE and print predicted vs measured");
  cmd->add_option("--validate-prompt", a->validate_prompt, "Prompt tokens of the validation run (default 128)")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--validate-gen", a->validate_gen, "Generated tokens of the validation run (default 32)")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--validate-reps", a->validate_reps, "Repetitions of the validation run (default 3)")
      ->check(CLI::Range(1, 100));
  cmd->add_flag("--quick", a->quick, "Short calibration probes (--this-machine)");
  cmd->add_flag("--recalibrate", a->recalibrate, "Probe again even if this machine's profile is cached");
  cmd->callback([a] {
    a->command = echo_command(*a);
    run(*a);
  });
}

}  // namespace strata::tools
