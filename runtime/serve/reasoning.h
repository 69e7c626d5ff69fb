// Splitting a reasoning model's output into reasoning_content and content:
// the <think>...</think> block of Qwen3 and DeepSeek-R1 style models, whole or
// streamed, including outputs that begin inside the block because the
// prompt already opened it (DeepSeek-R1's template ends with "<think>\n").
//
// Per request:  bool on = template_has_reasoning(template_text);
//               ReasoningParser p(prompt_opens_reasoning(rendered_prompt));
// Per text delta (detokenized output): ReasoningDelta d = p.push(delta);
//               d.reasoning -> delta.reasoning_content, d.content -> delta.content
//               (content then goes through the tool-call parser, if any)
// At the end:   p.finish() releases what was held back.
//
// Rules (the same whole or streamed, wherever the text is cut):
//   - a block opens only at the start of the output (after optional
//     whitespace), or from the first byte when the prompt opened it;
//   - whitespace at both ends of the reasoning and at the start of the
//     content after </think> is dropped (templates put newlines there);
//   - after </think> everything is content, tags included; a block that is
//     never closed is all reasoning;
//   - text that could still become a tag is held back until decided.
#pragma once

#include <string>
#include <string_view>

namespace strata::serve {

// The chat template writes <think> blocks (Qwen3, DeepSeek-R1 and its distills, DeepSeek-V3.1).
bool template_has_reasoning(std::string_view chat_template);
// The rendered prompt ends inside an open <think> (trailing whitespace aside).
bool prompt_opens_reasoning(std::string_view rendered_prompt);

struct ReasoningDelta {
  std::string reasoning;
  std::string content;
};

class ReasoningParser {
 public:
  explicit ReasoningParser(bool starts_in_reasoning = false);
  ReasoningDelta push(std::string_view text);
  // Releases anything held back; the parser is spent afterwards.
  ReasoningDelta finish();
  bool in_reasoning() const { return state_ == State::kReasoning; }

 private:
  enum class State { kStart, kReasoning, kContentStart, kContent };
  void run(ReasoningDelta& out, bool final);
  void emit_reasoning(ReasoningDelta& out, std::string_view s);
  State state_;
  bool reasoning_started_ = false;  // a non-whitespace byte of reasoning was emitted
  std::string held_;
};

// The whole text at once.
ReasoningDelta split_reasoning(std::string_view text, bool starts_in_reasoning = false);

}  // namespace strata::serve
