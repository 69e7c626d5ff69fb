// Text, Markdown and JSON renderings of a plan report.
#include "tools/plan_report.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace strata::tools {
namespace {

using json = nlohmann::ordered_json;

std::string f(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string ms(const Figure& fig) { return range_str(fig, 1e3) + " ms"; }

std::string kib(double b) { return f("%.1f KiB", b / 1024); }

std::string model_line(const ModelDesc& m) {
  std::string s = m.name + ", " + m.quant + " (" + m.source + "): " + sig3(double(m.total_params) / 1e9) +
                  " B parameters, " + sig3(double(m.active_params) / 1e9) + " B active per token, " +
                  gbytes(double(m.routed_bytes + m.resident_bytes));
  return s;
}

std::string model_detail(const ModelDesc& m) {
  std::string s;
  if (m.is_moe()) {
    s = "routed experts " + gbytes(double(m.routed_bytes)) + " (" + std::to_string(m.moe_layers.size()) +
        " MoE layers x " + std::to_string(m.dims.n_expert) + ", " + std::to_string(m.dims.n_expert_used) +
        " per token), everything else " + gbytes(double(m.resident_bytes)) + "; ";
  } else {
    s = "dense: every token reads all " + gbytes(double(m.resident_bytes)) + "; ";
  }
  s += "KV cache " + kib(double(m.kv_bytes_per_token)) + " per token (" +
       (m.dims.attention() == AttentionKind::kMla ? "MLA latent" : "GQA, " + std::to_string(m.dims.n_head_kv) + " kv heads") + ")";
  return s;
}

std::string hw_line(const HardwareProfile& h) {
  std::string s = h.cpu.model.empty() ? "CPU" : h.cpu.model;
  s += " x" + std::to_string(h.cpu.sockets) + " (" + std::to_string(h.cpu.sockets * h.cpu.cores_per_socket) + " cores)";
  s += ", " + gbytes(double(h.dram_bytes()));
  if (!h.memory.type.empty()) {
    s += " " + h.memory.type;
    if (h.memory.channels_per_socket) s += " x " + std::to_string(h.memory.channels_per_socket) + " ch/socket";
  }
  s += ", " + std::to_string(h.numa.size()) + " NUMA node(s)";
  for (const GpuSpec& g : h.gpus) s += ", " + g.name + " " + gbytes(double(g.vram_bytes));
  if (h.gpus.empty()) s += ", no GPU";
  for (const StorageSpec& st : h.storage) s += ", " + st.name;
  if (h.price_usd > 0) s += ", $" + f("%.0f", h.price_usd);
  return s;
}

std::vector<std::string> rate_lines(const HardwareProfile& h) {
  std::vector<std::string> v;
  for (size_t i = 0; i < h.numa.size(); ++i) {
    const NumaSpec& n = h.numa[i];
    v.push_back("node " + std::to_string(i) + ": " + gbytes(double(n.dram_bytes)) + ", " + std::to_string(n.cores) +
                " cores, read " + range_str(n.read_gbps) + " GB/s [" + n.read_gbps.source + "]");
  }
  if (h.numa.size() > 1 && h.cross_numa_gbps.known()) {
    v.push_back("cross-node read " + range_str(h.cross_numa_gbps) + " GB/s [" + h.cross_numa_gbps.source + "]");
  }
  for (const GpuSpec& g : h.gpus) {
    v.push_back(g.name + ": memory " + range_str(g.mem_gbps) + " GB/s, host->device " + range_str(g.h2d_gbps) +
                " GB/s (PCIe " + std::to_string(g.pcie_gen) + ".0 x" + std::to_string(g.pcie_width) + "), BF16 " +
                range_str(g.bf16_tflops) + " TFLOP/s");
  }
  for (const KernelRate& k : h.cpu_kernels) {
    v.push_back("CPU kernel " + std::string(dtype_name(k.type)) + ": decode " + range_str(k.decode_gbps) +
                " GB/s, prefill " + range_str(k.prefill_gops) + " GOP/s [" + k.decode_gbps.source + "]");
  }
  for (const StorageSpec& s : h.storage) {
    v.push_back(s.name + ": random read " + range_str(s.rand_read_gbps) + " GB/s, " + gbytes(double(s.capacity_bytes)));
  }
  return v;
}

std::string breakdown_line(const StepBreakdown& s) {
  std::string out;
  auto add = [&](const char* name, const Figure& x) {
    if (std::fabs(x.value) < 1e-7 && std::fabs(x.hi) < 1e-7 && std::fabs(x.lo) < 1e-7) return;
    out += std::string(out.empty() ? "" : ", ") + name + " " + ms(x);
  };
  add("DRAM experts", s.dram_experts);
  add("CPU attention/other", s.cpu_other);
  add("GPU", s.gpu);
  add("PCIe", s.pcie);
  add("NVMe", s.nvme);
  add("sync", s.sync);
  add("overlap", s.overlap);
  return out;
}

json fig(const Figure& x) { return {{"value", x.value}, {"lo", x.lo}, {"hi", x.hi}}; }

json breakdown_json(const StepBreakdown& s) {
  return {{"dram_experts_s", fig(s.dram_experts)}, {"cpu_other_s", fig(s.cpu_other)}, {"gpu_s", fig(s.gpu)},
          {"pcie_s", fig(s.pcie)},                 {"nvme_s", fig(s.nvme)},           {"sync_s", fig(s.sync)},
          {"overlap_s", fig(s.overlap)},           {"total_s", fig(s.total)}};
}

json decode_json(const DecodeEstimate& d) {
  return {{"batch", d.batch},   {"context", d.context}, {"tok_s", fig(d.tok_s)},
          {"tok_s_per_seq", fig(d.tok_s_per_seq)},      {"distinct_experts_per_layer", d.distinct_experts},
          {"bottleneck", d.bottleneck},                 {"step", breakdown_json(d.step)}};
}

json prefill_json(const PrefillEstimate& p) {
  return {{"prompt", p.prompt},
          {"strategy", prefill_strategy_name(p.strategy)},
          {"seconds", fig(p.seconds)},
          {"tok_s", fig(p.tok_s)}};
}

}  // namespace

std::string sig3(double v) {
  if (!std::isfinite(v)) return "-";
  const double a = std::fabs(v);
  if (a >= 100) return f("%.0f", v);
  if (a >= 10) return f("%.1f", v);
  if (a >= 1) return f("%.2f", v);
  if (a == 0) return "0";
  return f("%.3g", v);
}

std::string range_str(const Figure& x, double scale) {
  const double v = x.value * scale, lo = x.lo * scale, hi = x.hi * scale;
  if (x.value == 0 && x.lo == 0 && x.hi == 0) return "?";
  if (sig3(lo) == sig3(hi) || (x.lo == 0 && x.hi == 0)) return sig3(v);
  return sig3(v) + " (" + sig3(lo) + "-" + sig3(hi) + ")";
}

std::string gbytes(double b) {
  if (b >= 100e9) return f("%.0f GB", b / 1e9);
  if (b >= 1e9) return f("%.1f GB", b / 1e9);
  return f("%.2f GB", b / 1e9);
}

std::string render_text(const PlanReport& r, bool md) {
  std::string o;
  auto line = [&](const std::string& s) { o += s + "\n"; };
  auto head = [&](const std::string& s) {
    o += "\n";
    line(md ? "## " + s : s);
  };
  auto item = [&](const std::string& s) { line(md ? "- " + s : "  " + s); };
  const PlanOptions& opt = r.options;
  const Workload& w = opt.workload;

  line(md ? "# strata plan: " + r.model.name + " " + r.model.quant : "strata plan: " + r.model.name + " " + r.model.quant);
  if (!r.command.empty()) line(md ? "`" + r.command + "`" : r.command);

  head("Inputs");
  item("model: " + model_line(r.model));
  item("       " + model_detail(r.model));
  for (const std::string& n : r.model.notes) item("       " + n);
  item("workload: context " + std::to_string(w.context) + " tokens, " + std::to_string(w.n_seq) +
       " concurrent sequence(s), prompt " + std::to_string(w.prompt) + ", answer " + std::to_string(w.answer) +
       (r.users ? ", target " + std::to_string(r.users) + " users x " + sig3(r.tok_per_user) + " tok/s" : ""));
  if (opt.gpu_budget_bytes) item("GPU budget: " + gbytes(double(opt.gpu_budget_bytes)));
  for (const Candidate& c : r.candidates) {
    item("hardware: " + c.hw.name + ": " + hw_line(c.hw));
    for (const std::string& l : rate_lines(c.hw)) item("          " + l);
  }

  if (r.candidates.size() > 1) {
    head("Candidates, ranked");
    if (md) {
      line("| # | hardware | decode tok/s (1 seq) | decode tok/s (" + std::to_string(w.n_seq) +
           " seq) | prefill tok/s | tok/s per $1000 | single change that helps most |");
      line("| ---: | --- | ---: | ---: | ---: | ---: | --- |");
    }
    int i = 0;
    for (const Candidate& c : r.candidates) {
      ++i;
      const std::string best = c.tried.empty() ? "-" : c.tried.front().change + (c.tried.front().feasible ? " -> " + sig3(c.tried.front().tok_s) + " tok/s" : "");
      const std::string price = c.tok_s_per_kusd > 0 ? sig3(c.tok_s_per_kusd) : "-";
      if (md) {
        line("| " + std::to_string(i) + " | " + c.hw.name + " | " +
             (c.plan.feasible ? range_str(c.plan.decode_single.tok_s) : "does not fit") + " | " +
             (c.plan.feasible ? range_str(c.plan.decode_batch.tok_s) : "-") + " | " +
             (c.plan.feasible ? range_str(c.plan.prefill.tok_s) : "-") + " | " + price + " | " + best + " |");
      } else {
        line("  " + std::to_string(i) + ". " + c.hw.name + ": " +
             (c.plan.feasible ? range_str(c.plan.decode_single.tok_s) + " tok/s decode, " +
                                    range_str(c.plan.prefill.tok_s) + " tok/s prefill"
                              : "does not fit") +
             (c.tok_s_per_kusd > 0 ? ", " + price + " tok/s per $1000" : "") + "; best change: " + best);
      }
    }
  }

  for (const Candidate& c : r.candidates) {
    const Plan& p = c.plan;
    head("Plan for " + c.hw.name + (p.feasible ? "" : " (does not fit)"));
    for (const std::string& d : p.decisions) item(d);
    for (const std::string& s : p.shortfalls) item("MISSING: " + s);
    if (!p.feasible) {
      if (!c.tried.empty() && c.tried.front().feasible) {
        item("the single change that helps most: " + c.tried.front().change + " (" + sig3(c.tried.front().tok_s) +
             " tok/s)");
      }
      continue;
    }
    const Placement& pl = p.placement;
    std::string mem = "memory: ";
    if (pl.has_gpu()) {
      mem += "VRAM " + gbytes(double(pl.gpu_weight_bytes + pl.gpu_kv_bytes + pl.gpu_expert_bytes + pl.gpu_scratch_bytes)) +
             " of " + gbytes(double(p.capacity.vram_total_bytes)) + "; ";
    }
    for (size_t i = 0; i < p.node_used_bytes.size(); ++i) {
      mem += "node " + std::to_string(i) + " DRAM " + gbytes(double(p.node_used_bytes[i])) + " of " +
             gbytes(double(p.capacity.node_bytes[i])) + " usable; ";
    }
    mem += "NVMe " + gbytes(double(pl.nvme_expert_bytes));
    item(mem);

    line(md ? "\n**Performance** (ranges from the rates' lo/hi):\n" : "\n  Performance (ranges from the rates' lo/hi):");
    const DecodeEstimate& d1 = p.decode_single;
    item("decode, 1 sequence at context " + std::to_string(d1.context) + ": " + range_str(d1.tok_s) +
         " tok/s; bottleneck: " + d1.bottleneck);
    item("  per token: " + breakdown_line(d1.step) + " = " + ms(d1.step.total));
    if (w.n_seq > 1) {
      const DecodeEstimate& db = p.decode_batch;
      item("decode, " + std::to_string(w.n_seq) + " sequences: " + range_str(db.tok_s) + " tok/s in all, " +
           range_str(db.tok_s_per_seq) + " each (" + sig3(db.distinct_experts) + " distinct experts per layer per step)");
    }
    if (p.node_used_bytes.size() > 1 && pl.numa_partitioned) {
      item("with pages interleaved instead of bound to nodes: " + range_str(p.decode_interleaved.tok_s) + " tok/s");
    }
    item("prefill, " + std::to_string(p.prefill.prompt) + "-token prompt: " + range_str(p.prefill.tok_s) + " tok/s (" +
         prefill_strategy_name(p.prefill.strategy) + "); time to first token " + range_str(p.ttft) + " s");
    std::string curve = "prefill tok/s by prompt length:";
    for (const PrefillEstimate& e : p.prefill_curve) curve += " " + std::to_string(e.prompt) + ": " + sig3(e.tok_s.value) + ";";
    if (!curve.empty() && curve.back() == ';') curve.pop_back();
    item(curve);
    item("llama.cpp equivalent: llama-server -m MODEL.gguf " + c.llama_cpp);
    if (!c.tried.empty()) {
      line(md ? "\n**Single changes** (each evaluated by planning again):\n" : "\n  Single changes (each evaluated by planning again):");
      for (const Advice& a : c.tried) {
        item(a.change + ": " + (a.feasible ? sig3(a.tok_s) + " tok/s (" + (a.gain >= -0.005 ? "+" : "") + f("%.0f", std::fabs(a.gain) < 0.005 ? 0.0 : 100 * a.gain) + " %)" : "does not fit"));
      }
    }
  }

  if (r.users > 0) {
    head("Beyond one box");
    if (r.beyond_one_box) {
      item("no candidate reaches " + std::to_string(r.users) + " users x " + sig3(r.tok_per_user) + " tok/s = " +
           sig3(r.users * r.tok_per_user) + " tok/s; an expert-parallel deployment on a distributed engine:");
      for (const std::string& l : r.cluster.lines) item(l);
    } else {
      item("the best candidate serves the target on one box");
    }
  }

  if (!r.validation.empty()) {
    head("Validation: predicted vs measured (strata bench)");
    if (md) {
      line("| model | test | predicted tok/s | measured tok/s | error | tolerance | | machine state |");
      line("| --- | --- | ---: | ---: | ---: | ---: | --- | --- |");
    }
    for (const ValidationRow& v : r.validation) {
      const std::string err = (v.error_pct >= 0 ? "+" : "") + f("%.1f", v.error_pct) + " %";
      if (md) {
        line("| " + v.model + " | " + v.test + " | " + range_str(v.predicted) + " | " + sig3(v.measured) + " ± " +
             sig3(v.stddev) + " | " + err + " | ±" + f("%.0f", v.tolerance_pct) + " % | " + (v.within ? "ok" : "OUT") + " | " + v.note + " |");
      } else {
        item(v.model + " " + v.test + ": predicted " + range_str(v.predicted) + ", measured " + sig3(v.measured) +
             " ± " + sig3(v.stddev) + " tok/s: " + err + " (tolerance ±" + f("%.0f", v.tolerance_pct) + " %) " +
             (v.within ? "ok" : "OUT") + "; " + v.note);
      }
    }
  }

  head("Assumptions");
  std::vector<std::string> seen;
  auto once = [&](const std::string& s) {
    for (const std::string& x : seen) {
      if (x == s) return;
    }
    seen.push_back(s);
    item(s);
  };
  for (const Candidate& c : r.candidates) {
    for (const std::string& a : c.hw.assumptions) once(a);
    for (const std::string& a : c.plan.assumptions) once(a);
  }
  once("decode context = prompt + answer/2; KV cache f16; GB = 1e9 bytes");
  return o;
}

std::string render_json(const PlanReport& r) {
  json j;
  j["command"] = r.command;
  const ModelDesc& m = r.model;
  j["model"] = {{"name", m.name},
                {"quant", m.quant},
                {"source", m.source},
                {"arch", m.dims.arch},
                {"total_params", m.total_params},
                {"active_params", m.active_params},
                {"bytes", m.routed_bytes + m.resident_bytes},
                {"routed_bytes", m.routed_bytes},
                {"resident_bytes", m.resident_bytes},
                {"active_bytes_per_token", m.roles.active_bytes_per_token},
                {"kv_bytes_per_token", m.kv_bytes_per_token},
                {"n_layer", m.dims.n_layer},
                {"n_expert", m.dims.n_expert},
                {"n_expert_used", m.dims.n_expert_used},
                {"attention", m.dims.attention() == AttentionKind::kMla ? "MLA" : "GQA"},
                {"notes", m.notes}};
  const Workload& w = r.options.workload;
  j["workload"] = {{"context", w.context}, {"sequences", w.n_seq}, {"prompt", w.prompt}, {"answer", w.answer},
                   {"gpu_budget_bytes", r.options.gpu_budget_bytes}};
  j["candidates"] = json::array();
  for (const Candidate& c : r.candidates) {
    const Plan& p = c.plan;
    json cj;
    cj["hardware"] = c.hw.name;
    cj["price_usd"] = c.hw.price_usd;
    cj["feasible"] = p.feasible;
    cj["decisions"] = p.decisions;
    cj["shortfalls"] = p.shortfalls;
    const Placement& pl = p.placement;
    cj["placement"] = {{"gpu", pl.gpu},
                       {"n_gpu_layers", pl.n_gpu_layers},
                       {"output_on_gpu", pl.output_on_gpu},
                       {"gpu_weight_bytes", pl.gpu_weight_bytes},
                       {"gpu_kv_bytes", pl.gpu_kv_bytes},
                       {"gpu_expert_bytes", pl.gpu_expert_bytes},
                       {"gpu_scratch_bytes", pl.gpu_scratch_bytes},
                       {"gpu_expert_layers", pl.gpu_expert_layers},
                       {"dram_weight_bytes", pl.dram_weight_bytes},
                       {"dram_kv_bytes", pl.dram_kv_bytes},
                       {"node_expert_bytes", pl.node_expert_bytes},
                       {"node_traffic", pl.node_traffic},
                       {"numa_partitioned", pl.numa_partitioned},
                       {"nvme_expert_bytes", pl.nvme_expert_bytes},
                       {"prefill", prefill_strategy_name(pl.prefill)},
                       {"prefill_threshold", pl.prefill_threshold}};
    cj["capacity"] = {{"vram_bytes", p.capacity.vram_bytes},
                      {"vram_total_bytes", p.capacity.vram_total_bytes},
                      {"node_bytes", p.capacity.node_bytes},
                      {"nvme_bytes", p.capacity.nvme_bytes}};
    cj["node_used_bytes"] = p.node_used_bytes;
    if (p.feasible) {
      cj["decode_single"] = decode_json(p.decode_single);
      cj["decode_batch"] = decode_json(p.decode_batch);
      cj["decode_interleaved"] = decode_json(p.decode_interleaved);
      cj["prefill"] = prefill_json(p.prefill);
      cj["ttft_s"] = fig(p.ttft);
      cj["prefill_curve"] = json::array();
      for (const PrefillEstimate& e : p.prefill_curve) cj["prefill_curve"].push_back(prefill_json(e));
      cj["llama_cpp"] = c.llama_cpp;
    }
    cj["tok_s_per_kusd"] = c.tok_s_per_kusd;
    cj["advice"] = json::array();
    for (const Advice& a : c.tried) {
      cj["advice"].push_back({{"change", a.change}, {"feasible", a.feasible}, {"tok_s", a.tok_s}, {"gain", a.gain}});
    }
    cj["assumptions"] = c.hw.assumptions;
    for (const std::string& a : p.assumptions) cj["assumptions"].push_back(a);
    j["candidates"].push_back(std::move(cj));
  }
  if (r.users > 0) {
    j["target"] = {{"users", r.users}, {"tok_per_user", r.tok_per_user}, {"beyond_one_box", r.beyond_one_box}};
    if (r.beyond_one_box) {
      j["cluster"] = {{"n_gpus", r.cluster.n_gpus},       {"n_nodes", r.cluster.n_nodes},
                      {"gpu", r.cluster.gpu_name},        {"format", r.cluster.format},
                      {"weight_bytes", r.cluster.weight_bytes}, {"kv_bytes", r.cluster.kv_bytes},
                      {"lines", r.cluster.lines}};
    }
  }
  if (!r.validation.empty()) {
    j["validation"] = json::array();
    for (const ValidationRow& v : r.validation) {
      j["validation"].push_back({{"model", v.model},
                                 {"test", v.test},
                                 {"predicted_tok_s", fig(v.predicted)},
                                 {"measured_tok_s", v.measured},
                                 {"stddev_tok_s", v.stddev},
                                 {"error_pct", v.error_pct},
                                 {"tolerance_pct", v.tolerance_pct},
                                 {"within", v.within},
                                 {"note", v.note}});
    }
  }
  return j.dump(1) + "\n";
}

}  // namespace strata::tools
