// What `strata plan` reports, and its renderings: terminal text, Markdown,
// JSON and a self-contained HTML page with inline SVG charts. Rendering is
// a pure function of the report, so fixed inputs give byte-identical output
// (the snapshot tests rely on it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offload/cost_model.h"
#include "offload/hardware.h"
#include "offload/model_desc.h"
#include "offload/placement.h"

namespace strata::tools {

// One single change to a candidate, evaluated by planning again.
struct Advice {
  std::string change;  // "all 12 channels populated (8 now)"
  bool feasible = false;
  double tok_s = 0;    // decode, one sequence, after the change
  double gain = 0;     // tok_s / before - 1 (infinite-like 1e9 when it makes an infeasible plan feasible)
};

struct Candidate {
  HardwareProfile hw;
  Plan plan;
  std::string llama_cpp;       // flags for the same split
  std::vector<Advice> tried;   // every change evaluated, best first
  double tok_s_per_kusd = 0;   // decode tok/s (one sequence) per 1,000 USD; 0: no price
};

struct ValidationRow {
  std::string model;  // file name
  std::string test;   // "pp128", "tg32"
  Figure predicted;   // tok/s
  double measured = 0, stddev = 0;
  double error_pct = 0;  // (predicted - measured) / measured
  double tolerance_pct = 0;
  bool within = false;
  std::string note;  // the machine state around the run
};

struct PlanReport {
  std::string command;  // the command line, echoed
  ModelDesc model;
  std::string native_format;  // of the catalog model; "" for files
  PlanOptions options;
  std::vector<Candidate> candidates;  // ranked: best first
  // Beyond one box (--users): the aggregate rate asked for and, when no
  // candidate reaches it, a sketch of a distributed deployment.
  uint32_t users = 0;
  double tok_per_user = 0;
  bool beyond_one_box = false;
  ClusterSketch cluster;
  std::vector<ValidationRow> validation;
};

std::string render_text(const PlanReport& r, bool markdown);
std::string render_json(const PlanReport& r);
std::string render_html(const PlanReport& r);

// Shared number formatting: three significant digits, ranges as "9.8 (7.5-11)".
std::string sig3(double v);
std::string range_str(const Figure& f, double scale = 1.0);
std::string gbytes(double bytes);  // "404 GB", "18.6 GB", "0.52 GB"

}  // namespace strata::tools
