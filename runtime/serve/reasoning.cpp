// <think> splitting: a small state machine over a held-back buffer; see
// reasoning.h for the rules.
#include "runtime/serve/reasoning.h"

#include <algorithm>

namespace strata::serve {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_suffix(std::string_view s, std::string_view tag) {
  for (size_t k = std::min(s.size(), tag.size() - 1); k > 0; --k) {
    if (s.substr(s.size() - k) == tag.substr(0, k)) return k;
  }
  return 0;
}

}  // namespace

bool template_has_reasoning(std::string_view chat_template) {
  return chat_template.find(kClose) != std::string_view::npos;
}

bool prompt_opens_reasoning(std::string_view prompt) {
  while (!prompt.empty() && is_ws(prompt.back())) prompt.remove_suffix(1);
  return prompt.size() >= kOpen.size() && prompt.substr(prompt.size() - kOpen.size()) == kOpen;
}

ReasoningParser::ReasoningParser(bool starts_in_reasoning)
    : state_(starts_in_reasoning ? State::kReasoning : State::kStart) {}

void ReasoningParser::emit_reasoning(ReasoningDelta& out, std::string_view s) {
  if (!reasoning_started_) {
    size_t i = 0;
    while (i < s.size() && is_ws(s[i])) ++i;
    s.remove_prefix(i);
    if (s.empty()) return;
    reasoning_started_ = true;
  }
  out.reasoning.append(s);
}

void ReasoningParser::run(ReasoningDelta& out, bool final) {
  for (;;) {
    switch (state_) {
      case State::kStart: {
        size_t j = 0;
        while (j < held_.size() && is_ws(held_[j])) ++j;
        const std::string_view rest = std::string_view(held_).substr(j);
        if (rest.substr(0, kOpen.size()) == kOpen) {
          held_.erase(0, j + kOpen.size());
          state_ = State::kReasoning;
          continue;
        }
        if (!final && rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return;  // undecided
        state_ = State::kContent;
        continue;
      }
      case State::kReasoning: {
        const size_t at = held_.find(kClose);
        if (at != std::string::npos) {
          size_t end = at;
          while (end > 0 && is_ws(held_[end - 1])) --end;
          emit_reasoning(out, std::string_view(held_).substr(0, end));
          held_.erase(0, at + kClose.size());
          state_ = State::kContentStart;
          continue;
        }
        // Hold a possible start of </think> and the whitespace before it:
        // whitespace right before the tag is not reasoning.
        size_t keep_from = held_.size() - partial_suffix(held_, kClose);
        while (keep_from > 0 && is_ws(held_[keep_from - 1])) --keep_from;
        if (final) {
          // No tag follows: a partial tag is text; trailing whitespace goes.
          if (keep_from < held_.size() && !is_ws(held_.back())) keep_from = held_.size();
        }
        emit_reasoning(out, std::string_view(held_).substr(0, keep_from));
        held_.erase(0, keep_from);
        if (final) held_.clear();
        return;
      }
      case State::kContentStart: {
        size_t j = 0;
        while (j < held_.size() && is_ws(held_[j])) ++j;
        held_.erase(0, j);
        if (held_.empty()) return;
        state_ = State::kContent;
        continue;
      }
      case State::kContent:
        out.content.append(held_);
        held_.clear();
        return;
    }
  }
}

ReasoningDelta ReasoningParser::push(std::string_view text) {
  ReasoningDelta out;
  held_.append(text);
  run(out, false);
  return out;
}

ReasoningDelta ReasoningParser::finish() {
  ReasoningDelta out;
  run(out, true);
  held_.clear();
  return out;
}

ReasoningDelta split_reasoning(std::string_view text, bool starts_in_reasoning) {
  ReasoningParser p(starts_in_reasoning);
  ReasoningDelta a = p.push(text);
  ReasoningDelta b = p.finish();
  a.reasoning += b.reasoning;
  a.content += b.content;
  return a;
}

}  // namespace strata::serve
