// Model description for the planner: the tensor table of given dimensions
// and the byte, parameter and FLOP figures derived from a typed table.
#include "offload/model_desc.h"

#include <algorithm>
#include <map>

namespace strata {
namespace {

std::string blk(uint32_t il, const char* what) { return "blk." + std::to_string(il) + "." + what; }

Status bad(const std::string& field, const std::string& expected, uint64_t got) {
  return invalid_argument("model " + field + ": expected " + expected + ", got " + std::to_string(got));
}

}  // namespace

uint64_t tensor_elems(const TensorDesc& t) {
  uint64_t n = 1;
  for (int i = 0; i < std::max(t.n_dims, 1) && i < 4; ++i) n *= t.ne[i];
  return n;
}

Status validate_dims(const ModelDims& d) {
  static const char* kArchs[] = {"deepseek2", "qwen3moe", "qwen2moe", "llama", "qwen2", "qwen3"};
  if (std::find(std::begin(kArchs), std::end(kArchs), d.arch) == std::end(kArchs)) {
    return invalid_argument("model arch: expected one of deepseek2, qwen3moe, qwen2moe, llama, qwen2, qwen3, got '" +
                            d.arch + "'");
  }
  if (d.n_layer == 0 || d.n_layer > 4096) return bad("n_layer", "1..4096", d.n_layer);
  if (d.n_embd == 0) return bad("n_embd", "> 0", 0);
  if (d.n_vocab == 0) return bad("n_vocab", "> 0", 0);
  if (d.n_head == 0) return bad("n_head", "> 0", 0);
  if (d.n_head_kv == 0 || d.n_head % d.n_head_kv != 0) {
    return bad("n_head_kv", "a divisor of n_head " + std::to_string(d.n_head), d.n_head_kv);
  }
  if (d.n_embd_head_k == 0 || d.n_embd_head_v == 0) return bad("n_embd_head_k/v", "> 0", 0);
  if (d.is_moe()) {
    if (d.n_expert_used == 0 || d.n_expert_used > d.n_expert) {
      return bad("n_expert_used", "1.." + std::to_string(d.n_expert), d.n_expert_used);
    }
    if (d.expert_ff() == 0) return bad("n_ff_exp", "> 0 for a model with experts", 0);
    if (d.n_layer_dense_lead > d.n_layer) {
      return bad("n_layer_dense_lead", "<= n_layer " + std::to_string(d.n_layer), d.n_layer_dense_lead);
    }
  } else if (d.n_ff == 0) {
    return bad("n_ff", "> 0", 0);
  }
  if (d.n_layer_dense_lead > 0 && d.n_ff == 0) return bad("n_ff", "> 0 (the model has dense layers)", 0);
  if (d.arch == "deepseek2") {
    if (d.kv_lora_rank == 0) return bad("kv_lora_rank", "> 0 for deepseek2", 0);
    if (d.n_embd_head_k_mla <= d.n_rot || d.n_embd_head_v_mla == 0) {
      return bad("n_embd_head_k_mla", "> n_rot " + std::to_string(d.n_rot), d.n_embd_head_k_mla);
    }
  }
  return Status::ok();
}

// The same table as runtime/model/arch.cpp's arch_tensors (the catalog test
// checks the two agree tensor by tensor).
ModelShape shape_from_dims(const ModelDims& d) {
  using R = TensorRole;
  ModelShape s;
  s.n_layer = static_cast<int>(d.n_layer);
  s.n_expert = d.n_expert;
  s.n_expert_used = d.n_expert_used;
  s.n_vocab = d.n_vocab;
  const uint64_t E = d.n_embd;
  auto add = [&](std::string name, std::initializer_list<uint64_t> ne, R role, int layer) {
    TensorDesc t;
    t.name = std::move(name);
    t.role = role;
    t.layer = layer;
    t.n_dims = static_cast<int>(ne.size());
    int i = 0;
    for (uint64_t v : ne) t.ne[i++] = v;
    s.tensors.push_back(std::move(t));
  };
  add("token_embd.weight", {E, d.n_vocab}, R::kEmbedding, -1);
  const bool qk_norm = d.arch == "qwen3" || d.arch == "qwen3moe";
  for (uint32_t il = 0; il < d.n_layer; ++il) {
    const int L = static_cast<int>(il);
    add(blk(il, "attn_norm.weight"), {E}, R::kNorm, L);
    if (d.attention() == AttentionKind::kMla) {
      const uint64_t H = d.n_head, nope = d.n_embd_head_k_mla - d.n_rot, qk = d.n_embd_head_k_mla;
      if (d.q_lora_rank) {
        add(blk(il, "attn_q_a_norm.weight"), {d.q_lora_rank}, R::kNorm, L);
        add(blk(il, "attn_q_a.weight"), {E, d.q_lora_rank}, R::kAttention, L);
        add(blk(il, "attn_q_b.weight"), {d.q_lora_rank, H * qk}, R::kAttention, L);
      } else {
        add(blk(il, "attn_q.weight"), {E, H * qk}, R::kAttention, L);
      }
      add(blk(il, "attn_kv_a_norm.weight"), {d.kv_lora_rank}, R::kNorm, L);
      add(blk(il, "attn_kv_a_mqa.weight"), {E, uint64_t{d.kv_lora_rank} + d.n_rot}, R::kAttention, L);
      add(blk(il, "attn_k_b.weight"), {nope, d.kv_lora_rank, H}, R::kAttention, L);
      add(blk(il, "attn_v_b.weight"), {d.kv_lora_rank, d.n_embd_head_v_mla, H}, R::kAttention, L);
      add(blk(il, "attn_output.weight"), {H * d.n_embd_head_v_mla, E}, R::kAttention, L);
    } else {
      const uint64_t q = uint64_t{d.n_head} * d.n_embd_head_k, k = uint64_t{d.n_head_kv} * d.n_embd_head_k,
                     v = uint64_t{d.n_head_kv} * d.n_embd_head_v;
      add(blk(il, "attn_q.weight"), {E, q}, R::kAttention, L);
      add(blk(il, "attn_k.weight"), {E, k}, R::kAttention, L);
      add(blk(il, "attn_v.weight"), {E, v}, R::kAttention, L);
      if (d.qkv_bias) {
        add(blk(il, "attn_q.bias"), {q}, R::kAttention, L);
        add(blk(il, "attn_k.bias"), {k}, R::kAttention, L);
        add(blk(il, "attn_v.bias"), {v}, R::kAttention, L);
      }
      if (qk_norm) {
        add(blk(il, "attn_q_norm.weight"), {d.n_embd_head_k}, R::kNorm, L);
        add(blk(il, "attn_k_norm.weight"), {d.n_embd_head_k}, R::kNorm, L);
      }
      add(blk(il, "attn_output.weight"), {uint64_t{d.n_head} * d.n_embd_head_v, E}, R::kAttention, L);
    }
    add(blk(il, "ffn_norm.weight"), {E}, R::kNorm, L);
    if (!d.layer_is_moe(il)) {
      add(blk(il, "ffn_gate.weight"), {E, d.n_ff}, R::kDenseFfn, L);
      add(blk(il, "ffn_up.weight"), {E, d.n_ff}, R::kDenseFfn, L);
      add(blk(il, "ffn_down.weight"), {d.n_ff, E}, R::kDenseFfn, L);
      continue;
    }
    const uint64_t X = d.n_expert, F = d.expert_ff();
    add(blk(il, "ffn_gate_inp.weight"), {E, X}, R::kRouter, L);
    if (d.expert_bias) add(blk(il, "exp_probs_b.bias"), {X}, R::kRouter, L);
    add(blk(il, "ffn_gate_exps.weight"), {E, F, X}, R::kRoutedExpert, L);
    add(blk(il, "ffn_up_exps.weight"), {E, F, X}, R::kRoutedExpert, L);
    add(blk(il, "ffn_down_exps.weight"), {F, E, X}, R::kRoutedExpert, L);
    const uint64_t shexp = d.arch == "qwen2moe"    ? d.n_ff_shexp
                           : d.arch == "deepseek2" ? uint64_t{d.n_ff_exp} * d.n_expert_shared
                                                   : 0;
    if (shexp) {
      if (d.arch == "qwen2moe") add(blk(il, "ffn_gate_inp_shexp.weight"), {E}, R::kSharedExpert, L);
      add(blk(il, "ffn_gate_shexp.weight"), {E, shexp}, R::kSharedExpert, L);
      add(blk(il, "ffn_up_shexp.weight"), {E, shexp}, R::kSharedExpert, L);
      add(blk(il, "ffn_down_shexp.weight"), {shexp, E}, R::kSharedExpert, L);
    }
  }
  add("output_norm.weight", {E}, R::kNorm, -1);
  if (!d.tied_embeddings) add("output.weight", {E, d.n_vocab}, R::kOutput, -1);
  return s;
}

uint64_t ModelDesc::routed_active_bytes() const {
  if (!dims.is_moe()) return 0;
  unsigned __int128 b = static_cast<unsigned __int128>(roles.of(TensorRole::kRoutedExpert)) * dims.n_expert_used;
  return static_cast<uint64_t>(b / dims.n_expert);
}

uint64_t ModelDesc::expert_bytes_total_per_layer(size_t moe_index) const {
  return moe_index < expert_bytes_per_layer.size() ? expert_bytes_per_layer[moe_index] * dims.n_expert : 0;
}

Result<ModelDesc> describe_for_plan(std::string name, std::string quant, std::string source, const ModelDims& dims,
                                    ModelShape shape) {
  STRATA_RETURN_IF_ERROR(validate_dims(dims));
  ModelDesc m;
  m.name = std::move(name);
  m.quant = std::move(quant);
  m.source = std::move(source);
  m.dims = dims;
  shape.n_layer = static_cast<int>(dims.n_layer);
  shape.n_expert = dims.n_expert;
  shape.n_expert_used = dims.n_expert_used;
  shape.n_vocab = dims.n_vocab;

  std::map<uint32_t, uint64_t> routed_by_layer;
  unsigned __int128 active = 0;  // params x n_expert, to keep k/n exact
  const uint64_t X = std::max<uint64_t>(dims.n_expert, 1);
  for (const TensorDesc& t : shape.tensors) {
    const uint64_t n = tensor_elems(t);
    m.total_params += n;
    switch (t.role) {
      case TensorRole::kRoutedExpert:
        if (t.layer < 0 || t.layer >= static_cast<int>(dims.n_layer)) {
          return invalid_argument("model tensor " + t.name + ": expected a routed-expert tensor inside the layer stack (0.." +
                                  std::to_string(dims.n_layer - 1) + "), got layer " + std::to_string(t.layer));
        }
        if (!dims.is_moe() || t.ne[2] != dims.n_expert) {
          return invalid_argument("model tensor " + t.name + ": expected " + std::to_string(dims.n_expert) +
                                  " experts in dimension 2, got " + std::to_string(t.ne[2]));
        }
        routed_by_layer[static_cast<uint32_t>(t.layer)] += t.n_bytes;
        m.routed_bytes += t.n_bytes;
        active += static_cast<unsigned __int128>(n) * dims.n_expert_used;
        break;
      case TensorRole::kEmbedding:
        m.resident_bytes += t.n_bytes;
        active += static_cast<unsigned __int128>(t.ne[0]) * X;  // one row
        break;
      default:
        m.resident_bytes += t.n_bytes;
        active += static_cast<unsigned __int128>(n) * X;
    }
  }
  m.active_params = static_cast<uint64_t>(active / X);
  for (const auto& [layer, bytes] : routed_by_layer) {
    m.moe_layers.push_back(layer);
    m.expert_bytes_per_layer.push_back(bytes / X);
  }

  const uint64_t L = dims.n_layer;
  if (dims.attention() == AttentionKind::kMla) {
    const uint64_t latent = uint64_t{dims.kv_lora_rank} + dims.n_rot;
    m.kv_bytes_per_token = latent * 2 * L;
    // Absorbed MLA: scores over the latent + rope part, values over the latent.
    m.attn_flops_per_position = 2 * uint64_t{dims.n_head} * (latent + dims.kv_lora_rank) * L;
  } else {
    m.kv_bytes_per_token = uint64_t{dims.n_head_kv} * (uint64_t{dims.n_embd_head_k} + dims.n_embd_head_v) * 2 * L;
    m.attn_flops_per_position = 2 * uint64_t{dims.n_head} * (uint64_t{dims.n_embd_head_k} + dims.n_embd_head_v) * L;
  }
  m.roles = summarize_roles(shape);
  m.shape = std::move(shape);
  return m;
}

}  // namespace strata
