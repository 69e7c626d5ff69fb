// Tool calls parsed back from generated text, for the model families whose
// chat templates strata renders with `tools`:
//   kHermes    Qwen2.5/Qwen3 (and Hermes):  <tool_call>\n{"name": N, "arguments": {..}}\n</tool_call>
//   kDeepSeek  DeepSeek-V3/R1 and R1 distills:
//              <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>N\n```json\n{..}\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
//              and the V3.1 form  <｜tool▁call▁begin｜>N<｜tool▁sep｜>{..}<｜tool▁call▁end｜>
//   kKimiK2    <|tool_calls_section_begin|><|tool_call_begin|>functions.N:0<|tool_call_argument_begin|>{..}<|tool_call_end|>...
//   kLlama3    Llama-3.1/3.2/3.3: the message is {"name": N, "parameters": {..}} (optionally after
//              <|python_tag|>; several calls separated by ';' or whitespace)
//   kMistral   [TOOL_CALLS][{"name": N, "arguments": {..}}, ...], or [TOOL_CALLS]N[ARGS]{..}
//
// The text must be detokenized with special tokens rendered (the markers are
// control tokens in some vocabularies); end-of-generation tokens end the text
// and are not part of it. With a reasoning model, feed the content side of the
// reasoning splitter here.
//
// Per request:  ToolCallParser p(format, random_seed);   (format from detect_tool_call_format, once per model)
// Per delta:    ToolCallChunk c = p.push(text);  c.content -> delta.content,
//               c.calls -> delta.tool_calls (index, and id + name in the first delta of an index)
// At the end:   p.finish(); finish_reason "tool_calls" when p.n_calls() > 0.
//
// A call that does not parse (bad JSON, no name, a missing end marker where
// one is required) comes back as plain content, markers included; nothing
// throws. A call is released whole once its end is seen (so a call that
// turns out malformed was never half-sent): the first delta of an index
// carries id and name with empty arguments, the second the arguments.
// Text that might be the start of a marker, and whitespace right before a
// marker or right after a call, is held back until decided (the latter is
// dropped). Streamed results equal whole results wherever the text is cut.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/rng.h"
#include "runtime/base/status.h"

namespace strata::serve {

enum class ToolCallFormat { kNone, kHermes, kDeepSeek, kKimiK2, kLlama3, kMistral };
const char* tool_call_format_name(ToolCallFormat f);

// From the chat template's text (its tool-call markup), else from the GGUF
// `general.architecture` (qwen2/qwen3 families use Hermes-style calls,
// deepseek2 DeepSeek's); kNone when neither says.
ToolCallFormat detect_tool_call_format(std::string_view chat_template, std::string_view architecture = {});

struct ToolCall {
  std::string id;         // "call_" + 24 random alphanumerics (Mistral: 9 alphanumerics, as its template requires)
  std::string name;
  std::string arguments;  // a JSON object, compact
};

struct ToolCallDelta {
  size_t index = 0;
  std::string id, name;   // set only in the first delta of an index
  std::string arguments;  // a fragment; empty in the first delta
};

struct ToolCallChunk {
  std::string content;
  std::vector<ToolCallDelta> calls;
};

class ToolCallParser {
 public:
  // `id_seed` seeds the call ids (a request's random seed; fixed in tests).
  ToolCallParser(ToolCallFormat format, uint64_t id_seed);
  // For an answer constrained by forced_tool_call(): with a name, every byte
  // of the answer is that function's arguments, streamed as they come (the
  // first delta, carrying id and name, goes out with the first push); without
  // one ("required"), the answer is {"name": N, "arguments": {..}}, decided
  // at finish (an incomplete object, e.g. cut by max_tokens, is content).
  static ToolCallParser forced(ToolCallFormat format, uint64_t id_seed, std::string name);
  ToolCallChunk push(std::string_view text);
  // Ends the text: releases what was held, and decides an unterminated call.
  ToolCallChunk finish();
  size_t n_calls() const { return n_calls_; }
  ToolCallFormat format() const { return format_; }

 private:
  enum class Mode {
    kText,        // content; looking for a start marker
    kSkipWs,      // after a call: whitespace is dropped
    kSection,     // DeepSeek/Kimi: between calls of a section
    kCallBody,    // inside a marker-delimited call, waiting for its end marker
    kJson,        // scanning a JSON value to its end (Llama, Mistral)
    kLlamaStart,  // Llama: at the start of the message or after a call
    kLlamaTag,    // Llama: after <|python_tag|>
    kMistralCall,  // Mistral: after [TOOL_CALLS]
    kMistralName,  // Mistral: NAME[ARGS]
    kPlain,       // everything left is content
    kForcedArgs,  // forced(): the text is the named function's arguments
    kForcedCall,  // forced(): the text is one {"name", "arguments"} object
  };
  void run(ToolCallChunk& out, bool final);
  bool step(ToolCallChunk& out, bool final);  // false: needs more text
  bool step_text(ToolCallChunk& out, bool final);
  bool step_json(ToolCallChunk& out, bool final);
  bool finish_call(ToolCallChunk& out, std::string_view body);
  void emit_call(ToolCallChunk& out, std::string name, std::string arguments);
  void malformed(ToolCallChunk& out, std::string_view rest);
  std::string new_id();

  ToolCallFormat format_;
  Xoshiro256 rng_;
  Mode mode_;
  Mode after_call_;          // where to go once a call is done
  std::string buf_;          // text not yet decided
  std::string raw_;          // the current call's text so far (for the malformed case)
  std::string json_name_;    // Mistral NAME[ARGS]: the name, while its JSON is scanned
  size_t scan_ = 0;          // kJson: bytes of buf_ scanned
  int depth_ = 0;
  bool in_string_ = false, escape_ = false;
  size_t n_calls_ = 0;
  std::string forced_name_;  // kForcedArgs
};

struct ParsedToolCalls {
  std::string content;
  std::vector<ToolCall> calls;
};

// tool_choice "required" or {"type": "function", "function": {"name": N}}:
// the call is made certain by constraining the answer (the response_format
// machinery) instead of hoping the model writes one. Named: the answer is the
// function's arguments, constrained to its `parameters` schema (an object
// when it has none). "required": {"name": one of the tools' names,
// "arguments": that tool's parameters}. nullopt for absent, "auto", "none".
struct ForcedToolCall {
  std::string name;       // empty for "required"
  nlohmann::json schema;  // what the answer must match
};
// kInvalidArgument (message starts with "tool_choice:"): a named function
// that is not among `tools`, or a forcing choice without tools.
Result<std::optional<ForcedToolCall>> forced_tool_call(const nlohmann::json& tools, const nlohmann::json& tool_choice);

// Folds streamed chunks into the whole result.
void append_chunk(ParsedToolCalls& into, const ToolCallChunk& chunk);
// The whole text at once (same as push + finish).
ParsedToolCalls parse_tool_calls(ToolCallFormat format, std::string_view text, uint64_t id_seed);

}  // namespace strata::serve
