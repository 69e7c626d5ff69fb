// ChatTemplate: builds the context Hugging Face gives chat templates and
// renders it; reads a model's template and special-token texts from GGUF.
#include "runtime/chat/chat_template.h"

#include "runtime/gguf/gguf_reader.h"

namespace strata::chat {

const std::string_view kChatmlTemplate =
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '')"
    " + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";

Result<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  ChatTemplate t;
  STRATA_ASSIGN_OR_RETURN(t.tmpl_, jinja::Template::parse(source));
  t.knows_developer_ = source.find("developer") != std::string_view::npos;
  return t;
}

ChatTemplate ChatTemplate::chatml() {
  auto t = parse(kChatmlTemplate);
  return std::move(t).value();  // a constant known to parse
}

Result<std::string> ChatTemplate::render(const ChatTemplateInputs& inputs, const jinja::RenderOptions& opts) const {
  if (!inputs.messages.is_array()) {
    return invalid_argument(std::string("expected messages as a JSON array, got ") + inputs.messages.type_name());
  }
  if (!inputs.tools.is_null() && !inputs.tools.is_array()) {
    return invalid_argument(std::string("expected tools as a JSON array or null, got ") + inputs.tools.type_name());
  }
  if (!inputs.extra.is_object()) return invalid_argument("expected extra template variables as a JSON object");
  nlohmann::ordered_json messages = inputs.messages;
  if (!knows_developer_) {
    for (auto& m : messages) {
      if (m.is_object() && m.contains("role") && m["role"] == "developer") m["role"] = "system";
    }
  }
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = std::move(messages);
  ctx["tools"] = inputs.tools;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = inputs.add_generation_prompt;
  ctx["bos_token"] = inputs.bos_token;
  ctx["eos_token"] = inputs.eos_token;
  for (const auto& [k, v] : inputs.extra.items()) ctx[k] = v;
  return tmpl_.render_json(ctx, opts);
}

namespace {

std::string token_text(const gguf::GgufModel& model, const char* id_key) {
  const auto id = model.get_u64(id_key);
  const gguf::Value* tokens = model.find("tokenizer.ggml.tokens");
  if (!id || !tokens || !tokens->is_array() || tokens->array_type() != gguf::ValueType::kString) return "";
  const auto& strings = tokens->strings();
  return *id < strings.size() ? strings[*id] : "";
}

}  // namespace

Result<ModelChatTemplate> model_chat_template(const gguf::GgufModel& model, const std::string& variant) {
  ModelChatTemplate out;
  out.bos_token = token_text(model, "tokenizer.ggml.bos_token_id");
  out.eos_token = token_text(model, "tokenizer.ggml.eos_token_id");
  const std::string base = "tokenizer.chat_template";
  const std::string key = variant.empty() ? base : base + "." + variant;
  if (auto s = model.get_string(key)) {
    out.source = *s;
    out.key = key;
    return out;
  }
  if (!variant.empty()) {
    std::string names;
    for (const auto& [k, v] : model.first().kv) {
      if (k.rfind(base + ".", 0) == 0 && v.as_string()) {
        names += (names.empty() ? "" : ", ") + gguf::printable(k.substr(base.size() + 1));
      }
    }
    return not_found("expected chat template variant '" + gguf::printable(variant) + "', got " +
                     (names.empty() ? std::string("no variants") : "variants: " + names));
  }
  out.source = std::string(kChatmlTemplate);
  out.warning = "the model has no chat template (tokenizer.chat_template); using ChatML";
  return out;
}

}  // namespace strata::chat
