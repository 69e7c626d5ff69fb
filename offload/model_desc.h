// A model as the planner and cost model see it: the hyper-parameters that
// decide bytes and FLOPs, the tensor table with roles and types, and the
// figures derived from them (bytes by role, bytes one token reads, KV-cache
// bytes per token, attention FLOPs per cached position). Built from a GGUF
// file's metadata and tensor table (no weights read) or from the catalog.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offload/model_shape.h"
#include "runtime/base/status.h"

namespace strata {

enum class AttentionKind : uint8_t {
  kGqa,  // grouped-query (multi-head when n_head_kv == n_head): K and V per kv head cached
  kMla,  // multi-head latent attention: one latent of kv_lora_rank + rope dims cached
};

// The hyper-parameters that decide a model's bytes and FLOPs, named as GGUF
// names them. offload/ cannot see runtime/'s HParams; tools/ converts.
struct ModelDims {
  std::string arch;  // GGUF general.architecture: deepseek2, qwen3moe, qwen2moe, llama, qwen2, qwen3
  uint32_t n_vocab = 0;
  uint32_t n_ctx_train = 0;
  uint32_t n_embd = 0;
  uint32_t n_layer = 0;
  uint32_t n_ff = 0;  // dense FFN width (llama MoE: also the expert width)
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t n_embd_head_k = 0;
  uint32_t n_embd_head_v = 0;
  uint32_t n_rot = 0;
  bool tied_embeddings = false;
  bool qkv_bias = false;

  uint32_t n_expert = 0;
  uint32_t n_expert_used = 0;
  uint32_t n_ff_exp = 0;
  uint32_t n_expert_shared = 0;
  uint32_t n_ff_shexp = 0;  // qwen2moe
  uint32_t n_layer_dense_lead = 0;
  bool expert_bias = false;  // deepseek2 sigmoid gating: exp_probs_b

  uint32_t q_lora_rank = 0;
  uint32_t kv_lora_rank = 0;  // > 0: MLA
  uint32_t n_embd_head_k_mla = 0;
  uint32_t n_embd_head_v_mla = 0;

  bool is_moe() const { return n_expert > 0; }
  bool layer_is_moe(uint32_t il) const { return is_moe() && il >= n_layer_dense_lead; }
  AttentionKind attention() const { return kv_lora_rank > 0 ? AttentionKind::kMla : AttentionKind::kGqa; }
  uint32_t expert_ff() const { return arch == "llama" ? n_ff : n_ff_exp; }
};

// Checks the dimensions a cost model divides by or multiplies with; the error
// names the field: "n_expert_used: expected 1..256, got 300".
Status validate_dims(const ModelDims& d);

// The tensor table a model of these dimensions has (GGUF names, shapes in
// GGUF order, roles, layers), with dtype F32 and n_bytes 0: a quant scheme
// (model_catalog.h) fills types and bytes.
ModelShape shape_from_dims(const ModelDims& d);

struct ModelDesc {
  std::string name;    // "DeepSeek-V3 671B"
  std::string quant;   // "Q4_K_M", or the file's dominant type ("q4_k")
  std::string source;  // "catalog" or the file path
  ModelDims dims;
  ModelShape shape;
  RoleSummary roles;
  // Notes on how bytes were derived ("Q4_K_M as llama.cpp quantizes: ..."),
  // echoed by reports.
  std::vector<std::string> notes;

  uint64_t total_params = 0;
  uint64_t active_params = 0;   // per token: non-expert weights, one embedding row, k of n experts
  uint64_t routed_bytes = 0;    // all routed experts
  uint64_t resident_bytes = 0;  // everything but routed experts
  std::vector<uint32_t> moe_layers;           // layers with routed experts, ascending
  std::vector<uint64_t> expert_bytes_per_layer;  // one expert (gate+up+down) of each MoE layer, same order
  uint64_t kv_bytes_per_token = 0;  // cache of one token over all layers, f16 entries
  // Multiply-adds x 2 of attention per token per cached position, all layers
  // (MLA as absorbed into the latent: scores and values over kv_lora + rope).
  uint64_t attn_flops_per_position = 0;

  bool is_moe() const { return dims.is_moe(); }
  // Bytes of the routed experts one token reads (k of n per MoE layer).
  uint64_t routed_active_bytes() const;
  // Bytes of everything else one token reads (the embedding: one row).
  uint64_t resident_active_bytes() const { return roles.active_bytes_per_token - routed_active_bytes(); }
  uint64_t expert_bytes_total_per_layer(size_t moe_index) const;
};

// Derives the figures above from dims and a typed tensor table. Errors name
// the inconsistent field (a routed tensor outside the layer stack, an
// expert count that disagrees with the tensor's third dimension).
Result<ModelDesc> describe_for_plan(std::string name, std::string quant, std::string source, const ModelDims& dims,
                                    ModelShape shape);

// Elements of a tensor (product of ne).
uint64_t tensor_elems(const TensorDesc& t);

}  // namespace strata
