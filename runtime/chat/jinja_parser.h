// Tokens to statement trees, with jinja2's grammar and operator precedence
// (or < and < not < comparisons < + - < ~ < * / // % < ** < unary < filters,
// tests and postfix). Nesting is bounded so hostile input cannot exhaust
// the stack.
#pragma once

#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_lexer.h"

namespace strata::chat::jinja {

inline constexpr int kMaxParseDepth = 128;

// `source` is the normalized source the tokens came from (for positions).
Result<Body> parse_template(const std::string& source, const std::vector<Token>& tokens);

}  // namespace strata::chat::jinja
