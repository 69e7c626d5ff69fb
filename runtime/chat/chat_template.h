// Chat templates: a conversation (OpenAI-style messages, optional tools) to
// the prompt text a model was trained on, by rendering the model's Jinja2
// template the way Hugging Face's apply_chat_template does.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "runtime/base/status.h"
#include "runtime/chat/jinja.h"

namespace strata::gguf {
class GgufModel;
}

namespace strata::chat {

// ChatML (<|im_start|>role\ncontent<|im_end|>\n), used when a model carries
// no template. Messages without string content render as empty; tool calls
// are not shown.
extern const std::string_view kChatmlTemplate;

struct ChatTemplateInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null: no tools (the template sees `tools` as none)
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
  // More template variables (enable_thinking, date_string, ...); these win
  // over the ones above on a name clash, as keyword arguments do in HF.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  static Result<ChatTemplate> parse(std::string_view source);
  static ChatTemplate chatml();

  // The context is what HF passes: messages, tools, documents (none),
  // add_generation_prompt, bos_token, eos_token, then `extra`. Messages with
  // role "developer" become "system" unless the template mentions
  // "developer". A raise_exception() in the template is an error whose
  // message carries the template's text.
  Result<std::string> render(const ChatTemplateInputs& inputs, const jinja::RenderOptions& opts = {}) const;

  const std::string& source() const { return tmpl_.source(); }

 private:
  jinja::Template tmpl_;
  bool knows_developer_ = false;
};

// The chat template stored in a GGUF model and its BOS/EOS token texts.
struct ModelChatTemplate {
  std::string source;
  std::string key;      // metadata key it came from; empty for the fallback
  std::string warning;  // set when falling back to ChatML
  std::string bos_token;
  std::string eos_token;
};

// `variant` empty: tokenizer.chat_template; otherwise
// tokenizer.chat_template.<variant> (an error lists the variants present).
// A model without a default template gets ChatML and a warning.
Result<ModelChatTemplate> model_chat_template(const gguf::GgufModel& model, const std::string& variant);

}  // namespace strata::chat
