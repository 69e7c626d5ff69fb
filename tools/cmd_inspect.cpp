// `strata inspect FILE`: what is in a GGUF model, and how its bytes split by
// role, including the bytes one decode step reads.
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/base/bytes.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/model/arch.h"
#include "tools/commands.h"

namespace strata::tools {
namespace {

using json = nlohmann::ordered_json;  // keeps metadata in file order

json value_to_json(const gguf::Value& v) {
  using gguf::ValueType;
  switch (v.type()) {
    case ValueType::kString: return *v.as_string();
    case ValueType::kBool: return *v.as_bool();
    case ValueType::kF32: case ValueType::kF64: return *v.as_f64();
    case ValueType::kArray: {
      json a = json::array();
      if (v.array_type() == ValueType::kString) {
        for (const auto& s : v.strings()) a.push_back(s);
      } else if (v.array_type() == ValueType::kArray) {
        for (const auto& item : v.items()) a.push_back(value_to_json(item));
      } else if (v.array_type() == ValueType::kF32 || v.array_type() == ValueType::kF64) {
        for (uint64_t i = 0; i < v.array_size(); ++i) a.push_back(v.number_at(i));
      } else if (v.array_type() == ValueType::kU64) {
        for (uint64_t i = 0; i < v.array_size(); ++i) a.push_back(v.u64_at(i));
      } else if (v.array_type() == ValueType::kBool) {
        for (uint64_t i = 0; i < v.array_size(); ++i) a.push_back(v.int_at(i) != 0);
      } else {
        for (uint64_t i = 0; i < v.array_size(); ++i) a.push_back(v.int_at(i));
      }
      return a;
    }
    default:
      if (auto i = v.as_i64()) return *i;
      return *v.as_u64();
  }
}

struct TokenizerInfo {
  std::string model, pre;
  uint64_t n_tokens = 0;
  std::optional<uint64_t> bos, eos;
  bool has_template = false;
  size_t template_bytes = 0;
  std::vector<std::string> template_variants;
};

TokenizerInfo tokenizer_info(const gguf::GgufModel& m) {
  TokenizerInfo t;
  t.model = m.get_string("tokenizer.ggml.model").value_or("");
  t.pre = m.get_string("tokenizer.ggml.pre").value_or("");
  if (const gguf::Value* v = m.find("tokenizer.ggml.tokens"); v && v->is_array()) t.n_tokens = v->array_size();
  t.bos = m.get_u64("tokenizer.ggml.bos_token_id");
  t.eos = m.get_u64("tokenizer.ggml.eos_token_id");
  if (auto tmpl = m.get_string("tokenizer.chat_template")) {
    t.has_template = true;
    t.template_bytes = tmpl->size();
  }
  const std::string prefix = "tokenizer.chat_template.";
  for (const auto& [key, v] : m.first().kv) {
    if (key.rfind(prefix, 0) == 0 && v.as_string()) t.template_variants.push_back(key.substr(prefix.size()));
  }
  return t;
}

struct InspectOptions {
  std::string path;
  bool json = false;
  bool no_tensors = false;
};

json hparams_json(const HParams& hp) {
  json h = {{"n_vocab", hp.n_vocab},       {"n_ctx_train", hp.n_ctx_train},     {"n_embd", hp.n_embd},
            {"n_layer", hp.n_layer},       {"n_ff", hp.n_ff},                   {"n_head", hp.n_head},
            {"n_head_kv", hp.n_head_kv},   {"n_embd_head_k", hp.n_embd_head_k}, {"n_embd_head_v", hp.n_embd_head_v},
            {"n_rot", hp.n_rot},           {"rms_eps", hp.rms_eps},             {"rope_freq_base", hp.rope_freq_base},
            {"tied_embeddings", hp.tied_embeddings}};
  if (hp.is_moe()) {
    h["n_expert"] = hp.n_expert;
    h["n_expert_used"] = hp.n_expert_used;
    h["n_ff_exp"] = hp.n_ff_exp;
    h["n_expert_shared"] = hp.n_expert_shared;
    h["n_ff_shexp"] = hp.n_ff_shexp;
    h["n_layer_dense_lead"] = hp.n_layer_dense_lead;
    h["expert_gating"] = hp.expert_gating == ExpertGating::kSigmoid ? "sigmoid" : "softmax";
    h["expert_weights_scale"] = hp.expert_weights_scale;
    h["expert_weights_norm"] = hp.expert_weights_norm;
    h["n_expert_groups"] = hp.n_expert_groups;
    h["n_group_used"] = hp.n_group_used;
  }
  if (hp.kv_lora_rank) {
    h["q_lora_rank"] = hp.q_lora_rank;
    h["kv_lora_rank"] = hp.kv_lora_rank;
    h["n_embd_head_k_mla"] = hp.n_embd_head_k_mla;
    h["n_embd_head_v_mla"] = hp.n_embd_head_v_mla;
  }
  if (!hp.rope_scaling_type.empty()) {
    h["rope_scaling"] = {{"type", hp.rope_scaling_type},
                         {"factor", hp.rope_scaling_factor},
                         {"original_context_length", hp.rope_scaling_orig_ctx}};
  }
  return h;
}

void print_hparams(const HParams& hp) {
  std::printf("  layers %u", hp.n_layer);
  if (hp.is_moe()) std::printf(" (%u dense + %u MoE)", hp.n_layer_dense_lead, hp.n_layer - hp.n_layer_dense_lead);
  std::printf(", embedding %u, context %u, vocab %u\n", hp.n_embd, hp.n_ctx_train, hp.n_vocab);
  std::printf("  attention: %u heads, %u kv heads, head dims k %u v %u, rope dims %u, base %g", hp.n_head, hp.n_head_kv,
              hp.n_embd_head_k, hp.n_embd_head_v, hp.n_rot, hp.rope_freq_base);
  if (!hp.rope_scaling_type.empty()) {
    std::printf(", %s x%g from %u", hp.rope_scaling_type.c_str(), hp.rope_scaling_factor, hp.rope_scaling_orig_ctx);
  }
  std::printf("\n");
  if (hp.kv_lora_rank) {
    std::printf("  MLA: q_lora %u, kv_lora %u, per-head k %u (rope %u) v %u\n", hp.q_lora_rank, hp.kv_lora_rank,
                hp.n_embd_head_k_mla, hp.n_rot, hp.n_embd_head_v_mla);
  }
  if (hp.n_ff) std::printf("  dense FFN: %u\n", hp.n_ff);
  if (hp.is_moe()) {
    std::printf("  experts: %u routed (%u per token), width %u", hp.n_expert, hp.n_expert_used,
                hp.arch == Arch::kLlama ? hp.n_ff : hp.n_ff_exp);
    if (hp.n_expert_shared) std::printf(", %u shared", hp.n_expert_shared);
    if (hp.n_ff_shexp) std::printf(", shared expert width %u", hp.n_ff_shexp);
    if (hp.expert_gating != ExpertGating::kNone) {
      std::printf(", %s gating", hp.expert_gating == ExpertGating::kSigmoid ? "sigmoid" : "softmax");
    }
    if (hp.n_expert_groups > 1) std::printf(", groups %u (use %u)", hp.n_expert_groups, hp.n_group_used);
    if (hp.expert_weights_scale != 1.0f) std::printf(", scale %g", hp.expert_weights_scale);
    if (hp.expert_weights_norm) std::printf(", normalized");
    std::printf("\n");
  }
}

void run_inspect(const InspectOptions& opt) {
  auto model_r = gguf::GgufModel::open(opt.path);
  if (!model_r.is_ok()) return fail(model_r.status());
  const gguf::GgufModel& model = *model_r;

  std::string arch_str = model.get_string("general.architecture").value_or("");
  std::optional<HParams> hp;
  std::string arch_note;
  if (arch_from_name(arch_str)) {
    // A diagnostic tool still shows what is there when the hyper-parameters
    // are broken; it says why the model cannot run.
    auto r = read_hparams(model);
    if (r.is_ok()) {
      hp = *r;
    } else {
      arch_note = "cannot run: " + r.status().message();
      std::fprintf(stderr, "strata: warning: %s\n", r.status().message().c_str());
    }
  } else {
    arch_note = arch_str.empty() ? "no general.architecture key"
                                 : "'" + arch_str + "' is not supported for running (supported: " +
                                       supported_arch_list() + ")";
  }

  ModelShape shape;
  if (hp) {
    shape = describe_model(model, *hp);
  } else {
    HParams none;
    none.n_layer = 0;
    shape = describe_model(model, none);
    for (const auto& t : shape.tensors) shape.n_layer = std::max(shape.n_layer, t.layer + 1);
    shape.n_expert = static_cast<uint32_t>(model.get_u64(arch_str + ".expert_count").value_or(0));
    shape.n_expert_used = static_cast<uint32_t>(model.get_u64(arch_str + ".expert_used_count").value_or(0));
  }
  RoleSummary roles = summarize_roles(shape);
  TokenizerInfo tok = tokenizer_info(model);

  if (opt.json) {
    json j;
    j["file"] = opt.path;
    json parts = json::array();
    for (const auto& p : model.parts()) parts.push_back({{"path", p.path}, {"bytes", p.file_bytes}});
    j["parts"] = parts;
    j["version"] = model.first().version;
    j["alignment"] = model.first().alignment;
    j["architecture"] = arch_str;
    j["supported"] = hp.has_value();
    if (!arch_note.empty()) j["note"] = arch_note;
    if (hp) j["hparams"] = hparams_json(*hp);
    json meta = json::object();
    for (const auto& [k, v] : model.first().kv) meta[k] = value_to_json(v);
    j["metadata"] = meta;
    j["tokenizer"] = {{"model", tok.model}, {"pre", tok.pre}, {"n_tokens", tok.n_tokens}};
    if (tok.bos) j["tokenizer"]["bos"] = *tok.bos;
    if (tok.eos) j["tokenizer"]["eos"] = *tok.eos;
    j["chat_template"] = {{"present", tok.has_template}, {"bytes", tok.template_bytes}, {"variants", tok.template_variants}};
    if (!opt.no_tensors) {
      json tensors = json::array();
      for (size_t i = 0; i < model.tensors().size(); ++i) {
        const auto& t = model.tensors()[i];
        json shape_j = json::array();
        for (int d = 0; d < t.n_dims; ++d) shape_j.push_back(t.ne[d]);
        tensors.push_back({{"name", t.name},
                           {"type", std::string(dtype_name(t.dtype))},
                           {"type_id", static_cast<uint32_t>(t.dtype)},
                           {"shape", shape_j},
                           {"bytes", t.n_bytes},
                           {"offset", t.offset},
                           {"part", t.part},
                           {"role", std::string(tensor_role_name(shape.tensors[i].role))},
                           {"layer", shape.tensors[i].layer}});
      }
      j["tensors"] = tensors;
    }
    json by_role = json::object();
    for (int r = 0; r < kTensorRoleCount; ++r) {
      by_role[std::string(tensor_role_name(static_cast<TensorRole>(r)))] = {{"bytes", roles.bytes[r]},
                                                                            {"tensors", roles.count[r]}};
    }
    j["bytes_by_role"] = by_role;
    j["routed_bytes_per_layer"] = roles.routed_bytes_per_layer;
    j["total_tensor_bytes"] = roles.total_bytes;
    j["active_bytes_per_token"] = roles.active_bytes_per_token;
    // Metadata strings of a hostile file need not be UTF-8: replace bad bytes
    // rather than throw.
    std::printf("%s\n", j.dump(1, ' ', false, json::error_handler_t::replace).c_str());
    return;
  }

  std::printf("file:           %s (%zu part%s, %s)\n", opt.path.c_str(), model.parts().size(),
              model.parts().size() == 1 ? "" : "s", format_bytes(model.total_file_bytes()).c_str());
  std::printf("gguf:           version %u, %zu tensors, %zu metadata keys, alignment %u\n", model.first().version,
              model.tensors().size(), model.first().kv.size(), model.first().alignment);
  // Text from the file is untrusted: escape what a terminal should not see.
  auto safe = [](const std::string& x) { return gguf::printable(x, 200); };
  std::string name = safe(model.get_string("general.name").value_or(""));
  arch_str = safe(arch_str);
  std::printf("architecture:   %s%s%s\n", arch_str.empty() ? "(none)" : arch_str.c_str(),
              name.empty() ? "" : ("  \"" + name + "\"").c_str(), arch_note.empty() ? "" : ("  -- " + arch_note).c_str());
  if (hp) print_hparams(*hp);
  if (tok.model.empty()) {
    std::printf("tokenizer:      none\n");
  } else {
    std::printf("tokenizer:      %s%s, %" PRIu64 " tokens", safe(tok.model).c_str(),
                tok.pre.empty() ? "" : (" (pre " + safe(tok.pre) + ")").c_str(), tok.n_tokens);
    if (tok.bos) std::printf(", bos %" PRIu64, *tok.bos);
    if (tok.eos) std::printf(", eos %" PRIu64, *tok.eos);
    std::printf("\n");
  }
  if (tok.has_template) {
    std::printf("chat template:  present (%zu bytes)", tok.template_bytes);
    for (const auto& v : tok.template_variants) std::printf(" +%s", safe(v).c_str());
    std::printf("\n");
  } else {
    std::printf("chat template:  none\n");
  }

  if (!opt.no_tensors) {
    std::printf("\n%-40s %-8s %-24s %12s  %s\n", "tensor", "type", "shape", "bytes", "role");
    for (size_t i = 0; i < model.tensors().size(); ++i) {
      const auto& t = model.tensors()[i];
      std::printf("%-40s %-8s %-24s %12s  %s\n", safe(t.name).c_str(), std::string(dtype_name(t.dtype)).c_str(),
                  t.shape_string().c_str(), format_bytes(t.n_bytes).c_str(),
                  std::string(tensor_role_name(shape.tensors[i].role)).c_str());
    }
  }

  std::printf("\nbytes by role:\n");
  for (int r = 0; r < kTensorRoleCount; ++r) {
    if (roles.count[r] == 0) continue;
    double pct = roles.total_bytes ? 100.0 * roles.bytes[r] / roles.total_bytes : 0.0;
    std::printf("  %-16s %12s  %5.1f%%  (%" PRIu64 " tensors, %" PRIu64 " bytes)\n",
                std::string(tensor_role_name(static_cast<TensorRole>(r))).c_str(), format_bytes(roles.bytes[r]).c_str(),
                pct, roles.count[r], roles.bytes[r]);
  }
  std::printf("  %-16s %12s\n", "total", format_bytes(roles.total_bytes).c_str());
  if (roles.of(TensorRole::kRoutedExpert) > 0) {
    std::printf("routed experts per layer:\n");
    for (size_t il = 0; il < roles.routed_bytes_per_layer.size(); ++il) {
      uint64_t b = roles.routed_bytes_per_layer[il];
      if (b) std::printf("  layer %-4zu %12s  (%" PRIu64 " bytes)\n", il, format_bytes(b).c_str(), b);
    }
  }
  double pct = roles.total_bytes ? 100.0 * roles.active_bytes_per_token / roles.total_bytes : 0.0;
  std::printf("active bytes per token: %s (%.1f%% of weights; %" PRIu64 " bytes)\n",
              format_bytes(roles.active_bytes_per_token).c_str(), pct, roles.active_bytes_per_token);
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto opt = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a GGUF model's architecture, tokenizer, tensors and bytes by role");
  cmd->add_option("file", opt->path, "GGUF file (for a split model, any part)")->required();
  cmd->add_flag("--json", opt->json, "Machine-readable output (full metadata)");
  cmd->add_flag("--no-tensors", opt->no_tensors, "Leave out the tensor table");
  cmd->callback([opt] { run_inspect(*opt); });
}

}  // namespace strata::tools
