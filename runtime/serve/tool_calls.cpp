// Tool-call parsing: one streaming state machine over a held-back buffer for
// every family; the whole-text parse is the same machine fed at once.
#include "runtime/serve/tool_calls.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

namespace strata::serve {
namespace {

using ojson = nlohmann::ordered_json;

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kDsCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kDsCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kDsCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kDsCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kDsSep = "<｜tool▁sep｜>";
constexpr std::string_view kKimiSectionBegin = "<|tool_calls_section_begin|>";
constexpr std::string_view kKimiSectionEnd = "<|tool_calls_section_end|>";
constexpr std::string_view kKimiCallBegin = "<|tool_call_begin|>";
constexpr std::string_view kKimiCallEnd = "<|tool_call_end|>";
constexpr std::string_view kKimiArgs = "<|tool_call_argument_begin|>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";
constexpr std::string_view kMistralCallId = "[CALL_ID]";
constexpr size_t kMaxNameBytes = 256;

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// `s` is a proper prefix of `marker` (so it may still become it).
bool may_become(std::string_view s, std::string_view marker) {
  return s.size() < marker.size() && marker.substr(0, s.size()) == s;
}

// Length of the longest suffix of `s` that is a proper prefix of `marker`.
size_t partial_suffix(std::string_view s, std::string_view marker) {
  for (size_t k = std::min(s.size(), marker.size() - 1); k > 0; --k) {
    if (s.substr(s.size() - k) == marker.substr(0, k)) return k;
  }
  return 0;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.';
}

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes && std::all_of(name.begin(), name.end(), is_name_char);
}

std::string compact(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

// Arguments as a compact JSON object: an object, or a string holding one.
bool arguments_text(const ojson& a, std::string* out) {
  if (a.is_object()) {
    *out = compact(a);
    return true;
  }
  if (a.is_string()) {
    const ojson inner = ojson::parse(a.get<std::string>(), nullptr, false);
    if (inner.is_discarded() || !inner.is_object()) return false;
    *out = compact(inner);
    return true;
  }
  return false;
}

// {"name": N, "arguments"|"parameters": {..}} (arguments may be absent: {}).
bool call_object(const ojson& j, std::string* name, std::string* args) {
  if (!j.is_object()) return false;
  auto n = j.find("name");
  if (n == j.end() || !n->is_string() || n->get<std::string>().empty()) return false;
  *name = n->get<std::string>();
  auto a = j.find("arguments");
  if (a == j.end()) a = j.find("parameters");
  if (a == j.end()) {
    *args = "{}";
    return true;
  }
  return arguments_text(*a, args);
}

std::string_view strip_fence(std::string_view s) {
  s = trim(s);
  if (starts_with(s, "```json")) {
    s.remove_prefix(7);
  } else if (starts_with(s, "```")) {
    s.remove_prefix(3);
  }
  if (s.size() >= 3 && s.substr(s.size() - 3) == "```") s.remove_suffix(3);
  return trim(s);
}

}  // namespace

const char* tool_call_format_name(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kNone: return "none";
    case ToolCallFormat::kHermes: return "hermes";
    case ToolCallFormat::kDeepSeek: return "deepseek";
    case ToolCallFormat::kKimiK2: return "kimi-k2";
    case ToolCallFormat::kLlama3: return "llama3";
    case ToolCallFormat::kMistral: return "mistral";
  }
  return "none";
}

ToolCallFormat detect_tool_call_format(std::string_view tmpl, std::string_view arch) {
  auto has = [&](std::string_view s) { return tmpl.find(s) != std::string_view::npos; };
  if (has(kDsCallBegin)) return ToolCallFormat::kDeepSeek;
  if (has(kKimiCallBegin)) return ToolCallFormat::kKimiK2;
  if (has(kHermesOpen)) return ToolCallFormat::kHermes;
  if (has(kMistralCalls)) return ToolCallFormat::kMistral;
  if (has(kPythonTag) || (has("<|start_header_id|>") && has("\"parameters\""))) return ToolCallFormat::kLlama3;
  if (arch == "qwen2" || arch == "qwen3" || arch == "qwen2moe" || arch == "qwen3moe") return ToolCallFormat::kHermes;
  if (arch == "deepseek2") return ToolCallFormat::kDeepSeek;
  return ToolCallFormat::kNone;
}

ToolCallParser::ToolCallParser(ToolCallFormat format, uint64_t id_seed)
    : format_(format), rng_(id_seed), mode_(Mode::kText), after_call_(Mode::kText) {
  if (format == ToolCallFormat::kNone) mode_ = Mode::kPlain;
  if (format == ToolCallFormat::kLlama3) mode_ = after_call_ = Mode::kLlamaStart;
}

std::string ToolCallParser::new_id() {
  static constexpr char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bool mistral = format_ == ToolCallFormat::kMistral;
  std::string id = mistral ? "" : "call_";
  for (int i = 0; i < (mistral ? 9 : 24); ++i) id.push_back(kAlnum[rng_.next() % 62]);
  return id;
}

void ToolCallParser::emit_call(ToolCallChunk& out, std::string name, std::string arguments) {
  const size_t index = n_calls_++;
  out.calls.push_back({index, new_id(), std::move(name), ""});
  out.calls.push_back({index, "", "", std::move(arguments)});
  raw_.clear();
}

void ToolCallParser::malformed(ToolCallChunk& out, std::string_view rest) {
  out.content += raw_;
  out.content += rest;
  raw_.clear();
}

// A marker-delimited call body (Hermes, DeepSeek, Kimi).
bool ToolCallParser::finish_call(ToolCallChunk& out, std::string_view body) {
  std::string name, args;
  if (format_ == ToolCallFormat::kHermes) {
    const ojson j = ojson::parse(trim(body), nullptr, false);
    if (j.is_discarded() || !call_object(j, &name, &args)) return false;
  } else {
    const std::string_view sep = format_ == ToolCallFormat::kDeepSeek ? kDsSep : kKimiArgs;
    const size_t at = body.find(sep);
    if (at == std::string_view::npos) return false;
    std::string_view left = trim(body.substr(0, at)), right = body.substr(at + sep.size());
    if (format_ == ToolCallFormat::kDeepSeek && left == "function" && !starts_with(trim(right), "{")) {
      // R1/V3: function<sep>NAME\n```json\n{..}\n```
      const size_t nl = right.find('\n');
      if (nl == std::string_view::npos) return false;
      left = trim(right.substr(0, nl));
      right = right.substr(nl + 1);
    } else if (format_ == ToolCallFormat::kKimiK2) {
      // functions.NAME:INDEX
      if (starts_with(left, "functions.")) left.remove_prefix(10);
      const size_t colon = left.rfind(':');
      if (colon != std::string_view::npos) left = left.substr(0, colon);
    }
    if (!valid_name(left)) return false;
    const ojson a = ojson::parse(strip_fence(right), nullptr, false);
    if (a.is_discarded() || !arguments_text(a, &args)) return false;
    name = std::string(left);
  }
  emit_call(out, std::move(name), std::move(args));
  return true;
}

bool ToolCallParser::step_text(ToolCallChunk& out, bool final) {
  std::array<std::string_view, 2> markers{};
  size_t n = 0;
  switch (format_) {
    case ToolCallFormat::kHermes: markers[n++] = kHermesOpen; break;
    case ToolCallFormat::kDeepSeek:
      markers[n++] = kDsCallsBegin;
      markers[n++] = kDsCallBegin;
      break;
    case ToolCallFormat::kKimiK2:
      markers[n++] = kKimiSectionBegin;
      markers[n++] = kKimiCallBegin;
      break;
    case ToolCallFormat::kMistral: markers[n++] = kMistralCalls; break;
    default: break;
  }
  size_t best = std::string::npos;
  std::string_view found;
  for (size_t i = 0; i < n; ++i) {
    const size_t at = buf_.find(markers[i]);
    if (at < best) best = at, found = markers[i];
  }
  if (best != std::string::npos) {
    size_t end = best;
    while (end > 0 && is_ws(buf_[end - 1])) --end;  // whitespace before a call is dropped
    out.content.append(buf_, 0, end);
    buf_.erase(0, best + found.size());
    raw_ = std::string(found);
    if (found == kDsCallsBegin || found == kKimiSectionBegin) {
      mode_ = Mode::kSection;
    } else if (found == kMistralCalls) {
      mode_ = Mode::kMistralCall;
    } else {
      mode_ = Mode::kCallBody;
      after_call_ = format_ == ToolCallFormat::kHermes ? Mode::kText : Mode::kSection;
    }
    return true;
  }
  if (final) {
    out.content += buf_;
    buf_.clear();
    return false;
  }
  size_t keep = 0;
  for (size_t i = 0; i < n; ++i) keep = std::max(keep, partial_suffix(buf_, markers[i]));
  size_t end = buf_.size() - keep;
  while (end > 0 && is_ws(buf_[end - 1])) --end;
  out.content.append(buf_, 0, end);
  buf_.erase(0, end);
  return false;
}

bool ToolCallParser::step_json(ToolCallChunk& out, bool final) {
  size_t end = 0;
  for (size_t i = scan_; i < buf_.size() && !end; ++i) {
    const char c = buf_[i];
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) end = i + 1;
    }
  }
  if (!end) {
    scan_ = buf_.size();
    if (final) {
      malformed(out, buf_);
      buf_.clear();
    }
    return false;
  }
  const std::string text = buf_.substr(0, end);
  buf_.erase(0, end);
  scan_ = 0;
  depth_ = 0;
  in_string_ = escape_ = false;
  raw_ += text;
  const ojson j = ojson::parse(text, nullptr, false);
  std::vector<std::pair<std::string, std::string>> calls;
  bool ok = !j.is_discarded();
  if (ok && !json_name_.empty()) {
    std::string args;
    ok = arguments_text(j, &args);
    calls.push_back({json_name_, args});
  } else if (ok && j.is_array()) {
    ok = !j.empty();
    for (const ojson& e : j) {
      std::string name, args;
      if (!call_object(e, &name, &args)) ok = false;
      calls.push_back({name, args});
    }
  } else if (ok) {
    std::string name, args;
    ok = call_object(j, &name, &args);
    calls.push_back({name, args});
  }
  json_name_.clear();
  if (!ok) {
    malformed(out, "");
    mode_ = format_ == ToolCallFormat::kLlama3 ? Mode::kPlain : Mode::kText;
    return true;
  }
  for (auto& [name, args] : calls) emit_call(out, std::move(name), std::move(args));
  mode_ = Mode::kSkipWs;
  return true;
}

bool ToolCallParser::step(ToolCallChunk& out, bool final) {
  switch (mode_) {
    case Mode::kForcedArgs:
    case Mode::kForcedCall:  // push() and finish() decide these, never step()
      return false;
    case Mode::kPlain:
      out.content += buf_;
      buf_.clear();
      return false;
    case Mode::kText: return step_text(out, final);
    case Mode::kSkipWs: {
      size_t j = 0;
      // Llama separates calls with ';' as well.
      while (j < buf_.size() && (is_ws(buf_[j]) || (format_ == ToolCallFormat::kLlama3 && buf_[j] == ';'))) ++j;
      buf_.erase(0, j);
      if (buf_.empty()) return false;
      mode_ = after_call_;
      return true;
    }
    case Mode::kSection: {
      // raw_ keeps the section opener until a call in it succeeds, so a
      // section whose first call is malformed comes back whole as content.
      size_t j = 0;
      while (j < buf_.size() && is_ws(buf_[j])) ++j;
      raw_.append(buf_, 0, j);
      buf_.erase(0, j);
      if (buf_.empty()) return false;
      const bool ds = format_ == ToolCallFormat::kDeepSeek;
      const std::string_view call = ds ? kDsCallBegin : kKimiCallBegin;
      const std::string_view end = ds ? kDsCallsEnd : kKimiSectionEnd;
      if (starts_with(buf_, call)) {
        raw_ += call;
        buf_.erase(0, call.size());
        mode_ = Mode::kCallBody;
        after_call_ = Mode::kSection;
        return true;
      }
      if (starts_with(buf_, end)) {
        buf_.erase(0, end.size());
        if (!trim(raw_).empty()) malformed(out, end);  // a section without calls: content
        raw_.clear();
        mode_ = Mode::kSkipWs;
        after_call_ = Mode::kText;
        return true;
      }
      if (!final && (may_become(buf_, call) || may_become(buf_, end))) return false;
      if (!trim(raw_).empty()) malformed(out, "");  // an opener followed by text: content
      raw_.clear();
      mode_ = Mode::kText;
      return true;
    }
    case Mode::kCallBody: {
      const std::string_view end = format_ == ToolCallFormat::kHermes    ? kHermesClose
                                   : format_ == ToolCallFormat::kDeepSeek ? kDsCallEnd
                                                                          : kKimiCallEnd;
      const size_t at = buf_.find(end);
      if (at == std::string::npos) {
        if (!final) return false;
        // The text ended inside a call: Hermes models may stop before the
        // closing tag; a body that parses is still a call.
        raw_ += buf_;
        const std::string body = buf_;
        buf_.clear();
        if (!(format_ == ToolCallFormat::kHermes && finish_call(out, body))) malformed(out, "");
        return false;
      }
      const std::string body = buf_.substr(0, at);
      raw_ += buf_.substr(0, at + end.size());
      buf_.erase(0, at + end.size());
      if (finish_call(out, body)) {
        mode_ = after_call_ == Mode::kSection ? Mode::kSection : Mode::kSkipWs;
      } else {
        malformed(out, "");
        mode_ = Mode::kText;
      }
      return true;
    }
    case Mode::kJson: return step_json(out, final);
    case Mode::kLlamaStart: {
      size_t j = 0;
      while (j < buf_.size() && is_ws(buf_[j])) ++j;
      if (j == buf_.size()) {
        if (final) {
          out.content += buf_;
          buf_.clear();
        }
        return false;
      }
      const std::string_view rest = std::string_view(buf_).substr(j);
      if (starts_with(rest, kPythonTag)) {
        raw_ = buf_.substr(0, j + kPythonTag.size());
        buf_.erase(0, j + kPythonTag.size());
        mode_ = Mode::kLlamaTag;
        return true;
      }
      if (rest[0] == '{') {
        raw_ = buf_.substr(0, j);
        buf_.erase(0, j);
        mode_ = Mode::kJson;
        return true;
      }
      if (!final && may_become(rest, kPythonTag)) return false;
      mode_ = Mode::kPlain;
      return true;
    }
    case Mode::kLlamaTag:
    case Mode::kMistralCall: {
      size_t j = 0;
      while (j < buf_.size() && is_ws(buf_[j])) ++j;
      raw_.append(buf_, 0, j);
      buf_.erase(0, j);
      if (buf_.empty()) {
        if (final) malformed(out, "");
        return false;
      }
      const bool llama = mode_ == Mode::kLlamaTag;
      if (buf_[0] == '{' || (!llama && buf_[0] == '[')) {
        mode_ = Mode::kJson;
      } else if (llama) {
        malformed(out, "");  // <|python_tag|> and not JSON (a built-in tool call): content
        mode_ = Mode::kPlain;
      } else {
        mode_ = Mode::kMistralName;
      }
      return true;
    }
    case Mode::kMistralName: {
      // NAME[ARGS]{..} or NAME[CALL_ID]ID[ARGS]{..}
      const size_t at = buf_.find(kMistralArgs);
      const std::string_view head = std::string_view(buf_).substr(0, at == std::string::npos ? buf_.size() : at);
      std::string_view name = head;
      if (const size_t id = head.find(kMistralCallId); id != std::string_view::npos) name = head.substr(0, id);
      // The head can still be (or is) NAME, NAME[CALL_ID]ID or a cut [ARGS].
      const bool head_ok = head.size() <= kMaxNameBytes + 64 && std::all_of(head.begin(), head.end(), [](char c) {
        return is_name_char(c) || c == '[' || c == ']';
      });
      if (at == std::string::npos) {
        if (!final && head_ok) return false;
        malformed(out, "");
        mode_ = Mode::kText;
        return true;
      }
      const bool name_ok = head_ok && valid_name(name);
      if (!name_ok || at + kMistralArgs.size() >= buf_.size()) {
        if (name_ok && !final) return false;  // wait for the first byte of the arguments
        malformed(out, "");
        mode_ = Mode::kText;
        return true;
      }
      if (buf_[at + kMistralArgs.size()] != '{') {
        malformed(out, "");
        mode_ = Mode::kText;
        return true;
      }
      json_name_ = std::string(name);
      raw_.append(buf_, 0, at + kMistralArgs.size());
      buf_.erase(0, at + kMistralArgs.size());
      after_call_ = Mode::kText;
      mode_ = Mode::kJson;
      return true;
    }
  }
  return false;
}

void ToolCallParser::run(ToolCallChunk& out, bool final) {
  while (step(out, final)) {
  }
}

ToolCallParser ToolCallParser::forced(ToolCallFormat format, uint64_t id_seed, std::string name) {
  ToolCallParser p(format, id_seed);
  p.mode_ = name.empty() ? Mode::kForcedCall : Mode::kForcedArgs;
  p.forced_name_ = std::move(name);
  return p;
}

ToolCallChunk ToolCallParser::push(std::string_view text) {
  ToolCallChunk out;
  if (mode_ == Mode::kForcedArgs) {
    if (n_calls_ == 0) {
      n_calls_ = 1;
      out.calls.push_back({0, new_id(), forced_name_, ""});
    }
    if (!text.empty()) out.calls.push_back({0, "", "", std::string(text)});
    return out;
  }
  buf_.append(text);
  if (mode_ == Mode::kForcedCall) return out;
  run(out, false);
  return out;
}

ToolCallChunk ToolCallParser::finish() {
  ToolCallChunk out;
  if (mode_ == Mode::kForcedArgs) return push("");
  if (mode_ == Mode::kForcedCall) {
    const ojson j = ojson::parse(buf_, nullptr, false);
    std::string name, args;
    if (!j.is_discarded() && call_object(j, &name, &args)) {
      emit_call(out, std::move(name), std::move(args));
    } else {
      out.content = std::move(buf_);
    }
    buf_.clear();
    return out;
  }
  run(out, true);
  if (!buf_.empty() || !trim(raw_).empty()) malformed(out, buf_);
  buf_.clear();
  return out;
}

Result<std::optional<ForcedToolCall>> forced_tool_call(const nlohmann::json& tools, const nlohmann::json& choice) {
  const bool required = choice.is_string() && choice.get<std::string>() == "required";
  if (!required && !choice.is_object()) return std::optional<ForcedToolCall>();
  if (!tools.is_array() || tools.empty()) {
    return invalid_argument("tool_choice: forcing a tool call needs tools");
  }
  auto parameters = [](const nlohmann::json& fn) {
    auto p = fn.find("parameters");
    return p == fn.end() || p->is_null() ? nlohmann::json{{"type", "object"}} : *p;
  };
  if (required) {
    nlohmann::json any = nlohmann::json::array();
    for (const nlohmann::json& t : tools) {
      const nlohmann::json& fn = t.at("function");
      any.push_back({{"type", "object"},
                     {"properties", {{"name", {{"const", fn.at("name")}}}, {"arguments", parameters(fn)}}},
                     {"required", {"name", "arguments"}},
                     {"additionalProperties", false}});
    }
    return std::optional<ForcedToolCall>(ForcedToolCall{"", any.size() == 1 ? any[0] : nlohmann::json{{"anyOf", any}}});
  }
  const nlohmann::json* want = nullptr;
  if (auto f = choice.find("function"); f != choice.end() && f->is_object()) {
    if (auto n = f->find("name"); n != f->end() && n->is_string()) want = &*n;
  }
  if (!want) return invalid_argument("tool_choice: expected {\"type\": \"function\", \"function\": {\"name\": ...}}");
  for (const nlohmann::json& t : tools) {
    const nlohmann::json& fn = t.at("function");
    if (fn.at("name") == *want) return std::optional<ForcedToolCall>(ForcedToolCall{want->get<std::string>(), parameters(fn)});
  }
  return invalid_argument("tool_choice: function '" + want->get<std::string>() + "' is not among the tools");
}

void append_chunk(ParsedToolCalls& into, const ToolCallChunk& chunk) {
  into.content += chunk.content;
  for (const ToolCallDelta& d : chunk.calls) {
    if (d.index >= into.calls.size()) into.calls.resize(d.index + 1);
    ToolCall& c = into.calls[d.index];
    if (!d.id.empty()) c.id = d.id;
    if (!d.name.empty()) c.name = d.name;
    c.arguments += d.arguments;
  }
}

ParsedToolCalls parse_tool_calls(ToolCallFormat format, std::string_view text, uint64_t id_seed) {
  ToolCallParser p(format, id_seed);
  ParsedToolCalls out;
  append_chunk(out, p.push(text));
  append_chunk(out, p.finish());
  return out;
}

}  // namespace strata::serve
