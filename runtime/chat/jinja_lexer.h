// Template source to tokens, with jinja2's whitespace rules as the Hugging
// Face chat-template environment sets them (trim_blocks, lstrip_blocks, no
// trailing newline kept): `{%- -%}` strip, `{%+ +%}` keep, raw blocks,
// comments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"

namespace strata::chat::jinja {

enum class Tok : uint8_t {
  kData,        // literal template text (already whitespace-controlled)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // value: the decoded literal
  kInt,
  kFloat,
  kOp,  // text: the operator, e.g. "**", "(", "|"
  kEof,
};

struct Token {
  Tok type = Tok::kEof;
  std::string text;  // data, name, decoded string or operator
  int64_t i = 0;
  double f = 0;
  uint32_t offset = 0;  // into the normalized source
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Source with "\r\n" and "\r" turned into "\n" and, unless kept, one
// trailing newline removed: what positions refer to.
std::string normalize_source(std::string_view source, const LexerOptions& opts);

// Tokenizes a normalized source. Errors name line and column.
Result<std::vector<Token>> tokenize(const std::string& source, const LexerOptions& opts);

// "line 3, column 7" for an offset into `source` (column in code points).
std::string describe_position(const std::string& source, uint32_t offset);

}  // namespace strata::chat::jinja
