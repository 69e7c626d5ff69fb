// `strata bench`: llama-bench-style prompt (pp) and generation (tg)
// throughput, optionally at a depth of context already cached, with the
// bytes one decode step reads (active weights and the history's keys and
// values), the achieved GB/s of generation, and that as a share of a DRAM
// read-bandwidth probe run in the same process, before and after the tests;
// --profile adds where the time of a token went.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <string>

#include "cpu_kernels/gemm_choice.h"
#include "offload/model_shape.h"
#include "runtime/base/bytes.h"
#include "runtime/eval/bandwidth_probe.h"
#include "runtime/eval/bench.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/compute_options.h"

namespace strata::tools {
namespace {

using json = nlohmann::json;

struct BenchArgs {
  std::string model;
  int32_t n_prompt = 512, n_gen = 128, n_rep = 5, n_batch = 512, n_depth = 0;
  uint64_t seed = 1234;
  uint64_t probe_mib = 0;
  int probe_runs = 7;
  std::vector<int32_t> parallel = {1};  // sequences of each tg test
  bool json_out = false;
  bool profile = false;
  ComputeArgs compute;
};

std::string fmt(const char* f, double a, double b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

// Milliseconds per token of each category, and the pool's synchronization.
struct ProfileRow {
  const char* name;
  double ms_per_token;
};
std::vector<ProfileRow> profile_rows(const BenchResult& r) {
  const ForwardProfile& p = r.profile;
  const double k = p.n_tokens > 0 ? 1e3 / double(p.n_tokens) : 0;
  return {{"routed experts", p.experts_s * k}, {"attention", p.attention_s * k}, {"dense & shared FFN", p.ffn_s * k},
          {"output head", p.output_s * k},     {"other", p.other_s() * k},       {"total", p.total_s * k}};
}

json profile_json(const BenchResult& r, const Model& m) {
  const ForwardProfile& p = r.profile;
  json j;
  for (const ProfileRow& row : profile_rows(r)) j["ms_per_token"][row.name] = row.ms_per_token;
  const double n_layer = double(m.hparams().n_layer);
  const double fw = double(std::max<int64_t>(1, p.n_forward));
  j["forward_calls"] = p.n_forward;
  j["tokens"] = p.n_tokens;
  j["pool_ops_per_forward"] = double(p.pool_ops) / fw;
  j["join_wait_us_per_layer"] = double(p.pool_join_wait_ns) / 1e3 / fw / n_layer;
  j["prefill_gemm_policy"] = gemm_policy_name(gemm_policy());
  j["prefill_gemm_choices"] = json::array();
  for (const GemmChoice& c : gemm_choices()) {
    j["prefill_gemm_choices"].push_back(json::parse(gemm_choice_json(c)));
  }
  return j;
}

void print_profile(const std::vector<BenchResult>& results, const Model& m) {
  std::printf("\nprofile, ms per token (share of the forward time):\n\n| test |");
  for (const ProfileRow& row : profile_rows(results.front())) std::printf(" %s |", row.name);
  std::printf("\n| --- |");
  for (size_t i = 0; i < profile_rows(results.front()).size(); ++i) std::printf(" ---: |");
  std::printf("\n");
  for (const auto& r : results) {
    const auto rows = profile_rows(r);
    const double total = rows.back().ms_per_token;
    std::printf("| %s |", r.name().c_str());
    for (const ProfileRow& row : rows) {
      if (&row == &rows.back()) {
        std::printf(" %.3f |", row.ms_per_token);
      } else {
        std::printf(" %.3f (%.0f%%) |", row.ms_per_token, total > 0 ? 100 * row.ms_per_token / total : 0.0);
      }
    }
    std::printf("\n");
  }
  // Synchronization: fork/joins per forward pass, and the caller's wait at
  // the joins beyond its own share, per layer.
  std::printf("\n");
  for (const auto& r : results) {
    const ForwardProfile& p = r.profile;
    const double fw = double(std::max<int64_t>(1, p.n_forward));
    std::printf("%s: %.1f pool fork/joins per forward pass (%.1f per layer), join wait %.1f us per layer\n",
                r.name().c_str(), double(p.pool_ops) / fw, double(p.pool_ops) / fw / double(m.hparams().n_layer),
                double(p.pool_join_wait_ns) / 1e3 / fw / double(m.hparams().n_layer));
  }
  // Which kernels the prompt-batch products ran on (gemm_choice.h).
  const std::vector<GemmChoice> choices = gemm_choices();
  if (!choices.empty()) {
    std::printf("\nprompt-batch products (policy %s, one thread's estimate per product):\n", gemm_policy_name(gemm_policy()));
    for (const GemmChoice& c : choices) std::printf("  %s\n", describe(c).c_str());
  }
}

void run(const BenchArgs& a) {
  if (a.n_prompt == 0 && a.n_gen == 0) return fail(invalid_argument("bench: expected -p or -n above 0, got both 0"));
  auto file = gguf::GgufModel::open(a.model);
  if (!file.is_ok()) return fail(file.status());
  auto mo = model_options(a.compute);
  if (!mo.is_ok()) return fail(mo.status());
  auto loaded = Model::load(std::move(file.value()), *mo);
  if (!loaded.is_ok()) return fail(loaded.status());
  Model& m = **loaded;
  const gguf::GgufModel& f = m.file();

  BandwidthProbeOptions po;
  po.buffer_bytes = a.probe_mib << 20;
  po.n_runs = a.probe_runs;
  auto before = probe_read_bandwidth(po);
  if (!before.is_ok()) return fail(before.status());
  BenchOptions o;
  o.n_rep = a.n_rep;
  o.n_batch = a.n_batch;
  o.seed = a.seed;
  o.profile = a.profile;
  o.n_depth = a.n_depth;
  if (f.find("tokenizer.ggml.tokens")) {
    auto tok = Tokenizer::from_gguf(f);
    if (!tok.is_ok()) return fail(tok.status());
    if (tok->add_bos()) o.bos = tok->bos();
  }
  touch_weights(f);
  const RoleSummary roles = summarize_roles(describe_model(f, m.hparams()));
  const uint64_t n_params = count_params(f);
  const std::string arch = f.get_string("general.architecture").value_or("?");
  const std::string model_name = arch + " " + fmt("%.2fB", double(n_params) / 1e9) + " " + dominant_type(f);

  std::vector<BenchResult> results;
  const std::string at_depth = a.n_depth > 0 ? " at depth " + std::to_string(a.n_depth) : "";
  if (a.n_prompt > 0) {
    if (!a.json_out) {
      std::fprintf(stderr, "strata bench: pp%d%s, %d repetitions ...\n", a.n_prompt, at_depth.c_str(), a.n_rep);
    }
    auto r = bench_prompt(m, a.n_prompt, o);
    if (!r.is_ok()) return fail(r.status());
    results.push_back(std::move(r.value()));
  }
  for (int32_t n_seq : a.n_gen > 0 ? a.parallel : std::vector<int32_t>{}) {
    o.n_parallel = n_seq;
    if (!a.json_out) {
      std::fprintf(stderr, "strata bench: tg%d with %d sequence%s%s, %d repetitions ...\n", a.n_gen, n_seq,
                   n_seq > 1 ? "s" : "", at_depth.c_str(), a.n_rep);
    }
    auto r = bench_generation(m, a.n_gen, o);
    if (!r.is_ok()) return fail(r.status());
    results.push_back(std::move(r.value()));
  }

  // A shared machine's bandwidth can change during the tests (on a 2-core VM
  // the probe read 45.1 GB/s before them and tg128 then read 51.2), so the
  // probe runs again after them and the shares are of the higher of the two.
  auto after = probe_read_bandwidth(po);
  if (!after.is_ok()) return fail(after.status());
  const BandwidthProbeResult* probe = after->median_gbps > before->median_gbps ? &after.value() : &before.value();

  // Generation of one sequence reads the active weights and its history's
  // keys and values once per token; a prompt batch reads each weight once for
  // many tokens, and sequences decoded together share the experts they both
  // route to, so no per-token byte figure fits those.
  auto per_token_bytes = [](const BenchResult& r) { return r.kind == BenchKind::kGeneration && r.n_parallel == 1; };
  auto active = [&](const BenchResult& r) { return double(roles.active_bytes_per_token) + r.kv_bytes_per_token; };
  auto gbps = [&](const BenchResult& r) { return r.mean_tok_per_s() * active(r) / 1e9; };
  // Aggregate tokens/s of S sequences against one sequence's.
  auto speedup = [&](const BenchResult& r) -> double {
    for (const BenchResult& one : results) {
      if (one.kind == BenchKind::kGeneration && one.n_parallel == 1 && one.mean_tok_per_s() > 0) {
        return r.mean_tok_per_s() / one.mean_tok_per_s();
      }
    }
    return 0;
  };
  if (a.json_out) {
    json j;
    j["model"] = {{"file", a.model},
                  {"name", model_name},
                  {"architecture", arch},
                  {"type", dominant_type(f)},
                  {"size_bytes", f.total_tensor_bytes()},
                  {"n_params", n_params},
                  {"active_bytes_per_token", roles.active_bytes_per_token}};
    j["backend"] = "CPU";
    j["compute"] = {{"threads", m.pool().n_threads()},
                    {"pinned", m.pool().pinned()},
                    {"numa_nodes", m.pool().n_nodes()},
                    {"summary", compute_summary(m)}};
    j["probe"] = {{"buffer_bytes", probe->buffer_bytes},
                  {"llc_bytes", probe->llc_bytes},
                  {"threads", probe->n_threads},
                  {"kernel", probe->kernel},
                  {"samples_gbps", probe->gbps},
                  {"median_gbps", probe->median_gbps},
                  {"before_median_gbps", before->median_gbps},
                  {"after_median_gbps", after->median_gbps}};
    j["tests"] = json::array();
    for (const auto& r : results) {
      json t = {{"test", r.name()},
                {"n_prompt", r.kind == BenchKind::kPrompt ? r.n_tokens : 0},
                {"n_gen", r.kind == BenchKind::kGeneration ? r.n_tokens : 0},
                {"n_batch", a.n_batch},
                {"n_parallel", r.n_parallel},
                {"n_depth", r.n_depth},
                {"repetitions", r.seconds.size()},
                {"samples_s", r.seconds},
                {"samples_ts", r.tok_per_s()},
                {"avg_ts", r.mean_tok_per_s()},
                {"stddev_ts", r.stddev_tok_per_s()}};
      if (per_token_bytes(r)) {
        t["kv_bytes_per_token"] = r.kv_bytes_per_token;
        t["gbps"] = gbps(r);
        t["pct_of_probe"] = probe->median_gbps > 0 ? 100 * gbps(r) / probe->median_gbps : 0.0;
      } else {
        t["kv_bytes_per_token"] = nullptr;
        t["gbps"] = nullptr;
        t["pct_of_probe"] = nullptr;
      }
      if (r.n_parallel > 1 && speedup(r) > 0) t["speedup_over_one_sequence"] = speedup(r);
      if (a.profile) t["profile"] = profile_json(r, m);
      j["tests"].push_back(std::move(t));
    }
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }

  std::printf("| model | size | params | backend | test | t/s | active/tok | GB/s | %% of probe |\n");
  std::printf("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : results) {
    const bool tg = per_token_bytes(r);
    std::printf("| %s | %s | %s | CPU | %s | %s | %s | %s | %s |\n", model_name.c_str(),
                format_bytes(f.total_tensor_bytes()).c_str(), fmt("%.2f B", double(n_params) / 1e9).c_str(),
                r.name().c_str(), fmt("%.2f ± %.2f", r.mean_tok_per_s(), r.stddev_tok_per_s()).c_str(),
                tg ? format_bytes(uint64_t(active(r))).c_str() : "-", tg ? fmt("%.2f", gbps(r)).c_str() : "-",
                tg && probe->median_gbps > 0 ? fmt("%.1f%%", 100 * gbps(r) / probe->median_gbps).c_str() : "-");
  }
  for (const auto& r : results) {
    if (r.n_parallel > 1 && speedup(r) > 0) {
      std::printf("\n%s: %d sequences together make %.2fx the tokens/s of one", r.name().c_str(), r.n_parallel,
                  speedup(r));
    }
  }
  std::printf("\nDRAM read probe: %.2f GB/s (the higher of %.2f before the tests and %.2f after; median of %zu "
              "passes over %s, %d threads, %s loads, the fastest read loop)\n",
              probe->median_gbps, before->median_gbps, after->median_gbps, probe->gbps.size(),
              format_bytes(probe->buffer_bytes).c_str(), probe->n_threads, probe->kernel);
  std::printf("compute: %s\n", compute_summary(m).c_str());
  if (a.profile) print_profile(results, m);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Prompt and generation throughput (llama-bench style), with GB/s against a measured DRAM read bandwidth");
  cmd->add_option("-m,--model", a->model, "GGUF model file (any part of a split model)")->required();
  cmd->add_option("-p,--n-prompt", a->n_prompt, "Prompt tokens of the pp test; 0 skips it (default 512)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-n,--n-gen", a->n_gen, "Generated tokens of the tg test; 0 skips it (default 128)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-r,--repetitions", a->n_rep, "Repetitions of each test (default 5)")->check(CLI::Range(1, 1000));
  cmd->add_option("-b,--batch-size", a->n_batch, "Prompt tokens per forward pass (default 512)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-d,--n-depth", a->n_depth,
                  "Positions already in every sequence's KV cache when a test starts, prefilled untimed (default 0)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-P,--parallel", a->parallel,
                  "Sequences decoded together in the tg test, one or more (1,8 runs tg128 and tg128x8; default 1)")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--seed", a->seed, "Seed of the random token ids (default 1234)");
  cmd->add_option("--probe-mib", a->probe_mib, "Bandwidth probe buffer in MiB (default: 4x last-level cache, >= 1 GiB)")
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 24));
  cmd->add_option("--probe-runs", a->probe_runs, "Timed passes of the probe (default 7)")->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", a->json_out, "Machine-readable output");
  cmd->add_flag("--profile", a->profile,
                "Time per token by category (routed experts, attention, dense & shared FFN, output head, other) "
                "and the thread pool's synchronization");
  add_compute_options(cmd, a->compute);
  cmd->callback([a] { run(*a); });
}

}  // namespace strata::tools
