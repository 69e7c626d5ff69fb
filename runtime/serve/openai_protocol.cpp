// Request validation and response building for the OpenAI-compatible API.
// Every field is checked against what OpenAI documents (type, range, which
// combinations make sense); fields strata cannot honour are refused by name
// rather than ignored.
#include "runtime/serve/openai_protocol.h"

#include <chrono>
#include <cmath>
#include <random>
#include <set>

namespace strata::serve {
namespace {

std::string type_of(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_null()) return "null";
  if (v.is_array()) return "an array";
  return "an object";
}

std::string shown(const json& v) {
  std::string s = dump(v);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// Field checks that stop at the first error, keeping it.
class Checker {
 public:
  explicit Checker(ApiError* err) : err_(err) {}
  bool ok() const { return ok_; }

  bool fail(const std::string& param, const std::string& msg, const std::string& code = "") {
    if (ok_) *err_ = invalid_request(param, msg, code);
    ok_ = false;
    return false;
  }
  bool expect(const std::string& param, const json& v, const std::string& what) {
    return fail(param, param + ": expected " + what + ", got " + type_of(v) + " " + shown(v));
  }

  // Number in [lo, hi]; null leaves *out as it is.
  template <typename T>
  bool number(const json& obj, const std::string& key, double lo, double hi, T* out, const std::string& path = "") {
    const std::string param = path.empty() ? key : path;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return true;
    if (!it->is_number() || (std::is_integral_v<T> && !it->is_number_integer())) {
      return expect(param, *it, std::is_integral_v<T> ? "an integer" : "a number");
    }
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < lo || v > hi) {
      return fail(param, param + ": expected a value in [" + num(lo) + ", " + num(hi) + "], got " + shown(*it));
    }
    *out = it->get<T>();
    return true;
  }
  bool boolean(const json& obj, const std::string& key, bool* out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return true;
    if (!it->is_boolean()) return expect(key, *it, "a boolean");
    *out = it->get<bool>();
    return true;
  }
  bool string(const json& obj, const std::string& key, std::string* out, const std::string& path = "") {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return true;
    if (!it->is_string()) return expect(path.empty() ? key : path, *it, "a string");
    *out = it->get<std::string>();
    return true;
  }
  // Keys outside `known` are an error; `unsupported` ones get their own message.
  bool keys(const json& obj, const std::set<std::string>& known, const std::set<std::string>& unsupported,
            const std::string& prefix = "") {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      const std::string p = prefix + it.key();
      if (unsupported.count(it.key())) {
        if (it->is_null()) continue;
        return fail(p, p + ": not supported by this server", "unsupported_parameter");
      }
      if (!known.count(it.key())) return fail(p, "unknown field '" + p + "'", "unknown_parameter");
    }
    return true;
  }

  static std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }

 private:
  ApiError* err_;
  bool ok_ = true;
};

// Sampling fields shared by both endpoints.
void parse_sampling(Checker& c, const json& b, const RequestLimits& lim, ParsedRequest* r) {
  SamplerParams& s = r->sampling;
  // OpenAI defaults: temperature 1, top_p 1, no top-k or min-p.
  s.temp = 1.0f;
  s.top_p = 1.0f;
  s.top_k = 0;
  s.min_p = 0.0f;
  s.repeat_penalty = 1.0f;
  s.penalty_last_n = -1;  // OpenAI's penalties count every generated token
  c.number(b, "temperature", 0, 2, &s.temp);
  c.number(b, "top_p", 0, 1, &s.top_p);
  c.number(b, "top_k", 0, 1e9, &s.top_k);
  c.number(b, "min_p", 0, 1, &s.min_p);
  c.number(b, "repetition_penalty", 0.01, 10, &s.repeat_penalty);
  c.number(b, "presence_penalty", -2, 2, &s.presence_penalty);
  c.number(b, "frequency_penalty", -2, 2, &s.frequency_penalty);
  if (auto it = b.find("seed"); it != b.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      c.expect("seed", *it, "an integer");
    } else {
      s.seed = it->is_number_unsigned() ? it->get<uint64_t>() : uint64_t(it->get<int64_t>());
      r->has_seed = true;
    }
  }
  int64_t n = 1;
  c.number(b, "n", 1, 1e9, &n);
  if (c.ok() && n != 1) c.fail("n", "n: only 1 choice per request is supported, got " + std::to_string(n));
  if (auto it = b.find("logit_bias"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) {
      c.expect("logit_bias", *it, "an object of token id -> bias");
    } else {
      for (auto kv = it->begin(); kv != it->end() && c.ok(); ++kv) {
        char* end = nullptr;
        const long id = std::strtol(kv.key().c_str(), &end, 10);
        if (kv.key().empty() || *end != '\0' || id < 0 || id > INT32_MAX) {
          c.fail("logit_bias", "logit_bias: expected token ids as keys, got '" + kv.key() + "'");
          break;
        }
        float bias = 0;
        if (c.number(*it, kv.key(), -100, 100, &bias, "logit_bias." + kv.key())) s.logit_bias[int32_t(id)] = bias;
      }
    }
  }
  if (auto it = b.find("stop"); it != b.end() && !it->is_null()) {
    if (it->is_string()) {
      r->stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      for (const auto& v : *it) {
        if (!v.is_string()) {
          c.expect("stop", v, "a string or an array of strings");
          break;
        }
        r->stop.push_back(v.get<std::string>());
      }
    } else {
      c.expect("stop", *it, "a string or an array of strings");
    }
    if (c.ok() && r->stop.size() > lim.max_stop) {
      c.fail("stop", "stop: at most " + std::to_string(lim.max_stop) + " stop strings, got " +
                         std::to_string(r->stop.size()));
    }
    for (const auto& st : r->stop) {
      if (c.ok() && st.size() > lim.max_stop_bytes) {
        c.fail("stop", "stop: each stop string at most " + std::to_string(lim.max_stop_bytes) + " bytes, got " +
                           std::to_string(st.size()));
      }
    }
  }
  c.boolean(b, "stream", &r->stream);
  if (auto it = b.find("stream_options"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) {
      c.expect("stream_options", *it, "an object");
    } else if (c.keys(*it, {"include_usage"}, {}, "stream_options.")) {
      if (!r->stream) c.fail("stream_options", "stream_options: only allowed when stream is true");
      c.boolean(*it, "include_usage", &r->include_usage);
    }
  }
}

bool parse_content(Checker& c, const json& content, const std::string& path) {
  if (content.is_string() || content.is_null()) return true;
  if (!content.is_array()) return c.expect(path, content, "a string, an array of content parts or null");
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (!part.is_object()) return c.expect(p, part, "a content part object");
    std::string type;
    if (!c.string(part, "type", &type, p + ".type")) return false;
    if (type != "text") {
      return c.fail(p + ".type", p + ".type: only text parts are supported, got '" + type + "'", "unsupported_content");
    }
    if (!c.keys(part, {"type", "text"}, {}, p + ".")) return false;
    if (!part.contains("text") || !part["text"].is_string()) {
      return c.expect(p + ".text", part.value("text", json()), "a string");
    }
  }
  return true;
}

bool parse_tool_calls(Checker& c, const json& calls, const std::string& path) {
  if (!calls.is_array()) return c.expect(path, calls, "an array of tool calls");
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    const json& tc = calls[i];
    if (!tc.is_object()) return c.expect(p, tc, "a tool call object");
    if (!c.keys(tc, {"id", "type", "function", "index"}, {}, p + ".")) return false;
    std::string id, type = "function";
    if (!c.string(tc, "id", &id, p + ".id") || !c.string(tc, "type", &type, p + ".type")) return false;
    if (type != "function") return c.fail(p + ".type", p + ".type: expected 'function', got '" + type + "'");
    if (!tc.contains("function") || !tc["function"].is_object()) {
      return c.expect(p + ".function", tc.value("function", json()), "an object {name, arguments}");
    }
    const json& f = tc["function"];
    if (!c.keys(f, {"name", "arguments"}, {}, p + ".function.")) return false;
    if (!f.contains("name") || !f["name"].is_string()) {
      return c.expect(p + ".function.name", f.value("name", json()), "a string");
    }
    if (f.contains("arguments") && !f["arguments"].is_string() && !f["arguments"].is_object()) {
      return c.expect(p + ".function.arguments", f["arguments"], "a JSON string");
    }
  }
  return true;
}

bool parse_messages(Checker& c, const json& b, const RequestLimits& lim, ParsedRequest* r) {
  auto it = b.find("messages");
  if (it == b.end()) return c.fail("messages", "messages: required");
  if (!it->is_array()) return c.expect("messages", *it, "an array of messages");
  if (it->empty()) return c.fail("messages", "messages: expected at least one message, got none");
  if (it->size() > lim.max_messages) {
    return c.fail("messages", "messages: at most " + std::to_string(lim.max_messages) + " messages, got " +
                                  std::to_string(it->size()));
  }
  static const std::set<std::string> roles = {"system", "developer", "user", "assistant", "tool"};
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return c.expect(p, m, "a message object");
    std::string role;
    if (!m.contains("role")) return c.fail(p + ".role", p + ".role: required");
    if (!c.string(m, "role", &role, p + ".role")) return false;
    if (!roles.count(role)) {
      return c.fail(p + ".role", p + ".role: expected system, developer, user, assistant or tool, got '" + role + "'");
    }
    std::set<std::string> known = {"role", "content", "name"};
    if (role == "assistant") known.insert({"tool_calls", "reasoning_content", "refusal", "function_call"});
    if (role == "tool") known.insert("tool_call_id");
    if (!c.keys(m, known, {"function_call", "audio"}, p + ".")) return false;
    const bool has_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (!m.contains("content") && !(role == "assistant" && has_calls)) return c.fail(p + ".content", p + ".content: required");
    const json content = m.value("content", json());
    if (!parse_content(c, content, p + ".content")) return false;
    if (content.is_null() && !(role == "assistant" && has_calls)) {
      return c.fail(p + ".content", p + ".content: null is only allowed for an assistant message with tool_calls");
    }
    std::string name, tool_call_id, reasoning;
    if (!c.string(m, "name", &name, p + ".name")) return false;
    if (!c.string(m, "reasoning_content", &reasoning, p + ".reasoning_content")) return false;
    if (role == "tool") {
      if (!m.contains("tool_call_id")) return c.fail(p + ".tool_call_id", p + ".tool_call_id: required for a tool message");
      if (!c.string(m, "tool_call_id", &tool_call_id, p + ".tool_call_id")) return false;
    }
    if (has_calls && !parse_tool_calls(c, m["tool_calls"], p + ".tool_calls")) return false;
    json out = {{"role", role}, {"content", content.is_null() ? json() : json(content_text(content))}};
    if (!name.empty()) out["name"] = name;
    if (!reasoning.empty()) out["reasoning_content"] = reasoning;
    if (role == "tool") out["tool_call_id"] = tool_call_id;
    if (has_calls) {
      json calls = json::array();
      for (const auto& tc : m["tool_calls"]) {
        json f = tc["function"];
        if (!f.contains("arguments")) f["arguments"] = "{}";
        calls.push_back({{"id", tc.value("id", "")}, {"type", "function"}, {"function", f}});
      }
      out["tool_calls"] = calls;
    }
    r->messages.push_back(std::move(out));
  }
  return true;
}

bool parse_response_format(Checker& c, const json& b, ParsedRequest* r) {
  auto it = b.find("response_format");
  if (it == b.end() || it->is_null()) return true;
  if (!it->is_object()) return c.expect("response_format", *it, "an object {type: ...}");
  std::string type;
  if (!c.string(*it, "type", &type, "response_format.type")) return false;
  if (type == "text" || type == "json_object") {
    r->response_format = type;
    return c.keys(*it, {"type"}, {}, "response_format.");
  }
  if (type == "json_schema") {
    if (!c.keys(*it, {"type", "json_schema"}, {}, "response_format.")) return false;
    const json js = it->value("json_schema", json());
    if (!js.is_object()) return c.expect("response_format.json_schema", js, "an object {name, schema, strict}");
    if (!c.keys(js, {"name", "schema", "strict", "description"}, {}, "response_format.json_schema.")) return false;
    if (!js.contains("schema") || (!js["schema"].is_object() && !js["schema"].is_boolean())) {
      return c.expect("response_format.json_schema.schema", js.value("schema", json()), "a JSON schema object");
    }
    r->response_format = type;
    r->json_schema = js;
    return true;
  }
  return c.fail("response_format.type", "response_format.type: expected text, json_object or json_schema, got '" + type + "'");
}

bool parse_tools(Checker& c, const json& b, ParsedRequest* r) {
  if (auto it = b.find("tools"); it != b.end() && !it->is_null()) {
    if (!it->is_array()) return c.expect("tools", *it, "an array of tools");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& t = (*it)[i];
      const std::string p = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") || !t["function"].is_object() ||
          !t["function"].contains("name") || !t["function"]["name"].is_string()) {
        return c.expect(p, t, "{\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": ...}}");
      }
      if (!c.keys(t, {"type", "function"}, {}, p + ".")) return false;
      if (!c.keys(t["function"], {"name", "description", "parameters", "strict"}, {}, p + ".function.")) return false;
    }
    if (!it->empty()) r->tools = *it;
  }
  if (auto it = b.find("tool_choice"); it != b.end() && !it->is_null()) {
    if (it->is_string()) {
      const std::string v = it->get<std::string>();
      if (v != "none" && v != "auto" && v != "required") {
        return c.fail("tool_choice", "tool_choice: expected none, auto, required or a function, got '" + v + "'");
      }
    } else if (!it->is_object() || it->value("type", "") != "function" || !it->contains("function")) {
      return c.expect("tool_choice", *it, "none, auto, required or {\"type\": \"function\", \"function\": {\"name\"}}");
    }
    r->tool_choice = *it;
  }
  return c.boolean(b, "parallel_tool_calls", &r->parallel_tool_calls);
}

bool parse_model(Checker& c, const json& b, ParsedRequest* r) {
  if (!b.contains("model")) return c.fail("model", "model: required");
  return c.string(b, "model", &r->model);
}

}  // namespace

json ApiError::to_json() const {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json() : json(param)},
            {"code", code.empty() ? json() : json(code)}}}};
}

ApiError invalid_request(std::string param, std::string message, std::string code) {
  ApiError e;
  e.status = 400;
  e.type = "invalid_request_error";
  e.param = std::move(param);
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

bool parse_json_body(const std::string& body, json* out, ApiError* err) {
  try {
    *out = json::parse(body);
  } catch (const json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string what = e.what();
    const size_t at = what.find("] ");
    *err = invalid_request("", "invalid JSON body: " + (at == std::string::npos ? what : what.substr(at + 2)),
                           "invalid_json");
    return false;
  }
  if (!out->is_object()) {
    *err = invalid_request("", "expected a JSON object as the body, got " + type_of(*out));
    return false;
  }
  return true;
}

std::string content_text(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string s;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (!part.is_object() || !part.contains("text") || !part["text"].is_string()) continue;
      if (!s.empty()) s += "\n";
      s += part["text"].get<std::string>();
    }
  }
  return s;
}

bool parse_chat_request(const json& b, const RequestLimits& lim, ParsedRequest* r, ApiError* err) {
  Checker c(err);
  r->endpoint = Endpoint::kChat;
  static const std::set<std::string> known = {
      "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
      "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "logit_bias", "stop", "seed",
      "n", "logprobs", "top_logprobs", "response_format", "tools", "tool_choice", "parallel_tool_calls", "user",
      "store", "metadata", "service_tier", "chat_template_kwargs", "reasoning_effort"};
  static const std::set<std::string> unsupported = {"functions", "function_call", "modalities", "audio", "prediction",
                                                    "web_search_options"};
  if (!c.keys(b, known, unsupported)) return false;
  if (!parse_model(c, b, r) || !parse_messages(c, b, lim, r)) return false;
  int32_t max_tokens = -1;
  c.number(b, "max_tokens", 1, INT32_MAX, &max_tokens);
  c.number(b, "max_completion_tokens", 1, INT32_MAX, &max_tokens);
  if (max_tokens > 0) r->max_tokens = max_tokens;
  parse_sampling(c, b, lim, r);
  c.boolean(b, "logprobs", &r->logprobs);
  if (b.contains("top_logprobs") && !b["top_logprobs"].is_null()) {
    c.number(b, "top_logprobs", 0, lim.max_top_logprobs, &r->top_logprobs);
    if (c.ok() && !r->logprobs) c.fail("top_logprobs", "top_logprobs: requires logprobs to be true");
  }
  if (!c.ok() || !parse_response_format(c, b, r) || !parse_tools(c, b, r)) return false;
  if (auto it = b.find("chat_template_kwargs"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) return c.expect("chat_template_kwargs", *it, "an object of template variables");
    r->template_kwargs = *it;
  }
  if (auto it = b.find("reasoning_effort"); it != b.end() && !it->is_null()) {
    std::string effort;
    if (!c.string(b, "reasoning_effort", &effort)) return false;
    if (effort != "low" && effort != "medium" && effort != "high" && effort != "minimal") {
      return c.fail("reasoning_effort", "reasoning_effort: expected minimal, low, medium or high, got '" + effort + "'");
    }
    r->template_kwargs["reasoning_effort"] = effort;
  }
  std::string user;
  c.string(b, "user", &user);
  return c.ok();
}

bool parse_completion_request(const json& b, const RequestLimits& lim, ParsedRequest* r, ApiError* err) {
  Checker c(err);
  r->endpoint = Endpoint::kCompletion;
  static const std::set<std::string> known = {
      "model", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p", "top_k", "min_p",
      "repetition_penalty", "presence_penalty", "frequency_penalty", "logit_bias", "stop", "seed", "n", "logprobs",
      "echo", "suffix", "best_of", "user"};
  if (!c.keys(b, known, {})) return false;
  if (!parse_model(c, b, r)) return false;
  auto it = b.find("prompt");
  if (it == b.end()) return c.fail("prompt", "prompt: required");
  auto token_list = [&](const json& a) {
    for (const auto& v : a) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
        return c.expect("prompt", v, "token ids (non-negative integers)");
      }
      r->prompt_ids.push_back(TokenId(v.get<int64_t>()));
    }
    return true;
  };
  if (it->is_string()) {
    r->prompt = it->get<std::string>();
  } else if (it->is_array() && !it->empty() && (*it)[0].is_number()) {
    if (!token_list(*it)) return false;
  } else if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
    r->prompt = (*it)[0].get<std::string>();
  } else if (it->is_array() && it->size() == 1 && (*it)[0].is_array()) {
    if (!token_list((*it)[0])) return false;
  } else if (it->is_array() && it->size() > 1) {
    return c.fail("prompt", "prompt: one prompt per request is supported, got " + std::to_string(it->size()));
  } else {
    return c.expect("prompt", *it, "a string, an array with one string, or token ids");
  }
  int32_t max_tokens = 16;  // OpenAI's default for completions
  c.number(b, "max_tokens", 1, INT32_MAX, &max_tokens);
  r->max_tokens = max_tokens;
  parse_sampling(c, b, lim, r);
  if (b.contains("logprobs") && !b["logprobs"].is_null()) {
    int32_t n = 0;
    if (c.number(b, "logprobs", 0, lim.max_top_logprobs, &n)) {
      r->logprobs = true;
      r->top_logprobs = n;
    }
  }
  bool echo = false;
  c.boolean(b, "echo", &echo);
  if (c.ok() && echo) c.fail("echo", "echo: not supported by this server", "unsupported_parameter");
  std::string suffix;
  c.string(b, "suffix", &suffix);
  if (c.ok() && !suffix.empty()) c.fail("suffix", "suffix: not supported by this server", "unsupported_parameter");
  int64_t best_of = 1;
  c.number(b, "best_of", 1, 1e9, &best_of);
  if (c.ok() && best_of != 1) c.fail("best_of", "best_of: only 1 is supported, got " + std::to_string(best_of));
  std::string user;
  c.string(b, "user", &user);
  return c.ok();
}

const char* finish_name(Finish f, bool tool_calls) {
  if (tool_calls) return "tool_calls";
  return f == Finish::kLength ? "length" : "stop";
}

json Usage::to_json() const {
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

namespace {

std::string piece_text(const Tokenizer& tok, TokenId id) { return std::string(tok.piece(id, true)); }

json bytes_of(const std::string& s) {
  json a = json::array();
  for (unsigned char ch : s) a.push_back(int(ch));
  return a;
}

}  // namespace

json chat_logprobs(const std::vector<TokenLogprob>& lps, const Tokenizer& tok) {
  json content = json::array();
  for (const auto& t : lps) {
    const std::string text = piece_text(tok, t.id);
    json top = json::array();
    for (const auto& a : t.top) {
      const std::string at = piece_text(tok, a.id);
      top.push_back({{"token", at}, {"logprob", a.logprob}, {"bytes", bytes_of(at)}});
    }
    content.push_back({{"token", text}, {"logprob", t.logprob}, {"bytes", bytes_of(text)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json completion_logprobs(const std::vector<TokenLogprob>& lps, const Tokenizer& tok, int64_t offset) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  for (const auto& t : lps) {
    const std::string text = piece_text(tok, t.id);
    tokens.push_back(text);
    token_lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& a : t.top) top[piece_text(tok, a.id)] = a.logprob;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += int64_t(text.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_response(const ResponseMeta& m, const json& message, const std::string& finish, const json& logprobs,
                   const Usage& u) {
  return {{"id", m.id},
          {"object", "chat.completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({{{"index", 0}, {"message", message}, {"logprobs", logprobs}, {"finish_reason", finish}}})},
          {"usage", u.to_json()},
          {"system_fingerprint", "strata"}};
}

json chat_chunk(const ResponseMeta& m, const json& delta, const json& finish, const json& logprobs, bool with_usage) {
  json j = {{"id", m.id},
            {"object", "chat.completion.chunk"},
            {"created", m.created},
            {"model", m.model},
            {"system_fingerprint", "strata"},
            {"choices", json::array({{{"index", 0}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}}})}};
  if (with_usage) j["usage"] = nullptr;
  return j;
}

json usage_chunk(const ResponseMeta& m, const std::string& object, const Usage& u) {
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model},
          {"system_fingerprint", "strata"}, {"choices", json::array()}, {"usage", u.to_json()}};
}

json completion_response(const ResponseMeta& m, const std::string& text, const std::string& finish,
                         const json& logprobs, const Usage& u) {
  return {{"id", m.id},
          {"object", "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({{{"text", text}, {"index", 0}, {"logprobs", logprobs}, {"finish_reason", finish}}})},
          {"usage", u.to_json()},
          {"system_fingerprint", "strata"}};
}

json completion_chunk(const ResponseMeta& m, const std::string& text, const json& finish, const json& logprobs,
                      bool with_usage) {
  json j = {{"id", m.id},
            {"object", "text_completion"},
            {"created", m.created},
            {"model", m.model},
            {"system_fingerprint", "strata"},
            {"choices", json::array({{{"text", text}, {"index", 0}, {"logprobs", logprobs}, {"finish_reason", finish}}})}};
  if (with_usage) j["usage"] = nullptr;
  return j;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

std::string random_id(const std::string& prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* digits = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += digits[rng() % 62];
  return s;
}

}  // namespace strata::serve
