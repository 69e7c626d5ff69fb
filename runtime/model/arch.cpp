// Per-architecture tables: metadata keys, hyper-parameter validation and the
// tensor list. Names and key spellings follow the community GGUF converter so
// files we write match files users download.
#include "runtime/model/arch.h"

#include <charconv>
#include <cmath>

#include "runtime/gguf/gguf_reader.h"
#include "runtime/gguf/gguf_writer.h"

namespace strata {

namespace {

struct ArchName {
  Arch arch;
  std::string_view name;
};
constexpr ArchName kArchNames[] = {
    {Arch::kDeepseek2, "deepseek2"}, {Arch::kQwen3Moe, "qwen3moe"}, {Arch::kQwen2Moe, "qwen2moe"},
    {Arch::kLlama, "llama"},         {Arch::kQwen2, "qwen2"},       {Arch::kQwen3, "qwen3"},
};

// Typed, validated access to "{arch}.<suffix>" keys.
class KeyReader {
 public:
  KeyReader(const gguf::GgufModel& m, std::string_view arch) : m_(m), prefix_(std::string(arch) + ".") {}

  Status u32(const std::string& suffix, uint32_t* out, bool required) const {
    std::string key = prefix_ + suffix;
    const gguf::Value* v = m_.find(key);
    if (!v) {
      if (!required) return Status::ok();
      return invalid_format(m_.first().path + ": " + key + ": expected an integer, got nothing (key missing)");
    }
    // Some converters store per-layer arrays (head_count_kv); all entries must agree.
    if (v->is_array() && v->array_size() > 0 && gguf::value_type_is_integer(v->array_type())) {
      int64_t first = v->int_at(0);
      for (uint64_t i = 1; i < v->array_size(); ++i) {
        if (v->int_at(i) != first) {
          return unsupported(m_.first().path + ": " + key + ": per-layer values differ (layer 0: " +
                             std::to_string(first) + ", layer " + std::to_string(i) + ": " +
                             std::to_string(v->int_at(i)) + ")");
        }
      }
      if (first < 0 || first > UINT32_MAX) return bad_(key, *v);
      *out = static_cast<uint32_t>(first);
      return Status::ok();
    }
    auto x = v->as_u64();
    if (!x || *x > UINT32_MAX) return bad_(key, *v);
    *out = static_cast<uint32_t>(*x);
    return Status::ok();
  }

  Status f32(const std::string& suffix, float* out) const {
    std::string key = prefix_ + suffix;
    const gguf::Value* v = m_.find(key);
    if (!v) return Status::ok();
    auto x = v->as_f64();
    if (!x || !std::isfinite(*x)) {
      return invalid_format(m_.first().path + ": " + key + ": expected a finite number, got " +
                            gguf::value_type_name(v->type()) + " " + v->summary());
    }
    *out = static_cast<float>(*x);
    return Status::ok();
  }

  Status boolean(const std::string& suffix, bool* out) const {
    std::string key = prefix_ + suffix;
    const gguf::Value* v = m_.find(key);
    if (!v) return Status::ok();
    auto x = v->as_bool();
    if (!x) return invalid_format(m_.first().path + ": " + key + ": expected a bool, got " + v->summary());
    *out = *x;
    return Status::ok();
  }

  Status string(const std::string& suffix, std::string* out) const {
    std::string key = prefix_ + suffix;
    const gguf::Value* v = m_.find(key);
    if (!v) return Status::ok();
    if (!v->as_string()) return invalid_format(m_.first().path + ": " + key + ": expected a string, got " + v->summary());
    *out = *v->as_string();
    return Status::ok();
  }

 private:
  Status bad_(const std::string& key, const gguf::Value& v) const {
    return invalid_format(m_.first().path + ": " + key + ": expected an integer 0..4294967295, got " +
                          gguf::value_type_name(v.type()) + " " + v.summary());
  }
  const gguf::GgufModel& m_;
  std::string prefix_;
};

std::string blk(uint32_t il, const char* what) { return "blk." + std::to_string(il) + "." + what; }

}  // namespace

std::string_view arch_name(Arch a) {
  for (const auto& e : kArchNames) {
    if (e.arch == a) return e.name;
  }
  return "unknown";
}

std::optional<Arch> arch_from_name(std::string_view name) {
  for (const auto& e : kArchNames) {
    if (e.name == name) return e.arch;
  }
  return std::nullopt;
}

std::string supported_arch_list() {
  std::string s;
  for (const auto& e : kArchNames) {
    if (!s.empty()) s += ", ";
    s += e.name;
  }
  return s;
}

Result<HParams> read_hparams(const gguf::GgufModel& model) {
  const std::string& path = model.first().path;
  auto arch_str = model.get_string("general.architecture");
  if (!arch_str) return invalid_format(path + ": general.architecture: expected a string, got nothing");
  auto arch = arch_from_name(*arch_str);
  if (!arch) {
    return unsupported(path + ": general.architecture: expected one of " + supported_arch_list() + ", got '" +
                       *arch_str + "'");
  }
  HParams hp;
  hp.arch = *arch;
  hp.name = model.get_string("general.name").value_or("");
  KeyReader k(model, *arch_str);
  STRATA_RETURN_IF_ERROR(k.u32("block_count", &hp.n_layer, true));
  STRATA_RETURN_IF_ERROR(k.u32("embedding_length", &hp.n_embd, true));
  STRATA_RETURN_IF_ERROR(k.u32("context_length", &hp.n_ctx_train, false));
  STRATA_RETURN_IF_ERROR(k.u32("feed_forward_length", &hp.n_ff, false));
  STRATA_RETURN_IF_ERROR(k.u32("attention.head_count", &hp.n_head, true));
  hp.n_head_kv = hp.n_head;
  STRATA_RETURN_IF_ERROR(k.u32("attention.head_count_kv", &hp.n_head_kv, false));
  STRATA_RETURN_IF_ERROR(k.f32("attention.layer_norm_rms_epsilon", &hp.rms_eps));
  STRATA_RETURN_IF_ERROR(k.f32("rope.freq_base", &hp.rope_freq_base));
  if (hp.n_head > 0 && hp.n_embd % hp.n_head == 0) hp.n_embd_head_k = hp.n_embd_head_v = hp.n_embd / hp.n_head;
  STRATA_RETURN_IF_ERROR(k.u32("attention.key_length", &hp.n_embd_head_k, false));
  STRATA_RETURN_IF_ERROR(k.u32("attention.value_length", &hp.n_embd_head_v, false));
  hp.n_rot = hp.n_embd_head_k;
  STRATA_RETURN_IF_ERROR(k.u32("rope.dimension_count", &hp.n_rot, false));

  STRATA_RETURN_IF_ERROR(k.u32("expert_count", &hp.n_expert, false));
  STRATA_RETURN_IF_ERROR(k.u32("expert_used_count", &hp.n_expert_used, false));
  STRATA_RETURN_IF_ERROR(k.u32("expert_feed_forward_length", &hp.n_ff_exp, false));
  STRATA_RETURN_IF_ERROR(k.u32("expert_shared_count", &hp.n_expert_shared, false));
  STRATA_RETURN_IF_ERROR(k.u32("expert_shared_feed_forward_length", &hp.n_ff_shexp, false));
  STRATA_RETURN_IF_ERROR(k.u32("leading_dense_block_count", &hp.n_layer_dense_lead, false));
  STRATA_RETURN_IF_ERROR(k.f32("expert_weights_scale", &hp.expert_weights_scale));
  STRATA_RETURN_IF_ERROR(k.boolean("expert_weights_norm", &hp.expert_weights_norm));
  uint32_t gating = 0;
  STRATA_RETURN_IF_ERROR(k.u32("expert_gating_func", &gating, false));
  if (gating > 2) {
    return unsupported(path + ": " + *arch_str + ".expert_gating_func: expected 1 (softmax) or 2 (sigmoid), got " +
                       std::to_string(gating));
  }
  hp.expert_gating = static_cast<ExpertGating>(gating);
  STRATA_RETURN_IF_ERROR(k.u32("expert_group_count", &hp.n_expert_groups, false));
  STRATA_RETURN_IF_ERROR(k.u32("expert_group_used_count", &hp.n_group_used, false));

  STRATA_RETURN_IF_ERROR(k.u32("attention.q_lora_rank", &hp.q_lora_rank, false));
  STRATA_RETURN_IF_ERROR(k.u32("attention.kv_lora_rank", &hp.kv_lora_rank, false));
  STRATA_RETURN_IF_ERROR(k.u32("attention.key_length_mla", &hp.n_embd_head_k_mla, false));
  STRATA_RETURN_IF_ERROR(k.u32("attention.value_length_mla", &hp.n_embd_head_v_mla, false));

  STRATA_RETURN_IF_ERROR(k.string("rope.scaling.type", &hp.rope_scaling_type));
  STRATA_RETURN_IF_ERROR(k.f32("rope.scaling.factor", &hp.rope_scaling_factor));
  STRATA_RETURN_IF_ERROR(k.u32("rope.scaling.original_context_length", &hp.rope_scaling_orig_ctx, false));
  STRATA_RETURN_IF_ERROR(k.f32("rope.scaling.yarn_log_multiplier", &hp.rope_yarn_log_mul));

  if (const gguf::Value* toks = model.find("tokenizer.ggml.tokens"); toks && toks->is_array()) {
    hp.n_vocab = static_cast<uint32_t>(toks->array_size());
  }
  if (const gguf::TensorInfo* embd = model.find_tensor("token_embd.weight"); embd && embd->n_dims >= 2) {
    if (hp.n_vocab == 0) hp.n_vocab = static_cast<uint32_t>(embd->ne[1]);
  }
  STRATA_RETURN_IF_ERROR(k.u32("vocab_size", &hp.n_vocab, false));
  hp.tied_embeddings = model.find_tensor("output.weight") == nullptr;
  hp.qkv_bias = model.find_tensor("blk.0.attn_q.bias") != nullptr;

  Status s = validate_hparams(hp);
  if (!s.is_ok()) return Status(s.code(), path + ": " + s.message());
  return hp;
}

Status validate_hparams(const HParams& hp) {
  auto bad = [&](const std::string& what) { return invalid_format(std::string(arch_name(hp.arch)) + ": " + what); };
  if (hp.n_layer == 0 || hp.n_layer > 4096) return bad("block_count: expected 1..4096, got " + std::to_string(hp.n_layer));
  if (hp.n_embd == 0) return bad("embedding_length: expected > 0, got 0");
  if (hp.n_head == 0) return bad("attention.head_count: expected > 0, got 0");
  if (hp.n_head_kv == 0 || hp.n_head % hp.n_head_kv != 0) {
    return bad("attention.head_count_kv: expected a divisor of head_count " + std::to_string(hp.n_head) + ", got " +
               std::to_string(hp.n_head_kv));
  }
  if (hp.n_embd_head_k == 0 || hp.n_embd_head_v == 0) {
    return bad("attention.key_length/value_length: expected > 0 (embedding_length " + std::to_string(hp.n_embd) +
               " is not a multiple of head_count " + std::to_string(hp.n_head) + " and no key_length is set)");
  }
  if (hp.n_rot % 2 != 0 || hp.n_rot == 0) return bad("rope.dimension_count: expected an even number > 0, got " + std::to_string(hp.n_rot));
  if (hp.n_expert > 0) {
    if (hp.n_expert_used == 0 || hp.n_expert_used > hp.n_expert) {
      return bad("expert_used_count: expected 1.." + std::to_string(hp.n_expert) + ", got " + std::to_string(hp.n_expert_used));
    }
    if (hp.n_layer_dense_lead > hp.n_layer) {
      return bad("leading_dense_block_count: expected <= block_count " + std::to_string(hp.n_layer) + ", got " +
                 std::to_string(hp.n_layer_dense_lead));
    }
    if (hp.n_expert_groups > 1 && (hp.n_expert % hp.n_expert_groups != 0 || hp.n_group_used == 0 ||
                                   hp.n_group_used > hp.n_expert_groups)) {
      return bad("expert_group_count/expert_group_used_count: expected groups dividing " + std::to_string(hp.n_expert) +
                 " experts and 1..groups used, got " + std::to_string(hp.n_expert_groups) + "/" +
                 std::to_string(hp.n_group_used));
    }
    uint32_t ff_exp = hp.arch == Arch::kLlama ? hp.n_ff : hp.n_ff_exp;
    if (ff_exp == 0) return bad("expert_feed_forward_length: expected > 0 for a model with experts, got 0");
  } else if (hp.n_ff == 0) {
    return bad("feed_forward_length: expected > 0, got 0");
  }
  if (hp.arch == Arch::kDeepseek2) {
    if (hp.kv_lora_rank == 0) return bad("attention.kv_lora_rank: expected > 0, got 0");
    if (hp.n_embd_head_k_mla <= hp.n_rot || hp.n_embd_head_v_mla == 0) {
      return bad("attention.key_length_mla/value_length_mla: expected key_length_mla > rope.dimension_count " +
                 std::to_string(hp.n_rot) + " and value_length_mla > 0, got " + std::to_string(hp.n_embd_head_k_mla) +
                 "/" + std::to_string(hp.n_embd_head_v_mla) +
                 " (files converted before MLA tensors were split, with attn_kv_b, are not supported)");
    }
  }
  return Status::ok();
}

void write_hparams(const HParams& hp, gguf::GgufWriter& w) {
  using gguf::Value;
  const std::string a(arch_name(hp.arch));
  auto key = [&](const char* s) { return a + "." + s; };
  w.set("general.architecture", Value::string(a));
  if (!hp.name.empty()) w.set("general.name", Value::string(hp.name));
  w.set(key("block_count"), Value::u32(hp.n_layer));
  w.set(key("context_length"), Value::u32(hp.n_ctx_train));
  w.set(key("embedding_length"), Value::u32(hp.n_embd));
  if (hp.n_ff) w.set(key("feed_forward_length"), Value::u32(hp.n_ff));
  w.set(key("attention.head_count"), Value::u32(hp.n_head));
  w.set(key("attention.head_count_kv"), Value::u32(hp.n_head_kv));
  w.set(key("rope.freq_base"), Value::f32(hp.rope_freq_base));
  w.set(key("attention.layer_norm_rms_epsilon"), Value::f32(hp.rms_eps));
  if (hp.arch == Arch::kLlama || hp.arch == Arch::kDeepseek2) {
    w.set(key("vocab_size"), Value::u32(hp.n_vocab));
    w.set(key("rope.dimension_count"), Value::u32(hp.n_rot));
  }
  if (hp.arch == Arch::kQwen3 || hp.arch == Arch::kQwen3Moe || hp.arch == Arch::kDeepseek2) {
    w.set(key("attention.key_length"), Value::u32(hp.n_embd_head_k));
    w.set(key("attention.value_length"), Value::u32(hp.n_embd_head_v));
  }
  if (hp.is_moe()) {
    w.set(key("expert_count"), Value::u32(hp.n_expert));
    w.set(key("expert_used_count"), Value::u32(hp.n_expert_used));
    if (hp.arch != Arch::kLlama) w.set(key("expert_feed_forward_length"), Value::u32(hp.n_ff_exp));
  }
  if (hp.arch == Arch::kQwen2Moe) w.set(key("expert_shared_feed_forward_length"), Value::u32(hp.n_ff_shexp));
  if (hp.arch == Arch::kDeepseek2) {
    w.set(key("leading_dense_block_count"), Value::u32(hp.n_layer_dense_lead));
    if (hp.q_lora_rank) w.set(key("attention.q_lora_rank"), Value::u32(hp.q_lora_rank));
    w.set(key("attention.kv_lora_rank"), Value::u32(hp.kv_lora_rank));
    w.set(key("attention.key_length_mla"), Value::u32(hp.n_embd_head_k_mla));
    w.set(key("attention.value_length_mla"), Value::u32(hp.n_embd_head_v_mla));
    w.set(key("expert_shared_count"), Value::u32(hp.n_expert_shared));
    w.set(key("expert_weights_scale"), Value::f32(hp.expert_weights_scale));
    w.set(key("expert_weights_norm"), Value::boolean(hp.expert_weights_norm));
    w.set(key("expert_gating_func"), Value::u32(static_cast<uint32_t>(hp.expert_gating)));
    w.set(key("expert_group_count"), Value::u32(hp.n_expert_groups));
    w.set(key("expert_group_used_count"), Value::u32(hp.n_group_used));
  }
  if (!hp.rope_scaling_type.empty()) {
    w.set(key("rope.scaling.type"), Value::string(hp.rope_scaling_type));
    w.set(key("rope.scaling.factor"), Value::f32(hp.rope_scaling_factor));
    if (hp.rope_scaling_orig_ctx) w.set(key("rope.scaling.original_context_length"), Value::u32(hp.rope_scaling_orig_ctx));
    if (hp.rope_yarn_log_mul != 0.0f) w.set(key("rope.scaling.yarn_log_multiplier"), Value::f32(hp.rope_yarn_log_mul));
  }
}

std::vector<TensorSpec> arch_tensors(const HParams& hp) {
  using R = TensorRole;
  std::vector<TensorSpec> t;
  const uint64_t E = hp.n_embd;
  auto add = [&](std::string name, std::vector<uint64_t> ne, R role, int layer) {
    t.push_back({std::move(name), std::move(ne), role, layer});
  };
  add("token_embd.weight", {E, hp.n_vocab}, R::kEmbedding, -1);
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    const int L = static_cast<int>(il);
    add(blk(il, "attn_norm.weight"), {E}, R::kNorm, L);
    if (hp.arch == Arch::kDeepseek2) {
      const uint64_t H = hp.n_head, nope = hp.n_embd_head_k_mla - hp.n_rot, qk = hp.n_embd_head_k_mla;
      if (hp.q_lora_rank) {
        add(blk(il, "attn_q_a_norm.weight"), {hp.q_lora_rank}, R::kNorm, L);
        add(blk(il, "attn_q_a.weight"), {E, hp.q_lora_rank}, R::kAttention, L);
        add(blk(il, "attn_q_b.weight"), {hp.q_lora_rank, H * qk}, R::kAttention, L);
      } else {
        add(blk(il, "attn_q.weight"), {E, H * qk}, R::kAttention, L);
      }
      add(blk(il, "attn_kv_a_norm.weight"), {hp.kv_lora_rank}, R::kNorm, L);
      add(blk(il, "attn_kv_a_mqa.weight"), {E, uint64_t{hp.kv_lora_rank} + hp.n_rot}, R::kAttention, L);
      add(blk(il, "attn_k_b.weight"), {nope, hp.kv_lora_rank, H}, R::kAttention, L);
      add(blk(il, "attn_v_b.weight"), {hp.kv_lora_rank, hp.n_embd_head_v_mla, H}, R::kAttention, L);
      add(blk(il, "attn_output.weight"), {H * hp.n_embd_head_v_mla, E}, R::kAttention, L);
    } else {
      const uint64_t q = uint64_t{hp.n_head} * hp.n_embd_head_k, k = uint64_t{hp.n_head_kv} * hp.n_embd_head_k,
                     v = uint64_t{hp.n_head_kv} * hp.n_embd_head_v;
      add(blk(il, "attn_q.weight"), {E, q}, R::kAttention, L);
      add(blk(il, "attn_k.weight"), {E, k}, R::kAttention, L);
      add(blk(il, "attn_v.weight"), {E, v}, R::kAttention, L);
      if (hp.qkv_bias) {
        add(blk(il, "attn_q.bias"), {q}, R::kAttention, L);
        add(blk(il, "attn_k.bias"), {k}, R::kAttention, L);
        add(blk(il, "attn_v.bias"), {v}, R::kAttention, L);
      }
      if (hp.arch == Arch::kQwen3 || hp.arch == Arch::kQwen3Moe) {
        add(blk(il, "attn_q_norm.weight"), {hp.n_embd_head_k}, R::kNorm, L);
        add(blk(il, "attn_k_norm.weight"), {hp.n_embd_head_k}, R::kNorm, L);
      }
      add(blk(il, "attn_output.weight"), {uint64_t{hp.n_head} * hp.n_embd_head_v, E}, R::kAttention, L);
    }
    add(blk(il, "ffn_norm.weight"), {E}, R::kNorm, L);
    if (!hp.layer_is_moe(il)) {
      add(blk(il, "ffn_gate.weight"), {E, hp.n_ff}, R::kDenseFfn, L);
      add(blk(il, "ffn_up.weight"), {E, hp.n_ff}, R::kDenseFfn, L);
      add(blk(il, "ffn_down.weight"), {hp.n_ff, E}, R::kDenseFfn, L);
      continue;
    }
    const uint64_t X = hp.n_expert, F = hp.arch == Arch::kLlama ? hp.n_ff : hp.n_ff_exp;
    add(blk(il, "ffn_gate_inp.weight"), {E, X}, R::kRouter, L);
    if (hp.arch == Arch::kDeepseek2 && hp.expert_gating == ExpertGating::kSigmoid) {
      add(blk(il, "exp_probs_b.bias"), {X}, R::kRouter, L);
    }
    add(blk(il, "ffn_gate_exps.weight"), {E, F, X}, R::kRoutedExpert, L);
    add(blk(il, "ffn_up_exps.weight"), {E, F, X}, R::kRoutedExpert, L);
    add(blk(il, "ffn_down_exps.weight"), {F, E, X}, R::kRoutedExpert, L);
    uint64_t shexp = hp.arch == Arch::kQwen2Moe ? hp.n_ff_shexp
                     : hp.arch == Arch::kDeepseek2 ? uint64_t{hp.n_ff_exp} * hp.n_expert_shared
                                                   : 0;
    if (shexp) {
      if (hp.arch == Arch::kQwen2Moe) add(blk(il, "ffn_gate_inp_shexp.weight"), {E}, R::kSharedExpert, L);
      add(blk(il, "ffn_gate_shexp.weight"), {E, shexp}, R::kSharedExpert, L);
      add(blk(il, "ffn_up_shexp.weight"), {E, shexp}, R::kSharedExpert, L);
      add(blk(il, "ffn_down_shexp.weight"), {shexp, E}, R::kSharedExpert, L);
    }
  }
  add("output_norm.weight", {E}, R::kNorm, -1);
  if (!hp.tied_embeddings) add("output.weight", {E, hp.n_vocab}, R::kOutput, -1);
  return t;
}

TensorRole tensor_role_from_name(std::string_view name, int* layer) {
  using R = TensorRole;
  *layer = -1;
  std::string_view rest = name;
  if (rest.substr(0, 4) == "blk.") {
    rest.remove_prefix(4);
    size_t dot = rest.find('.');
    int il = 0;
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + (dot == std::string_view::npos ? rest.size() : dot), il);
    if (ec == std::errc() && dot != std::string_view::npos) {
      *layer = il;
      rest.remove_prefix(dot + 1);
    }
  }
  auto starts = [&](std::string_view p) { return rest.substr(0, p.size()) == p; };
  auto has = [&](std::string_view p) { return rest.find(p) != std::string_view::npos; };
  if (starts("token_embd")) return R::kEmbedding;
  if (starts("output_norm")) return R::kNorm;
  if (starts("output.")) return R::kOutput;
  if (has("norm")) return R::kNorm;
  if (has("_exps")) return R::kRoutedExpert;
  if (has("_shexp")) return R::kSharedExpert;
  if (starts("ffn_gate_inp") || starts("exp_probs_b")) return R::kRouter;
  if (starts("attn_")) return R::kAttention;
  if (starts("ffn_")) return R::kDenseFfn;
  return R::kOther;
}

ModelShape describe_model(const gguf::GgufModel& model, const HParams& hp) {
  ModelShape s;
  s.n_layer = static_cast<int>(hp.n_layer);
  s.n_expert = hp.n_expert;
  s.n_expert_used = hp.n_expert_used;
  s.n_vocab = hp.n_vocab;
  s.tensors.reserve(model.tensors().size());
  for (const auto& t : model.tensors()) {
    TensorDesc d;
    d.name = t.name;
    d.role = tensor_role_from_name(t.name, &d.layer);
    d.dtype = t.dtype;
    d.n_dims = t.n_dims;
    for (int i = 0; i < 4; ++i) d.ne[i] = t.ne[i];
    d.n_bytes = t.n_bytes;
    s.tensors.push_back(std::move(d));
  }
  return s;
}

}  // namespace strata
