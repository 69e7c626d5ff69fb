// The OpenAI wire format: request bodies of /v1/chat/completions and
// /v1/completions parsed and validated into one struct (every field checked
// for type and range, unknown fields refused, errors shaped as OpenAI's
// {"error": {message, type, param, code}}), and the response objects and
// stream chunks built back.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/sampling/sampler.h"
#include "runtime/serve/scheduler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata::serve {

using json = nlohmann::ordered_json;

struct ApiError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::string param;  // empty: null
  std::string code;   // empty: null
  json to_json() const;
};
ApiError invalid_request(std::string param, std::string message, std::string code = "");

// Caps that protect the server from absurd requests.
struct RequestLimits {
  size_t max_stop = 16;          // stop strings
  size_t max_stop_bytes = 512;   // bytes per stop string
  int32_t max_top_logprobs = 20;
  size_t max_messages = 4096;
};

enum class Endpoint { kChat, kCompletion };

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;
  json messages = json::array();  // chat: validated; content normalized to a string or null
  std::string prompt;             // completions: text
  std::vector<TokenId> prompt_ids;  // completions: a prompt given as token ids
  bool stream = false;
  bool include_usage = false;
  std::optional<int32_t> max_tokens;
  SamplerParams sampling;
  bool has_seed = false;
  std::vector<std::string> stop;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  std::string response_format = "text";  // text | json_object | json_schema
  json json_schema;                      // response_format.json_schema (name, schema, strict)
  json tools;                            // null: none
  json tool_choice;                      // null: not given
  bool parallel_tool_calls = true;
  json template_kwargs = json::object();  // chat_template_kwargs (extra template variables)
};

// Parse a JSON body. On failure returns false with *err set (status 400).
bool parse_chat_request(const json& body, const RequestLimits& limits, ParsedRequest* out, ApiError* err);
bool parse_completion_request(const json& body, const RequestLimits& limits, ParsedRequest* out, ApiError* err);

// A body as JSON, or a 400 naming the position of the syntax error.
bool parse_json_body(const std::string& body, json* out, ApiError* err);

// Text of every message content, normalized: a string, or the text parts of
// an array joined. Exposed for the template rendering in the server.
std::string content_text(const json& content);

const char* finish_name(Finish f, bool tool_calls);

struct ResponseMeta {
  std::string id;
  int64_t created = 0;
  std::string model;
};

struct Usage {
  int64_t prompt = 0, completion = 0;
  json to_json() const;
};

// Log-probability entries in the chat shape ({token, logprob, bytes, top_logprobs}).
json chat_logprobs(const std::vector<TokenLogprob>& lps, const Tokenizer& tok);
// Legacy completions shape ({tokens, token_logprobs, top_logprobs, text_offset}).
json completion_logprobs(const std::vector<TokenLogprob>& lps, const Tokenizer& tok, int64_t text_offset0);

json chat_response(const ResponseMeta& m, const json& message, const std::string& finish, const json& logprobs,
                   const Usage& u);
json chat_chunk(const ResponseMeta& m, const json& delta, const json& finish, const json& logprobs, bool with_usage);
json usage_chunk(const ResponseMeta& m, const std::string& object, const Usage& u);
json completion_response(const ResponseMeta& m, const std::string& text, const std::string& finish,
                         const json& logprobs, const Usage& u);
json completion_chunk(const ResponseMeta& m, const std::string& text, const json& finish, const json& logprobs,
                      bool with_usage);

// JSON text that never throws: invalid UTF-8 (a token piece holding part of
// a character) becomes U+FFFD.
std::string dump(const json& j);
// One server-sent event: "data: <json>\n\n".
std::string sse(const json& j);

std::string random_id(const std::string& prefix);

}  // namespace strata::serve
