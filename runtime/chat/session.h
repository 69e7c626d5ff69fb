// A chat conversation with one model: messages rendered by the chat template,
// tokenized so that only template markup may produce control tokens, a KV
// cache kept across turns (each turn prefills only what changed), streamed
// answers split into reasoning and answer text, stop conditions and timings.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/chat/chat_template.h"
#include "runtime/models/model.h"
#include "runtime/sampling/sampler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata::chat {

struct SessionOptions {
  uint32_t n_ctx = 4096;       // positions of the KV cache (clamped to the model's training context)
  int32_t max_tokens = 1024;   // per answer; <= 0: until the context is full
  SamplerParams sampling;
  std::vector<std::string> stop;  // stop strings, on top of end-of-generation tokens
};

struct TurnStats {
  int64_t n_prompt = 0;     // tokens prefilled this turn
  int64_t n_reused = 0;     // tokens of the prompt already in the cache
  int64_t n_generated = 0;  // tokens sampled
  double prompt_s = 0;
  double gen_s = 0;         // first sample to last token
  bool interrupted = false;
  bool hit_max = false;
  bool context_full = false;
  std::string stop;  // stop string that ended the answer; empty if none
  double prompt_tok_s() const { return prompt_s > 0 ? double(n_prompt) / prompt_s : 0; }
  double gen_tok_s() const { return gen_s > 0 ? double(n_generated) / gen_s : 0; }
};

enum class TextKind { kAnswer, kReasoning };

// Splits streamed text at <think> and </think> (the tags themselves are not
// passed on). Tags split across pushes are held back until decided.
class ThinkSplitter {
 public:
  using Sink = std::function<void(TextKind, std::string_view)>;
  explicit ThinkSplitter(bool start_in_reasoning = false) : reasoning_(start_in_reasoning) {}
  void push(std::string_view text, const Sink& sink);
  void flush(const Sink& sink);
  bool in_reasoning() const { return reasoning_; }

 private:
  bool reasoning_;
  std::string held_;
};

// Message contents are replaced by sentinels of this form while rendering so
// that they can be tokenized apart from the markup.
std::string content_sentinel(size_t message_index);

// Tokenizes a prompt rendered with sentinels: markup with control tokens
// parsed, each sentinel as the plain text of its message. Adds BOS when the
// vocabulary asks for it and the markup did not.
Result<std::vector<TokenId>> tokenize_rendered(const Tokenizer& tok, std::string_view rendered,
                                               const std::vector<std::string>& contents);

class ChatSession {
 public:
  using Sink = ThinkSplitter::Sink;

  // `tmpl` from model_chat_template (or a file); its warning is kept.
  static Result<std::unique_ptr<ChatSession>> create(Model& model, Tokenizer tokenizer, const ModelChatTemplate& tmpl,
                                                     const SessionOptions& options);

  // Adds a user message and streams the answer to `sink`. `cancel` (may be
  // null) is checked before every token; a cancelled answer is kept as far
  // as it got. On an error (the conversation does not fit the context, a
  // template error) the user message is taken back and the session goes on.
  Result<TurnStats> send(const std::string& user_text, const Sink& sink, const std::atomic<bool>* cancel);
  // Drops the last assistant answer and answers the last user message again.
  Result<TurnStats> regenerate(const Sink& sink, const std::atomic<bool>* cancel);

  // Forgets the conversation except the system prompt.
  void clear();
  void set_system(const std::string& text);  // empty: none
  std::string system() const;
  // Replaces the conversation (an array of {role, content} objects).
  Status set_messages(const nlohmann::ordered_json& messages);
  const nlohmann::ordered_json& messages() const { return messages_; }

  SessionOptions& options() { return opt_; }
  const Tokenizer& tokenizer() const { return tok_; }
  uint32_t n_ctx() const { return n_ctx_; }
  int64_t n_cached() const { return int64_t(cached_.size()); }
  const std::string& template_warning() const { return tmpl_warning_; }
  const std::string& template_key() const { return tmpl_key_; }
  const TurnStats& last_stats() const { return last_; }

 private:
  ChatSession(Model& model, Tokenizer tok, ChatTemplate tmpl, const SessionOptions& opt);
  Result<std::vector<TokenId>> render_tokens(std::string* rendered) const;
  Result<TurnStats> answer(const Sink& sink, const std::atomic<bool>* cancel);

  Model& model_;
  Tokenizer tok_;
  ChatTemplate tmpl_;
  std::string tmpl_warning_, tmpl_key_, bos_text_, eos_text_;
  SessionOptions opt_;
  uint32_t n_ctx_;
  KvCache cache_;
  std::vector<TokenId> cached_;  // tokens whose keys and values are in cache_, in order
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
  uint64_t n_turns_ = 0;  // advances the seed per answer, so /regen gives a new one
  TurnStats last_;
};

}  // namespace strata::chat
