// A Jinja2 template engine for chat templates: parse once, render many times
// (from any number of threads). Templates are untrusted input: rendering has
// no file, network or environment access, and every resource it can consume
// (output, allocations, loop iterations, recursion) is bounded; failures
// come back as Status with the template line and column.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/chat/jinja_lexer.h"
#include "runtime/chat/jinja_value.h"

namespace strata::chat::jinja {

struct RenderLimits {
  size_t max_output_bytes = 32u << 20;       // the rendered text, and any one string value
  uint64_t max_alloc_bytes = 256ull << 20;   // strings and lists built during one render, summed
  uint64_t max_loop_iterations = 1000000;    // summed over all for loops (and their filters)
  int max_macro_depth = 64;                  // nested macro calls
  int max_eval_depth = 512;                  // nested evaluation; ~1 KiB of stack each
  uint32_t max_value_depth = 256;            // nesting of lists and dicts built by the template
};

struct RenderOptions {
  RenderLimits limits;
  // Seconds since the epoch for strftime_now(); unset: the current time.
  std::optional<int64_t> now_unix;
};

using Vars = std::vector<std::pair<std::string, Value>>;

struct ParsedTemplate;

class Template {
 public:
  // The Hugging Face chat-template environment: trim_blocks and
  // lstrip_blocks on, no trailing newline kept.
  static Result<Template> parse(std::string_view source, const LexerOptions& opts = {});

  // Renders with `vars` as the template's context. Globals available to
  // every template: range, namespace, dict, joiner, raise_exception,
  // strftime_now.
  Result<std::string> render(const Vars& vars, const RenderOptions& opts = {}) const;
  // Same, with the context given as a JSON object.
  Result<std::string> render_json(const nlohmann::ordered_json& vars, const RenderOptions& opts = {}) const;

  const std::string& source() const;  // normalized

 private:
  std::shared_ptr<const ParsedTemplate> parsed_;
};

}  // namespace strata::chat::jinja
