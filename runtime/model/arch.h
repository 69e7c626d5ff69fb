// Architectures strata understands: GGUF metadata keys, hyper-parameters and
// the tensor table (names, shapes, roles) of each. One table per
// `general.architecture`; everything that reads or writes a model uses it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offload/model_shape.h"
#include "runtime/base/status.h"

namespace strata {
namespace gguf {
class GgufModel;
class GgufWriter;
}  // namespace gguf

enum class Arch { kDeepseek2, kQwen3Moe, kQwen2Moe, kLlama, kQwen2, kQwen3 };

std::string_view arch_name(Arch a);  // the GGUF general.architecture string
std::optional<Arch> arch_from_name(std::string_view name);
std::string supported_arch_list();  // "deepseek2, qwen3moe, ..." for error messages

enum class ExpertGating : uint32_t { kNone = 0, kSoftmax = 1, kSigmoid = 2 };  // GGUF expert_gating_func

// Hyper-parameters, named as GGUF names them. Zero means "not used by this
// architecture" unless stated.
struct HParams {
  Arch arch = Arch::kLlama;
  std::string name;  // general.name
  uint32_t n_vocab = 0;
  uint32_t n_ctx_train = 0;
  uint32_t n_embd = 0;
  uint32_t n_layer = 0;
  uint32_t n_ff = 0;  // dense FFN width (llama: also the width of Mixtral experts)
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t n_embd_head_k = 0;  // per-head key width (MLA: kv_lora_rank + rope dims)
  uint32_t n_embd_head_v = 0;
  uint32_t n_rot = 0;          // rotary dims per head
  float rms_eps = 1e-6f;
  float rope_freq_base = 10000.0f;
  bool tied_embeddings = false;  // no output.weight: the head reuses token_embd
  bool qkv_bias = false;         // qwen2 / qwen2moe

  // Mixture of experts.
  uint32_t n_expert = 0;
  uint32_t n_expert_used = 0;
  uint32_t n_ff_exp = 0;
  uint32_t n_expert_shared = 0;
  uint32_t n_ff_shexp = 0;           // qwen2moe shared-expert width
  uint32_t n_layer_dense_lead = 0;   // deepseek2: first layers are dense
  float expert_weights_scale = 1.0f;
  bool expert_weights_norm = false;
  ExpertGating expert_gating = ExpertGating::kNone;
  uint32_t n_expert_groups = 0;
  uint32_t n_group_used = 0;

  // Multi-head latent attention (deepseek2).
  uint32_t q_lora_rank = 0;  // 0: plain attn_q
  uint32_t kv_lora_rank = 0;
  uint32_t n_embd_head_k_mla = 0;  // qk_nope + qk_rope
  uint32_t n_embd_head_v_mla = 0;

  // RoPE scaling (rope.scaling.*).
  std::string rope_scaling_type;  // "", "linear", "yarn"
  float rope_scaling_factor = 0.0f;
  uint32_t rope_scaling_orig_ctx = 0;
  float rope_yarn_log_mul = 0.0f;

  bool is_moe() const { return n_expert > 0; }
  bool layer_is_moe(uint32_t il) const { return is_moe() && il >= n_layer_dense_lead; }
};

// Read and validate hyper-parameters from a GGUF file's metadata. Errors name
// the key: "FILE: deepseek2.attention.kv_lora_rank: expected ... got ...".
Result<HParams> read_hparams(const gguf::GgufModel& model);

// Check that the hyper-parameters are internally consistent (head dims divide,
// experts used <= experts, ...). Used by read_hparams and by mkmodel.
Status validate_hparams(const HParams& hp);

// Write the metadata keys the community converter writes for this arch.
void write_hparams(const HParams& hp, gguf::GgufWriter& w);

// The tensors a model of these hyper-parameters has, in file order, with
// shapes in GGUF order (ne[0] = row length) and roles.
struct TensorSpec {
  std::string name;
  std::vector<uint64_t> ne;
  TensorRole role;
  int layer;  // -1 outside the layer stack
};
std::vector<TensorSpec> arch_tensors(const HParams& hp);

// Role of a GGUF tensor name ("blk.3.ffn_up_exps.weight"), and its layer.
TensorRole tensor_role_from_name(std::string_view name, int* layer);

// The model as offload/ sees it: every tensor of the file with its role.
ModelShape describe_model(const gguf::GgufModel& model, const HParams& hp);

}  // namespace strata
