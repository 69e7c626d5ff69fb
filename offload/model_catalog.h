// Built-in real models (published hyper-parameters) and quantization schemes,
// so the planner can describe "DeepSeek-V3 at Q4_K_M" without the file. A
// scheme assigns every tensor a type the way the common quantizers do; the
// choice per role is stated in the scheme's notes and echoed by reports.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "offload/model_desc.h"
#include "runtime/base/status.h"

namespace strata {

struct CatalogModel {
  std::string key;      // "deepseek-v3": what --model takes
  std::string name;     // "DeepSeek-V3/R1 671B"
  std::vector<std::string> aliases;  // "deepseek-r1", ...
  ModelDims dims;
  std::string native_format;  // format of the original checkpoint: "FP8", "BF16"
  double published_total_b = 0;   // parameters as the model card states them, billions
  double published_active_b = 0;  // 0 for dense models
};

const std::vector<CatalogModel>& model_catalog();
// Matches key or alias, case-insensitive. The error lists the known names.
Result<const CatalogModel*> find_catalog_model(std::string_view name);
std::string catalog_model_list();  // "deepseek-v3, kimi-k2, ..."

// How one tensor is stored under a scheme: the kernel type the CPU rate is
// looked up by, and its size. For GGUF types bytes follow the block layout;
// FP8/INT8/INT4 checkpoints use their own bytes and the nearest GGUF type's
// kernel rate (q8_0 for 8-bit, q4_0 for 4-bit).
struct TensorFormat {
  DType kernel_type = DType::kF32;
  uint64_t n_bytes = 0;
};

struct QuantScheme {
  std::string name;         // "Q4_K_M"
  std::string description;  // one line: the per-role choice
  bool gguf = true;         // a GGUF mix (llama.cpp / community recipes) or a checkpoint format
};

std::vector<QuantScheme> quant_schemes();
Result<QuantScheme> find_quant_scheme(std::string_view name);  // case-insensitive
std::string quant_scheme_list();

// The format of tensor `t` of a model of `dims` under `scheme`.
TensorFormat tensor_format(const QuantScheme& scheme, const ModelDims& dims, const TensorDesc& t);

// A catalog model at a quantization: tensor table typed by the scheme.
Result<ModelDesc> catalog_model_desc(std::string_view model, std::string_view quant);
ModelDesc catalog_model_desc(const CatalogModel& model, const QuantScheme& scheme);

}  // namespace strata
