// The planner's description of a GGUF model, from its metadata and tensor
// table (the hyper-parameters the runtime reads, the tensors' real types).
#include "runtime/model/plan_input.h"

#include <cstdio>
#include <map>

#include "runtime/model/arch.h"

namespace strata {
namespace {

ModelDims dims_from_hparams(const HParams& hp) {
  ModelDims d;
  d.arch = std::string(arch_name(hp.arch));
  d.n_vocab = hp.n_vocab;
  d.n_ctx_train = hp.n_ctx_train;
  d.n_embd = hp.n_embd;
  d.n_layer = hp.n_layer;
  d.n_ff = hp.n_ff;
  d.n_head = hp.n_head;
  d.n_head_kv = hp.n_head_kv;
  d.n_embd_head_k = hp.n_embd_head_k;
  d.n_embd_head_v = hp.n_embd_head_v;
  d.n_rot = hp.n_rot;
  d.tied_embeddings = hp.tied_embeddings;
  d.qkv_bias = hp.qkv_bias;
  d.n_expert = hp.n_expert;
  d.n_expert_used = hp.n_expert_used;
  d.n_ff_exp = hp.n_ff_exp;
  d.n_expert_shared = hp.n_expert_shared;
  d.n_ff_shexp = hp.n_ff_shexp;
  d.n_layer_dense_lead = hp.n_layer_dense_lead;
  d.expert_bias = hp.arch == Arch::kDeepseek2 && hp.expert_gating == ExpertGating::kSigmoid;
  d.q_lora_rank = hp.q_lora_rank;
  d.kv_lora_rank = hp.kv_lora_rank;
  d.n_embd_head_k_mla = hp.n_embd_head_k_mla;
  d.n_embd_head_v_mla = hp.n_embd_head_v_mla;
  return d;
}

}  // namespace

Result<ModelDesc> model_desc_from_gguf(const gguf::GgufModel& file, const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(HParams hp, read_hparams(file));
  ModelShape shape = describe_model(file, hp);
  // The quant label: the type holding most bytes.
  std::map<DType, uint64_t> by_type;
  for (const TensorDesc& t : shape.tensors) by_type[t.dtype] += t.n_bytes;
  DType dom = DType::kF32;
  uint64_t best = 0;
  for (const auto& [t, b] : by_type) {
    if (b > best) dom = t, best = b;
  }
  std::string name = hp.name.empty() ? path.substr(path.find_last_of('/') + 1) : hp.name;
  auto r = describe_for_plan(name, std::string(dtype_name(dom)), path, dims_from_hparams(hp), std::move(shape));
  if (!r.is_ok()) return Status(r.status().code(), path + ": " + r.status().message());
  ModelDesc m = std::move(r).value();
  std::string mix;
  for (const auto& [t, b] : by_type) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s %.1f%%", std::string(dtype_name(t)).c_str(), 100.0 * double(b) / double(m.routed_bytes + m.resident_bytes));
    mix += (mix.empty() ? "" : ", ") + std::string(buf);
  }
  m.notes.push_back("types from the file's tensor table: " + mix);
  return m;
}

Result<ModelDesc> model_desc_from_gguf(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(auto file, gguf::GgufModel::open(path));
  return model_desc_from_gguf(file, path);
}

}  // namespace strata
