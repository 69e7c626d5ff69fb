// ChatSession: render -> tokenize (markup apart from user text) -> reuse the
// cached prefix -> prefill the rest -> sample, detokenize, stop-match and
// split reasoning from the answer.
#include "runtime/chat/session.h"

#include <algorithm>
#include <chrono>

namespace strata::chat {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr char kSentinelMark = '\x1f';  // ASCII unit separator: never in markup, rare in text

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_suffix(std::string_view s, std::string_view tag) {
  for (size_t k = std::min(s.size(), tag.size() - 1); k > 0; --k) {
    if (s.substr(s.size() - k) == tag.substr(0, k)) return k;
  }
  return 0;
}

bool ends_with_think_open(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
  return s.size() >= kThinkOpen.size() && s.substr(s.size() - kThinkOpen.size()) == kThinkOpen;
}

bool has_control_text(const Tokenizer& tok, const std::string& text) {
  for (TokenId id : tok.tokenize(text, {.add_special = false, .parse_special = true})) {
    if (tok.token_type(id) == TokenType::kControl) return true;
  }
  return false;
}

}  // namespace

void ThinkSplitter::push(std::string_view text, const Sink& sink) {
  held_.append(text);
  for (;;) {
    const std::string_view tag = reasoning_ ? kThinkClose : kThinkOpen;
    const size_t at = held_.find(tag);
    if (at == std::string::npos) break;
    if (at > 0) sink(reasoning_ ? TextKind::kReasoning : TextKind::kAnswer, std::string_view(held_).substr(0, at));
    held_.erase(0, at + tag.size());
    reasoning_ = !reasoning_;
  }
  const size_t keep = partial_suffix(held_, reasoning_ ? kThinkClose : kThinkOpen);
  if (held_.size() > keep) {
    sink(reasoning_ ? TextKind::kReasoning : TextKind::kAnswer, std::string_view(held_).substr(0, held_.size() - keep));
    held_.erase(0, held_.size() - keep);
  }
}

void ThinkSplitter::flush(const Sink& sink) {
  if (!held_.empty()) sink(reasoning_ ? TextKind::kReasoning : TextKind::kAnswer, held_);
  held_.clear();
}

std::string content_sentinel(size_t message_index) {
  return std::string(1, kSentinelMark) + "strata-msg-" + std::to_string(message_index) + std::string(1, kSentinelMark);
}

Result<std::vector<TokenId>> tokenize_rendered(const Tokenizer& tok, std::string_view rendered,
                                               const std::vector<std::string>& contents) {
  std::vector<TokenId> out;
  TokenizeOptions markup_opt{.add_special = false, .parse_special = true};
  TokenizeOptions text_opt{.add_special = false, .parse_special = false};
  auto append = [&](std::string_view s, const TokenizeOptions& o) {
    if (s.empty()) return;
    const std::vector<TokenId> ids = tok.tokenize(s, o);
    out.insert(out.end(), ids.begin(), ids.end());
  };
  const std::string prefix = std::string(1, kSentinelMark) + "strata-msg-";
  size_t pos = 0;
  for (;;) {
    const size_t at = rendered.find(prefix, pos);
    if (at == std::string_view::npos) break;
    const size_t digits = at + prefix.size();
    size_t end = digits;
    while (end < rendered.size() && rendered[end] >= '0' && rendered[end] <= '9') ++end;
    if (end == digits || end >= rendered.size() || rendered[end] != kSentinelMark) {
      return invalid_format("chat template: expected a message sentinel, got a mangled one at byte " +
                            std::to_string(at) + " of the rendered prompt");
    }
    const size_t index = std::stoul(std::string(rendered.substr(digits, end - digits)));
    if (index >= contents.size()) return internal_error("chat template: sentinel for a message that does not exist");
    append(rendered.substr(pos, at - pos), markup_opt);
    append(contents[index], text_opt);
    pos = end + 1;
  }
  append(rendered.substr(pos), markup_opt);
  if (tok.add_bos() && tok.bos() != kNoToken && (out.empty() || out.front() != tok.bos())) {
    out.insert(out.begin(), tok.bos());
  }
  return out;
}

Result<std::unique_ptr<ChatSession>> ChatSession::create(Model& model, Tokenizer tokenizer,
                                                         const ModelChatTemplate& tmpl, const SessionOptions& options) {
  auto parsed = ChatTemplate::parse(tmpl.source);
  if (!parsed.is_ok()) return parsed.status();
  std::unique_ptr<ChatSession> s(new ChatSession(model, std::move(tokenizer), std::move(parsed.value()), options));
  s->tmpl_warning_ = tmpl.warning;
  s->tmpl_key_ = tmpl.key;
  s->bos_text_ = tmpl.bos_token;
  s->eos_text_ = tmpl.eos_token;
  return s;
}

ChatSession::ChatSession(Model& model, Tokenizer tok, ChatTemplate tmpl, const SessionOptions& opt)
    : model_(model),
      tok_(std::move(tok)),
      tmpl_(std::move(tmpl)),
      opt_(opt),
      n_ctx_(std::max<uint32_t>(8, model.hparams().n_ctx_train > 0 ? std::min(opt.n_ctx, model.hparams().n_ctx_train)
                                                                   : opt.n_ctx)),
      cache_(model.make_cache(1, n_ctx_)) {}

void ChatSession::clear() {
  const std::string sys = system();
  messages_ = nlohmann::ordered_json::array();
  if (!sys.empty()) messages_.push_back({{"role", "system"}, {"content", sys}});
  cached_.clear();
  cache_.clear(0);
}

std::string ChatSession::system() const {
  if (!messages_.empty() && messages_[0].value("role", "") == "system" && messages_[0]["content"].is_string()) {
    return messages_[0]["content"].get<std::string>();
  }
  return {};
}

void ChatSession::set_system(const std::string& text) {
  const bool has = !messages_.empty() && messages_[0].value("role", "") == "system";
  if (text.empty()) {
    if (has) messages_.erase(messages_.begin());
  } else if (has) {
    messages_[0]["content"] = text;
  } else {
    messages_.insert(messages_.begin(), nlohmann::ordered_json{{"role", "system"}, {"content", text}});
  }
}

Status ChatSession::set_messages(const nlohmann::ordered_json& messages) {
  if (!messages.is_array()) return invalid_format("conversation: expected an array of messages, got " + std::string(messages.type_name()));
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string()) {
      return invalid_format("conversation: expected {\"role\": string, \"content\": string}, got " + m.dump() +
                            " at message " + std::to_string(i));
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant") {
      return invalid_format("conversation: expected role system, user or assistant, got '" + role + "' at message " +
                            std::to_string(i));
    }
  }
  messages_ = messages;
  return Status::ok();
}

Result<std::vector<TokenId>> ChatSession::render_tokens(std::string* rendered) const {
  ChatTemplateInputs in;
  in.add_generation_prompt = true;
  in.bos_token = bos_text_;
  in.eos_token = eos_text_;
  std::vector<std::string> contents;
  for (size_t i = 0; i < messages_.size(); ++i) {
    nlohmann::ordered_json m = messages_[i];
    contents.push_back(m["content"].get<std::string>());
    // Assistant text is the model's own (control tokens are never rendered
    // into it), and templates may rewrite it (dropping reasoning), so it is
    // rendered as itself unless it holds control-token text (a loaded
    // conversation may); everything else goes in as a content sentinel.
    if (m["role"] != "assistant" || has_control_text(tok_, contents.back())) m["content"] = content_sentinel(i);
    in.messages.push_back(std::move(m));
  }
  STRATA_ASSIGN_OR_RETURN(std::string text, tmpl_.render(in));
  // Sentinels inside assistant text, or text a template copied, would be
  // expanded as user text: harmless, plain text either way.
  auto ids = tokenize_rendered(tok_, text, contents);
  if (rendered) *rendered = std::move(text);
  return ids;
}

Result<TurnStats> ChatSession::send(const std::string& user_text, const Sink& sink, const std::atomic<bool>* cancel) {
  messages_.push_back({{"role", "user"}, {"content", user_text}});
  auto st = answer(sink, cancel);
  if (!st.is_ok()) messages_.erase(messages_.end() - 1);
  return st;
}

Result<TurnStats> ChatSession::regenerate(const Sink& sink, const std::atomic<bool>* cancel) {
  if (messages_.empty() || messages_.back().value("role", "") != "assistant") {
    return invalid_argument("regenerate: expected a last answer to replace, got none");
  }
  nlohmann::ordered_json last = messages_.back();
  messages_.erase(messages_.end() - 1);
  auto st = answer(sink, cancel);
  if (!st.is_ok()) messages_.push_back(std::move(last));
  return st;
}

Result<TurnStats> ChatSession::answer(const Sink& sink, const std::atomic<bool>* cancel) {
  using clock = std::chrono::steady_clock;
  auto secs = [](clock::duration d) { return std::chrono::duration<double>(d).count(); };
  std::string rendered;
  STRATA_ASSIGN_OR_RETURN(std::vector<TokenId> prompt, render_tokens(&rendered));
  if (prompt.empty()) return invalid_argument("chat: the rendered conversation gives no tokens");
  if (prompt.size() + 1 > n_ctx_) {
    return out_of_memory("context full: the conversation needs " + std::to_string(prompt.size()) +
                         " tokens, the context holds " + std::to_string(n_ctx_) +
                         "; /clear starts over (or run with a larger --ctx)");
  }
  // Reuse the longest cached prefix; at least one token is run for logits.
  size_t common = 0;
  while (common < cached_.size() && common < prompt.size() && cached_[common] == prompt[common]) ++common;
  common = std::min(common, prompt.size() - 1);
  cached_.resize(common);
  cache_.set_len(0, int32_t(common));

  TurnStats st;
  st.n_reused = int64_t(common);
  st.n_prompt = int64_t(prompt.size() - common);
  const auto t0 = clock::now();
  Batch batch;
  batch.add_sequence(std::vector<int32_t>(prompt.begin() + std::ptrdiff_t(common), prompt.end()), 0, int32_t(common));
  auto logits = model_.forward(batch, cache_);
  if (!logits.is_ok()) {
    cached_.clear();
    cache_.clear(0);
    return logits.status();
  }
  cached_ = prompt;
  st.prompt_s = secs(clock::now() - t0);

  SamplerParams sp = opt_.sampling;
  sp.seed += n_turns_++;
  Sampler sampler(sp);
  StreamingDetokenizer detok(tok_);
  StopMatcher stops(opt_.stop);
  ThinkSplitter think(ends_with_think_open(rendered));
  std::string text;  // the answer as kept in the conversation
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    text += s;
    think.push(s, sink);
  };
  const auto t1 = clock::now();
  Logits cur = std::move(logits.value());
  for (;;) {
    if (cancel && cancel->load(std::memory_order_relaxed)) {
      st.interrupted = true;
      break;
    }
    if (opt_.max_tokens > 0 && st.n_generated >= opt_.max_tokens) {
      st.hit_max = true;
      break;
    }
    if (cached_.size() >= n_ctx_) {
      st.context_full = true;
      break;
    }
    const TokenId id = sampler.sample(cur.row(cur.n_rows() - 1), cur.n_vocab);
    sampler.accept(id);
    ++st.n_generated;
    if (tok_.is_eog(id)) break;
    emit(stops.push(detok.push(id)));
    if (stops.stopped()) {
      st.stop = stops.matched();
      break;
    }
    batch.clear();
    batch.add(id, 0, int32_t(cached_.size()), true);
    auto next = model_.forward(batch, cache_);
    if (!next.is_ok()) {
      cached_.clear();
      cache_.clear(0);
      return next.status();
    }
    cached_.push_back(id);
    cur = std::move(next.value());
  }
  if (!stops.stopped()) emit(stops.push(detok.flush()) + stops.flush());
  think.flush(sink);
  st.gen_s = secs(clock::now() - t1);
  messages_.push_back({{"role", "assistant"}, {"content", text}});
  last_ = st;
  return st;
}

}  // namespace strata::chat
