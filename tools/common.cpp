// Exit-code plumbing, formatting and the compute options shared by the subcommands.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/dnnl_gemm.h"
#include "cpu_kernels/gemm_choice.h"
#include "cpu_kernels/qgemm.h"
#include "offload/calibrate.h"
#include "runtime/base/bytes.h"
#include "tools/commands.h"
#include "tools/compute_options.h"

namespace strata::tools {

namespace {
int g_exit_code = 0;
}

int exit_code() { return g_exit_code; }
void set_exit_code(int code) { g_exit_code = code; }

void fail(const Status& s) {
  std::fprintf(stderr, "strata: error: %s\n", s.message().c_str());
  set_exit_code(1);
}

}  // namespace strata::tools

// --- --threads / --cpu-isa (tools/compute_options.h)

namespace strata::tools {

void add_compute_options(CLI::App* cmd, ComputeArgs& a) {
  cmd->add_option("-t,--threads", a.n_threads, "Compute threads, pinned one per physical core (default: all cores)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--cpu-isa", a.cpu_isa,
                  "CPU kernel path: auto, scalar, avx2, avx512, amx, or ref (scalar matmul_ref with f32 activations); "
                  "default: $STRATA_CPU_ISA, else auto");
  cmd->add_option("--prefill-gemm", a.prefill_gemm,
                  "Kernels of prompt batches (32+ rows): auto (qgemm or oneDNN, timed per shape), native (qgemm), "
                  "or onednn; default: $STRATA_PREFILL_GEMM, else auto");
  cmd->add_option("--repack", a.repack,
                  "Repack weights into 16-row interleaved blocks at load (q4_k, q5_k, q6_k, q4_0, q8_0 and iq4_xs on "
                  "AVX2; on AVX-512 the same, q8_0 and iq4_xs only with VNNI): auto "
                  "(when the copies fit in available memory), on, or off (compute on the file's data); default: "
                  "$STRATA_REPACK, else auto");
  cmd->add_option("--cache-type", a.cache_type,
                  "KV cache entries: f16 (half the memory and the bytes each decoded token reads) or f32; default: "
                  "$STRATA_CACHE_TYPE, else f16 (f32 with --cpu-isa ref)");
}

namespace {

// An option's value, else the environment variable's, with where it came
// from (for errors): {value, "--option" or "VARIABLE"}; empty when neither.
std::pair<std::string, std::string> option_or_env(const std::string& value, const char* option, const char* variable) {
  if (!value.empty()) return {value, option};
  const char* env = std::getenv(variable);
  if (env && *env) return {env, variable};
  return {"", option};
}

}  // namespace

Result<ModelOptions> model_options(const ComputeArgs& a) {
  ModelOptions o;
  o.n_threads = a.n_threads;
  const auto [isa, from] = option_or_env(a.cpu_isa, "--cpu-isa", "STRATA_CPU_ISA");
  if (isa == "ref") {
    o.kernels = CpuKernels::kReference;
  } else if (!isa.empty()) {
    Status s = set_cpu_isa(isa);
    if (!s.is_ok()) {
      return Status(s.code(), from + ": " + s.message() + " (expected auto, scalar, avx2, avx512, amx or ref)");
    }
  }
  if (const char* off = std::getenv("STRATA_CPU_DISABLE")) {
    std::string unknown;
    disable_cpu_features({}, off, &unknown);
    if (!unknown.empty()) {
      return invalid_argument("STRATA_CPU_DISABLE: unknown extension(s) " + unknown +
                              " (expected a comma-separated list of avx_vnni, avx512_vnni, avx512_bf16, amx)");
    }
  }
  if (o.kernels != CpuKernels::kReference) {
    if (Status s = limit_dnnl_cpu_isa(active_cpu_isa()); !s.is_ok()) {
      std::fprintf(stderr, "strata: warning: %s\n", s.message().c_str());
    }
  }
  const auto [gemm, gemm_from] = option_or_env(a.prefill_gemm, "--prefill-gemm", "STRATA_PREFILL_GEMM");
  if (!gemm.empty()) {
    Result<GemmPolicy> p = parse_gemm_policy(gemm);
    if (!p.is_ok()) return Status(p.status().code(), gemm_from + ": " + p.status().message());
    set_gemm_policy(*p);
  }
  const auto [repack, repack_from] = option_or_env(a.repack, "--repack", "STRATA_REPACK");
  if (repack == "on") {
    o.repack = ExpertRepack::kOn;
  } else if (repack == "off") {
    o.repack = ExpertRepack::kOff;
  } else if (!repack.empty() && repack != "auto") {
    return invalid_argument(repack_from + ": unknown value '" + repack + "' (expected auto, on or off)");
  }
  const auto [kv, kv_from] = option_or_env(a.cache_type, "--cache-type", "STRATA_CACHE_TYPE");
  if (!kv.empty()) {
    Result<KvType> t = parse_kv_type(kv);
    if (!t.is_ok()) return Status(t.status().code(), kv_from + ": " + t.status().message());
    o.kv_type = *t;
  } else {
    o.kv_type = o.kernels == CpuKernels::kReference ? KvType::kF32 : KvType::kF16;
  }
  // Measured kernel choices persist per machine (a seeded run repeats).
  const char* cf = std::getenv("STRATA_GEMM_CHOICES");
  const std::string choice_file = cf && *cf ? std::string(cf)
                                            : (std::filesystem::path(default_profile_path()).parent_path() /
                                               "gemm-choices.json").string();
  if (Status cs = use_gemm_choice_file(choice_file); !cs.is_ok()) {
    std::fprintf(stderr, "strata: warning: %s; timing the kernels again\n", cs.message().c_str());
  }
  if (isatty(fileno(stderr))) {
    o.placement_progress = [](uint64_t done, uint64_t total) {
      std::fprintf(stderr, "\rstrata: placing weights (NUMA copies, repacking): %3d%% (%s of %s)%s",
                   total ? int(100 * done / total) : 100, format_bytes(done).c_str(), format_bytes(total).c_str(),
                   done == total ? "\n" : "");
    };
  } else {
    o.placement_progress = [](uint64_t done, uint64_t total) {
      if (done == total) std::fprintf(stderr, "strata: placed %s of weights\n", format_bytes(total).c_str());
    };
  }
  return o;
}

std::string compute_summary(const Model& m) {
  const CpuPool& p = m.pool();
  std::string s = std::to_string(p.n_threads()) + (p.n_threads() == 1 ? " thread" : " threads") +
                  (p.pinned() ? " (pinned)" : "");
  if (p.n_nodes() > 1) s += " on " + std::to_string(p.n_nodes()) + " NUMA nodes";
  s += std::string(", KV cache ") + kv_type_name(m.kv_type());
  if (m.kernels() == CpuKernels::kReference) return s + ", matmul_ref (reference)";
  const CpuIsa isa = active_cpu_isa();
  const std::string placed = m.placement_summary();
  return s + ", qgemm " + std::string(cpu_isa_name(isa)) + " (" + std::string(qgemm_variant_name(isa)) +
         "), prompt batches " + gemm_policy_name(gemm_policy()) +
         (gemm_policy() == GemmPolicy::kNative ? "" : " (onednn " + dnnl_cpu_isa() + ")") +
         (placed.empty() ? "" : ", " + placed);
}

}  // namespace strata::tools
