// The HTML rendering of a plan report: one self-contained page (no scripts,
// no external files) with inline SVG charts: memory by tier and NUMA node,
// time per token by part, decode tok/s of every candidate with its range,
// and prefill tok/s against prompt length.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tools/plan_report.h"

namespace strata::tools {
namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string n(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

struct Seg {
  const char* label;
  double value;
  const char* color;
};

constexpr const char* kColors[] = {"#3b6fb6", "#e08a2c", "#4c9a52", "#b8473d", "#7d5ba6", "#8c6d4f", "#c9c9c9"};

std::string text(double x, double y, const std::string& s, const char* anchor = "start", int size = 12,
                 const char* weight = "normal") {
  return "<text x=\"" + n(x) + "\" y=\"" + n(y) + "\" font-size=\"" + std::to_string(size) + "\" text-anchor=\"" +
         anchor + "\" font-weight=\"" + weight + "\">" + esc(s) + "</text>";
}

std::string rect(double x, double y, double w, double h, const char* color, const std::string& title = "") {
  std::string r = "<rect x=\"" + n(x) + "\" y=\"" + n(y) + "\" width=\"" + n(std::max(w, 0.0)) + "\" height=\"" + n(h) +
                  "\" fill=\"" + color + "\">";
  if (!title.empty()) r += "<title>" + esc(title) + "</title>";
  return r + "</rect>";
}

std::string legend(double x, double y, const std::vector<Seg>& segs) {
  std::string s;
  for (const Seg& g : segs) {
    s += rect(x, y - 10, 12, 12, g.color) + text(x + 16, y, g.label);
    x += 24 + 7.0 * std::string(g.label).size();
  }
  return s;
}

// Horizontal stacked bars: one row per (label, segments, capacity).
struct Row {
  std::string label;
  std::vector<Seg> segs;
  double capacity;  // the bar's full width in the same unit (0: the sum)
  std::string note;
};

std::string stacked_bars(const std::string& title, const std::vector<Row>& rows, const std::vector<Seg>& keys,
                         bool shared_scale) {
  const double W = 1100, left = 230, right = 170, bar_h = 22, gap = 12, top = 50;
  const double H = top + rows.size() * (bar_h + gap) + 20;
  double scale_max = 0;
  for (const Row& r : rows) {
    double sum = 0;
    for (const Seg& s : r.segs) sum += std::max(s.value, 0.0);
    scale_max = std::max(scale_max, std::max(sum, r.capacity));
  }
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + n(W) + "\" height=\"" + n(H) +
                  "\" role=\"img\" aria-label=\"" + esc(title) + "\">";
  o += text(0, 18, title, "start", 15, "bold") + legend(left, 38, keys);
  double y = top;
  for (const Row& r : rows) {
    double sum = 0;
    for (const Seg& s : r.segs) sum += std::max(s.value, 0.0);
    const double full = shared_scale ? scale_max : std::max(r.capacity, sum);
    const double width = W - left - right;
    o += text(left - 8, y + 15, r.label, "end");
    if (r.capacity > 0) o += rect(left, y, width * r.capacity / std::max(full, 1e-12), bar_h, "#eeeeee", "capacity");
    double x = left;
    for (const Seg& s : r.segs) {
      if (s.value <= 0) continue;
      const double w = width * s.value / std::max(full, 1e-12);
      o += rect(x, y, w, bar_h, s.color, std::string(s.label) + ": " + r.note);
      x += w;
    }
    o += text(W - right + 8, y + 15, r.note);
    y += bar_h + gap;
  }
  return o + "</svg>";
}

std::string tok_s_chart(const PlanReport& r) {
  const double W = 1100, left = 230, right = 170, bar_h = 22, gap = 12, top = 36;
  const double H = top + r.candidates.size() * (bar_h + gap) + 20;
  double maxv = 0;
  for (const Candidate& c : r.candidates) {
    if (c.plan.feasible) maxv = std::max(maxv, c.plan.decode_single.tok_s.hi);
  }
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + n(W) + "\" height=\"" + n(H) +
                  "\" role=\"img\" aria-label=\"decode tokens per second\">";
  o += text(0, 18, "Decode tok/s, one sequence (bar: expected; line: range)", "start", 15, "bold");
  double y = top;
  const double width = W - left - right;
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const Candidate& c = r.candidates[i];
    o += text(left - 8, y + 15, c.hw.name.size() > 32 ? c.hw.name.substr(0, 31) + "…" : c.hw.name, "end");
    if (!c.plan.feasible || maxv <= 0) {
      o += text(left + 4, y + 15, "does not fit");
    } else {
      const Figure& t = c.plan.decode_single.tok_s;
      o += rect(left, y, width * t.value / maxv, bar_h, kColors[i % 6], range_str(t) + " tok/s");
      const double x0 = left + width * t.lo / maxv, x1 = left + width * t.hi / maxv;
      o += "<line x1=\"" + n(x0) + "\" y1=\"" + n(y + bar_h / 2) + "\" x2=\"" + n(x1) + "\" y2=\"" + n(y + bar_h / 2) +
           "\" stroke=\"#222\" stroke-width=\"2\"/>";
      o += text(W - right + 8, y + 15, range_str(t) + " tok/s");
    }
    y += bar_h + gap;
  }
  return o + "</svg>";
}

std::string prefill_chart(const Candidate& c) {
  const auto& pts = c.plan.prefill_curve;
  if (pts.size() < 2) return "";
  const double W = 1100, H = 300, left = 80, right = 40, top = 40, bottom = 50;
  double maxv = 0;
  for (const auto& p : pts) maxv = std::max(maxv, p.tok_s.hi);
  const double lx0 = std::log2(double(pts.front().prompt)), lx1 = std::log2(double(pts.back().prompt));
  auto X = [&](double prompt) { return left + (W - left - right) * (std::log2(prompt) - lx0) / std::max(lx1 - lx0, 1e-9); };
  auto Y = [&](double v) { return H - bottom - (H - top - bottom) * v / std::max(maxv, 1e-12); };
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + n(W) + "\" height=\"" + n(H) +
                  "\" role=\"img\" aria-label=\"prefill tokens per second\">";
  o += text(0, 18, "Prefill tok/s by prompt length: " + c.hw.name, "start", 15, "bold");
  o += "<line x1=\"" + n(left) + "\" y1=\"" + n(H - bottom) + "\" x2=\"" + n(W - right) + "\" y2=\"" + n(H - bottom) +
       "\" stroke=\"#888\"/><line x1=\"" + n(left) + "\" y1=\"" + n(top) + "\" x2=\"" + n(left) + "\" y2=\"" +
       n(H - bottom) + "\" stroke=\"#888\"/>";
  std::string band_top, band_bottom, line;
  for (const auto& p : pts) {
    band_top += n(X(p.prompt)) + "," + n(Y(p.tok_s.hi)) + " ";
    line += n(X(p.prompt)) + "," + n(Y(p.tok_s.value)) + " ";
    o += text(X(p.prompt), H - bottom + 18, std::to_string(p.prompt), "middle");
    o += text(X(p.prompt), Y(p.tok_s.value) - 8, sig3(p.tok_s.value), "middle", 11);
  }
  for (auto it = pts.rbegin(); it != pts.rend(); ++it) band_bottom += n(X(it->prompt)) + "," + n(Y(it->tok_s.lo)) + " ";
  o += "<polygon points=\"" + band_top + band_bottom + "\" fill=\"#3b6fb6\" fill-opacity=\"0.18\"/>";
  o += "<polyline points=\"" + line + "\" fill=\"none\" stroke=\"#3b6fb6\" stroke-width=\"2.5\"/>";
  o += text(W / 2, H - 8, "prompt tokens (log scale); band: range", "middle");
  o += text(left - 8, top + 4, sig3(maxv), "end") + text(left - 8, H - bottom, "0", "end");
  return o + "</svg>";
}

std::string memory_chart(const Candidate& c) {
  const Plan& p = c.plan;
  const Placement& pl = p.placement;
  const std::vector<Seg> keys = {{"non-expert weights", 0, kColors[0]}, {"KV cache", 0, kColors[1]},
                                 {"routed experts", 0, kColors[2]},     {"scratch / buffers", 0, kColors[5]},
                                 {"free", 0, "#eeeeee"}};
  std::vector<Row> rows;
  if (pl.has_gpu()) {
    const double used = double(pl.gpu_weight_bytes + pl.gpu_kv_bytes + pl.gpu_expert_bytes + pl.gpu_scratch_bytes);
    rows.push_back({"VRAM (" + c.hw.gpus[static_cast<size_t>(pl.gpu)].name + ")",
                    {{"non-expert weights", double(pl.gpu_weight_bytes), kColors[0]},
                     {"KV cache", double(pl.gpu_kv_bytes), kColors[1]},
                     {"routed experts", double(pl.gpu_expert_bytes), kColors[2]},
                     {"scratch / buffers", double(pl.gpu_scratch_bytes), kColors[5]}},
                    double(p.capacity.vram_total_bytes),
                    gbytes(used) + " of " + gbytes(double(p.capacity.vram_total_bytes))});
  }
  const double other_total = double(pl.dram_weight_bytes + pl.dram_kv_bytes);
  double usable_total = 0;
  for (uint64_t b : p.capacity.node_bytes) usable_total += double(b);
  for (size_t i = 0; i < p.capacity.node_bytes.size(); ++i) {
    const double share = usable_total > 0 ? double(p.capacity.node_bytes[i]) / usable_total : 0;
    const double experts = i < pl.node_expert_bytes.size() ? double(pl.node_expert_bytes[i]) : 0;
    const double installed = i < c.hw.numa.size() ? double(c.hw.numa[i].dram_bytes) : 0;
    rows.push_back({"DRAM node " + std::to_string(i),
                    {{"non-expert weights", double(pl.dram_weight_bytes) * share, kColors[0]},
                     {"KV cache", double(pl.dram_kv_bytes) * share, kColors[1]},
                     {"routed experts", experts, kColors[2]}},
                    installed,
                    gbytes(other_total * share + experts) + " of " + gbytes(installed)});
  }
  if (pl.nvme_expert_bytes > 0 || p.capacity.nvme_bytes > 0) {
    rows.push_back({"NVMe",
                    {{"routed experts", double(pl.nvme_expert_bytes), kColors[2]}},
                    double(p.capacity.nvme_bytes),
                    gbytes(double(pl.nvme_expert_bytes)) + " of " + gbytes(double(p.capacity.nvme_bytes))});
  }
  return stacked_bars("Memory by tier: " + c.hw.name + " (each bar: that tier's capacity)", rows, keys, false);
}

std::string time_chart(const PlanReport& r) {
  const std::vector<Seg> keys = {{"DRAM experts", 0, kColors[2]}, {"CPU attention/other", 0, kColors[4]},
                                 {"GPU", 0, kColors[0]},          {"PCIe", 0, kColors[1]},
                                 {"NVMe", 0, kColors[3]},         {"sync", 0, kColors[5]}};
  std::vector<Row> rows;
  for (const Candidate& c : r.candidates) {
    if (!c.plan.feasible) {
      rows.push_back({c.hw.name.size() > 32 ? c.hw.name.substr(0, 31) + "…" : c.hw.name, {}, 0, "does not fit"});
      continue;
    }
    const StepBreakdown& s = c.plan.decode_single.step;
    // Overlap is time the CPU and GPU share: taken off the GPU part it hides behind.
    const double gpu = std::max(0.0, s.gpu.value + s.overlap.value);
    rows.push_back({c.hw.name.size() > 32 ? c.hw.name.substr(0, 31) + "…" : c.hw.name,
                    {{"DRAM experts", s.dram_experts.value * 1e3, kColors[2]},
                     {"CPU attention/other", s.cpu_other.value * 1e3, kColors[4]},
                     {"GPU", gpu * 1e3, kColors[0]},
                     {"PCIe", s.pcie.value * 1e3, kColors[1]},
                     {"NVMe", s.nvme.value * 1e3, kColors[3]},
                     {"sync", s.sync.value * 1e3, kColors[5]}},
                    0,
                    range_str(s.total, 1e3) + " ms"});
  }
  return stacked_bars("Time per token (decode, one sequence; GPU time hidden behind the CPU not shown)", rows, keys,
                      true);
}

}  // namespace

std::string render_html(const PlanReport& r) {
  std::string o =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>strata plan: " +
      esc(r.model.name + " " + r.model.quant) +
      "</title>\n<style>body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1140px;margin:24px "
      "auto;padding:0 16px;color:#1d1d1f;background:#fff;line-height:1.45}h1{font-size:26px;margin-bottom:4px}"
      "h2{font-size:20px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}code,pre{font-family:"
      "ui-monospace,Menlo,Consolas,monospace;font-size:13px}pre{background:#f5f5f7;padding:10px;overflow-x:auto;"
      "white-space:pre-wrap}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;"
      "text-align:left;font-size:14px}th{background:#f5f5f7}.num{text-align:right}.bad{color:#b8473d;font-weight:600}"
      "svg{display:block;margin:14px 0}.muted{color:#666;font-size:13px}</style></head><body>\n";
  o += "<h1>strata plan: " + esc(r.model.name) + " at " + esc(r.model.quant) + "</h1>\n";
  if (!r.command.empty()) o += "<p class=\"muted\"><code>" + esc(r.command) + "</code></p>\n";

  if (!r.candidates.empty()) {
    o += "<h2>Candidates</h2>\n<table><tr><th>#</th><th>hardware</th><th class=\"num\">decode tok/s</th>"
         "<th class=\"num\">prefill tok/s</th><th class=\"num\">time to first token, s</th><th class=\"num\">tok/s per "
         "$1000</th><th>single change that helps most</th></tr>\n";
    int i = 0;
    for (const Candidate& c : r.candidates) {
      ++i;
      const bool ok = c.plan.feasible;
      o += "<tr><td>" + std::to_string(i) + "</td><td>" + esc(c.hw.name) + "</td><td class=\"num\">" +
           (ok ? esc(range_str(c.plan.decode_single.tok_s)) : "<span class=\"bad\">does not fit</span>") +
           "</td><td class=\"num\">" + (ok ? esc(range_str(c.plan.prefill.tok_s)) : "-") + "</td><td class=\"num\">" +
           (ok ? esc(range_str(c.plan.ttft)) : "-") + "</td><td class=\"num\">" +
           (c.tok_s_per_kusd > 0 ? sig3(c.tok_s_per_kusd) : "-") + "</td><td>" +
           (c.tried.empty() ? "-" : esc(c.tried.front().change) + (c.tried.front().feasible ? " &rarr; " + sig3(c.tried.front().tok_s) + " tok/s" : "")) +
           "</td></tr>\n";
    }
    o += "</table>\n";
    o += tok_s_chart(r) + "\n" + time_chart(r) + "\n";
  }

  for (const Candidate& c : r.candidates) {
    o += "<h2>Plan for " + esc(c.hw.name) + (c.plan.feasible ? "" : " <span class=\"bad\">(does not fit)</span>") + "</h2>\n<ul>\n";
    for (const std::string& d : c.plan.decisions) o += "<li>" + esc(d) + "</li>\n";
    for (const std::string& s : c.plan.shortfalls) o += "<li class=\"bad\">missing: " + esc(s) + "</li>\n";
    o += "</ul>\n";
    if (c.plan.feasible) {
      o += memory_chart(c) + "\n" + prefill_chart(c) + "\n";
      o += "<p>Decode, one sequence: <b>" + esc(range_str(c.plan.decode_single.tok_s)) + " tok/s</b>; bottleneck: " +
           esc(c.plan.decode_single.bottleneck) + ".</p>\n";
      o += "<p>llama.cpp equivalent:</p><pre>llama-server -m MODEL.gguf " + esc(c.llama_cpp) + "</pre>\n";
    }
    if (!c.tried.empty()) {
      o += "<table><tr><th>single change</th><th class=\"num\">decode tok/s</th><th class=\"num\">gain</th></tr>\n";
      for (const Advice& a : c.tried) {
        char g[32];
        std::snprintf(g, sizeof g, "%+.0f %%", std::fabs(a.gain) < 0.005 ? 0.0 : 100 * a.gain);
        o += "<tr><td>" + esc(a.change) + "</td><td class=\"num\">" + (a.feasible ? sig3(a.tok_s) : "does not fit") +
             "</td><td class=\"num\">" + (a.feasible ? std::string(g) : "-") + "</td></tr>\n";
      }
      o += "</table>\n";
    }
  }
  if (r.users > 0 && r.beyond_one_box) {
    o += "<h2>Beyond one box</h2>\n<ul>\n";
    for (const std::string& l : r.cluster.lines) o += "<li><code>" + esc(l) + "</code></li>\n";
    o += "</ul>\n";
  }
  // The full text report below the charts: inputs, every figure, assumptions.
  o += "<h2>Details</h2>\n<pre>" + esc(render_text(r, false)) + "</pre>\n</body></html>\n";
  return o;
}

}  // namespace strata::tools
