// The options every model-running command shares (--threads N, --cpu-isa
// NAME, --prefill-gemm, --repack, --cache-type) and the ModelOptions they mean.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "runtime/base/status.h"
#include "runtime/models/model.h"

namespace strata::tools {

struct ComputeArgs {
  int n_threads = 0;    // 0: one per physical core
  std::string cpu_isa;  // empty: STRATA_CPU_ISA, else the best path
  std::string prefill_gemm;  // empty: STRATA_PREFILL_GEMM, else auto
  std::string repack;        // empty: STRATA_REPACK, else auto
  std::string cache_type;    // empty: STRATA_CACHE_TYPE, else f16 (f32 with the reference kernels)
};

void add_compute_options(CLI::App* cmd, ComputeArgs& args);

// --cpu-isa (or, when not given, the environment variable STRATA_CPU_ISA):
// "ref" runs matmul_ref for every product (f32 activations, the scalar
// oracle); "auto", "scalar", "avx2", "avx512", "amx" pick the qgemm path.
// --cache-type (or STRATA_CACHE_TYPE): f16 or f32 KV cache entries.
// --prefill-gemm (or STRATA_PREFILL_GEMM): auto, native or onednn, the
// kernels of prompt-batch products (cpu_kernels/gemm_choice.h); auto's
// measured choices are kept in $STRATA_GEMM_CHOICES, else gemm-choices.json
// beside the hardware profile cache (a damaged file is warned about and
// measured again).
// Errors name the option and the accepted values. NUMA placement progress
// goes to stderr.
Result<ModelOptions> model_options(const ComputeArgs& args);

// "2 threads (pinned), KV cache f16, qgemm avx512 (avx512-vnni), prompt
// batches auto (onednn avx512-bf16)" or "..., matmul_ref (reference)".
std::string compute_summary(const Model& model);

}  // namespace strata::tools
