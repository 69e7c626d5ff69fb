// response_format enforcement by constrained decoding: a request's
// `response_format` (json_object, or json_schema with a supported subset of
// JSON Schema) compiled into a byte-level pushdown automaton, and the mask of
// tokens that keep the generated text a valid prefix of a matching document.
//
// Per model (once):    TokenTrie trie = build_token_trie(tokenizer);
// Per request:         auto c = compile_response_format(body["response_format"]);
//                      (error -> HTTP 400; nullopt -> no constraint)
//                      JsonMatcher m(*c);
// Per decode step:     m.allowed_tokens(trie, mask); apply_token_mask(logits, mask);
//                      sample; m.accept_token(trie, token);
// End:                 an end-of-generation token is allowed only when
//                      m.complete(); when !m.can_continue() it is the only one.
//
// Supported keywords: type (object, array, string, number, integer, boolean,
// null, or an array of these), properties, required, additionalProperties
// (false, true or a schema; absent means true), enum, const, items, anyOf,
// minItems, maxItems, minLength, maxLength, $ref to "#", "#/$defs/..."
// or "#/definitions/..." (recursion allowed), $defs/definitions, and the
// annotations title, description, $schema, $id, $comment, default, examples,
// deprecated, readOnly, writeOnly. Any other keyword is an error naming it and
// its JSON pointer: a schema is enforced exactly or refused, never loosened.
// (OpenAPI's "nullable" is refused too: JSON Schema validators ignore it, so
// honouring it would produce documents they reject; use "type": [T, "null"].)
//
// What the automaton accepts is a subset of the documents the schema allows,
// so every complete output validates: keys are written as in the schema
// (no escapes standing for plain characters), enum/const values in their
// compact serialization, at most `max_ws` whitespace bytes per gap, numbers
// with at most `max_number_digits` digits per part, \u escapes outside the
// surrogate range, and no duplicate keys among the declared properties.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/serve/json_grammar.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata::serve {

struct JsonConstraintOptions {
  uint32_t max_ws = 20;             // whitespace bytes per gap (leading, between tokens)
  uint32_t max_depth = 32;          // nesting of objects and arrays
  uint32_t max_number_digits = 20;  // per part of a number (integer, fraction, exponent)
};

// An immutable compiled constraint; cheap to copy, shareable between threads.
class JsonConstraint {
 public:
  explicit JsonConstraint(std::shared_ptr<const JsonGrammar> g) : g_(std::move(g)) {}
  const JsonGrammar& grammar() const { return *g_; }
  // "json_object" or "json_schema 'NAME'", for logs.
  const std::string& description() const { return g_->description; }

 private:
  std::shared_ptr<const JsonGrammar> g_;
};

// The `response_format` field of a chat or completions request.
//   absent (null) or {"type":"text"}   -> nullopt (no constraint)
//   {"type":"json_object"}             -> any JSON object
//   {"type":"json_schema","json_schema":{"name":..,"schema":{..},"strict":..}}
//                                      -> the schema (absent schema: any JSON value)
// Errors (kInvalidArgument for malformed input, kUnsupported for valid JSON
// Schema outside the subset) name the field, e.g. "unsupported JSON Schema
// keyword 'pattern' at response_format.json_schema.schema/properties/zip".
Result<std::optional<JsonConstraint>> compile_response_format(const nlohmann::json& response_format,
                                                              const JsonConstraintOptions& options = {});
// A bare schema; `where` prefixes the JSON pointers in error messages.
Result<JsonConstraint> compile_json_schema(const nlohmann::json& schema, const JsonConstraintOptions& options = {},
                                           const std::string& where = "schema");
// Any JSON object (response_format json_object).
JsonConstraint json_object_constraint(const JsonConstraintOptions& options = {});

// The vocabulary as a byte trie, built once per model. Tokens that may be
// generated under a constraint are the normal and byte tokens with a
// non-empty byte string; control, user-defined, unknown and unused tokens
// never are. End-of-generation tokens are kept apart and allowed only when
// the document is complete.
class TokenTrie {
 public:
  size_t n_vocab() const { return n_vocab_; }
  // Bytes of a token as the trie knows it; empty for excluded tokens.
  std::string_view token_bytes(TokenId id) const;
  bool is_eog(TokenId id) const;
  const std::vector<TokenId>& eog_tokens() const { return eog_; }
  size_t n_nodes() const { return byte_.size(); }

 private:
  friend TokenTrie build_token_trie(const Tokenizer& tok);
  friend class JsonMatcher;
  size_t n_vocab_ = 0;
  std::vector<TokenId> eog_;
  std::vector<uint32_t> bytes_begin_;  // n_vocab + 1 offsets into blob_
  std::string blob_;
  // Nodes in preorder; node 0 is the root (no byte). The subtree of node i
  // is [i, end_[i]); its children are i+1, end_[i+1], ... below end_[i].
  std::vector<uint8_t> byte_;
  std::vector<uint32_t> end_;
  // Tokens in preorder: those ending at node i are order_[tok_at_[i] ..
  // tok_below_[i]), and the whole subtree's are order_[tok_at_[i] .. tok_end_[i]).
  std::vector<uint32_t> tok_at_, tok_below_, tok_end_;
  std::vector<TokenId> order_;
  // Every byte strictly below node i is a plain string byte (printable
  // ASCII other than '"' and '\\'), and the longest path below has depth_[i] bytes.
  std::vector<uint8_t> plain_below_;
  std::vector<uint16_t> depth_;
};
TokenTrie build_token_trie(const Tokenizer& tok);

// The automaton's state for one generation: a set of threads (one per live
// anyOf alternative), each a stack of frames. Not thread-safe; one per request.
class JsonMatcher {
 public:
  explicit JsonMatcher(JsonConstraint c);

  // Back to the empty document.
  void reset();
  // Appends bytes; false (state unchanged) if they cannot continue any
  // matching document.
  bool accept_bytes(std::string_view bytes);
  // Appends a token's bytes. An end-of-generation token is accepted only when
  // complete(); an excluded (special) token never is.
  bool accept_token(const TokenTrie& trie, TokenId id);
  // The text so far is a whole matching document.
  bool complete() const;
  // Some byte can still extend the text.
  bool can_continue() const;
  // mask[id] = 1 for every token that keeps the text a matching prefix (and
  // end-of-generation tokens when complete), 0 otherwise; resized to the
  // vocabulary. At least one token is allowed unless the state is dead,
  // which accept_* never lets happen.
  void allowed_tokens(const TokenTrie& trie, std::vector<uint8_t>& mask) const;
  // Bytes b for which accept_bytes({b}) would succeed (for tests and tools).
  std::vector<uint8_t> allowed_bytes() const;
  // Text accepted since the last reset.
  const std::string& text() const { return text_; }
  const JsonConstraint& constraint() const { return c_; }

  // The thread set (internal, public for the implementation's helpers).
  struct State {
    std::vector<Frame> frames;
    std::vector<uint32_t> ends;  // thread i is frames[ends[i-1] .. ends[i]) (ends[-1] = 0)
    void clear() {
      frames.clear();
      ends.clear();
    }
    bool empty() const { return ends.empty(); }
  };
  // The threads (read-only; for tools that steer random documents).
  const State& state() const { return state_; }

 private:
  void walk(const TokenTrie& trie, uint32_t node, uint32_t level, std::vector<uint8_t>& mask) const;
  JsonConstraint c_;
  State state_;
  std::string text_;
  mutable std::vector<State> levels_;  // scratch states per trie depth
};

// Sets logits of disallowed tokens to -inf before sampling (the sampler
// never picks a -inf token). `mask` as filled by JsonMatcher::allowed_tokens.
void apply_token_mask(std::span<float> logits, const std::vector<uint8_t>& mask);

}  // namespace strata::serve
