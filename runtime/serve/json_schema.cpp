// JSON Schema (the supported subset) and response_format -> JsonGrammar.
// Every keyword is either compiled into the grammar, a recognised annotation,
// or an error naming it and its JSON pointer.
#include "runtime/serve/json_schema.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace strata::serve {
namespace {

using json = nlohmann::json;

const std::set<std::string, std::less<>> kAnnotations = {
    "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly",
    "writeOnly"};
// Keywords that apply only to one instance type; they are legal next to any
// `type` (JSON Schema ignores them for other types) and used where they apply.
const std::set<std::string, std::less<>> kTypedKeywords = {
    "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength"};

std::string pointer_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "an unknown value";
  }
}

// Compact serialization; invalid UTF-8 in a string cannot be produced by a
// parsed request, but is replaced rather than thrown on.
std::string compact(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

bool matches_type(const json& v, std::string_view type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "integer") {
    if (v.is_number_integer()) return true;
    return v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>();
  }
  if (type == "number") return v.is_number();
  return false;
}

class Compiler {
 public:
  Compiler(const json& root, const JsonConstraintOptions& opt, std::string where)
      : root_(root), where_(std::move(where)) {
    g_ = std::make_shared<JsonGrammar>();
    g_->max_ws = std::min<uint32_t>(opt.max_ws, 255);
    g_->max_depth = std::clamp<uint32_t>(opt.max_depth, 1, 64);
    g_->max_number_digits = std::clamp<uint32_t>(opt.max_number_digits, 1, 1000);
  }

  Result<std::shared_ptr<JsonGrammar>> run() {
    STRATA_ASSIGN_OR_RETURN(g_->root, compile(root_, ""));
    STRATA_RETURN_IF_ERROR(check_cycles());
    return g_;
  }

  // Any JSON value, with objects and arrays of any values (one shared node).
  uint32_t any_value() {
    if (any_ != kNoNode) return any_;
    any_ = new_node(NodeKind::kAnyOf);
    const uint32_t obj = new_node(NodeKind::kObject);
    g_->nodes[obj].additional = any_;
    const uint32_t arr = new_node(NodeKind::kArray);
    g_->nodes[arr].items = any_;
    const uint32_t str = new_node(NodeKind::kString);
    const uint32_t num = new_node(NodeKind::kNumber);
    const uint32_t lit = literal_node({"true", "false", "null"});
    g_->nodes[any_].alts = {obj, arr, str, num, lit};
    return any_;
  }

  uint32_t any_object() {
    const uint32_t obj = new_node(NodeKind::kObject);
    const uint32_t any = any_value();
    g_->nodes[obj].additional = any;
    return obj;
  }

  std::shared_ptr<JsonGrammar> grammar() { return g_; }

 private:
  std::string at(const std::string& ptr) const { return where_ + (ptr.empty() ? "" : ptr); }

  Status bad(const std::string& ptr, const std::string& what) const {
    return invalid_argument("JSON Schema: " + what + " at " + at(ptr));
  }

  uint32_t new_node(NodeKind kind) {
    g_->nodes.emplace_back();
    g_->nodes.back().kind = kind;
    return static_cast<uint32_t>(g_->nodes.size() - 1);
  }

  uint32_t literal_node(const std::vector<std::string>& values) {
    const uint32_t n = new_node(NodeKind::kLiteral);
    const auto root = static_cast<uint32_t>(g_->lit.size());
    g_->lit.emplace_back();
    g_->nodes[n].lit_root = root;
    for (const std::string& v : values) {
      uint32_t cur = root;
      for (char ch : v) {
        const auto b = static_cast<uint8_t>(ch);
        auto& kids = g_->lit[cur].kids;
        auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, uint32_t{0}),
                                   [](const auto& a, const auto& x) { return a.first < x.first; });
        if (it != kids.end() && it->first == b) {
          cur = it->second;
          continue;
        }
        const auto next = static_cast<uint32_t>(g_->lit.size());
        kids.insert(it, {b, next});
        g_->lit.emplace_back();
        cur = next;
      }
      g_->lit[cur].terminal = true;
    }
    return n;
  }

  Result<uint32_t> get_count(const json& s, const char* key, const std::string& ptr, uint32_t fallback) {
    auto it = s.find(key);
    if (it == s.end()) return fallback;
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      return bad(ptr + "/" + key, std::string("expected a non-negative integer for '") + key + "', got " +
                                      type_name(*it) + " " + compact(*it));
    }
    return static_cast<uint32_t>(std::min<int64_t>(it->get<int64_t>(), kUnbounded - 1));
  }

  Result<uint32_t> compile(const json& s, const std::string& ptr) {
    if (auto it = memo_.find(ptr); it != memo_.end()) return it->second;
    if (s.is_boolean()) {
      if (!s.get<bool>()) return bad(ptr, "the schema false can never be satisfied");
      return memo_[ptr] = any_value();
    }
    if (!s.is_object()) return bad(ptr, "expected a schema (an object or a boolean), got " + type_name(s));
    // Every keyword is known before anything is built.
    for (const auto& [key, value] : s.items()) {
      if (kAnnotations.count(key) || kTypedKeywords.count(key)) continue;
      if (key == "type" || key == "enum" || key == "const" || key == "anyOf" || key == "$ref") {
        continue;
      }
      if (key == "$defs" || key == "definitions") {
        if (!ptr.empty()) return unsupported("unsupported JSON Schema keyword '" + key + "' below the root at " + at(ptr));
        continue;
      }
      return unsupported("unsupported JSON Schema keyword '" + key + "' at " + at(ptr + "/" + pointer_escape(key)));
    }
    if (s.contains("$ref")) return compile_ref(s, ptr);

    // A node id is reserved before compiling the body, so recursive $refs
    // into this schema find it.
    const uint32_t self = new_node(NodeKind::kAnyOf);
    memo_[ptr] = self;
    STRATA_ASSIGN_OR_RETURN(const uint32_t body, compile_body(s, ptr));
    // The body's meaning is its content: copy it into the reserved node
    // rather than adding an anyOf level every value would expand.
    Node copy = g_->nodes[body];
    g_->nodes[self] = std::move(copy);
    return self;
  }

  Result<uint32_t> compile_ref(const json& s, const std::string& ptr) {
    for (const auto& [key, value] : s.items()) {
      if (key != "$ref" && !kAnnotations.count(key) && key != "$defs" && key != "definitions") {
        return unsupported("unsupported JSON Schema keyword '" + key + "' next to $ref at " +
                           at(ptr + "/" + pointer_escape(key)));
      }
    }
    const json& ref = s["$ref"];
    if (!ref.is_string()) return bad(ptr + "/$ref", "expected a string for '$ref', got " + type_name(ref));
    const std::string r = ref.get<std::string>();
    if (r.empty() || r[0] != '#') {
      return unsupported("unsupported $ref '" + r + "' (only references inside the schema, '#...') at " +
                         at(ptr + "/$ref"));
    }
    const std::string target = r.substr(1);
    if (!target.empty() && target[0] != '/') {
      return unsupported("unsupported $ref '" + r + "' (anchors are not supported) at " + at(ptr + "/$ref"));
    }
    if (++ref_depth_ > 256) return bad(ptr + "/$ref", "$ref chain deeper than 256");
    const json* node = nullptr;
    try {
      node = &root_.at(json::json_pointer(target));
    } catch (const json::exception&) {
      node = nullptr;
    }
    if (!node) return bad(ptr + "/$ref", "$ref '" + r + "' points at nothing");
    if (target == ptr) return bad(ptr + "/$ref", "$ref '" + r + "' refers to itself");
    auto result = compile(*node, target);
    --ref_depth_;
    if (result.is_ok()) memo_[ptr] = *result;
    return result;
  }

  Result<std::vector<std::string>> type_list(const json& s, const std::string& ptr) {
    std::vector<std::string> types;
    auto it = s.find("type");
    if (it == s.end()) return types;
    auto add = [&](const json& t, const std::string& p) -> Status {
      static const std::set<std::string, std::less<>> known = {"object", "array",   "string", "number",
                                                               "integer", "boolean", "null"};
      if (!t.is_string()) return bad(p, "expected a type name, got " + type_name(t));
      if (!known.count(t.get<std::string>())) {
        return unsupported("unsupported JSON Schema type '" + t.get<std::string>() + "' at " + at(p));
      }
      if (std::find(types.begin(), types.end(), t.get<std::string>()) == types.end()) {
        types.push_back(t.get<std::string>());
      }
      return Status::ok();
    };
    if (it->is_array()) {
      if (it->empty()) return bad(ptr + "/type", "expected at least one type");
      for (size_t i = 0; i < it->size(); ++i) STRATA_RETURN_IF_ERROR(add((*it)[i], ptr + "/type/" + std::to_string(i)));
    } else {
      STRATA_RETURN_IF_ERROR(add(*it, ptr + "/type"));
    }
    return types;
  }

  Result<uint32_t> compile_body(const json& s, const std::string& ptr) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> types, type_list(s, ptr));
    const bool has_enum = s.contains("enum"), has_const = s.contains("const"), has_any = s.contains("anyOf");
    if (has_enum || has_const) {
      if (has_enum && has_const) return unsupported("unsupported: both 'enum' and 'const' at " + at(ptr));
      if (has_any) return unsupported("unsupported: 'anyOf' next to 'enum'/'const' at " + at(ptr));
      for (const char* k : {"properties", "required", "additionalProperties", "items", "minItems", "maxItems",
                            "minLength", "maxLength"}) {
        if (s.contains(k)) {
          return unsupported(std::string("unsupported keyword '") + k + "' next to 'enum'/'const' at " +
                             at(ptr + "/" + k));
        }
      }
      json values;
      if (has_enum) {
        values = s["enum"];
        if (!values.is_array()) return bad(ptr + "/enum", "expected an array for 'enum', got " + type_name(values));
      } else {
        values = json::array({s["const"]});
      }
      std::vector<std::string> lits;
      for (const json& v : values) {
        const bool ok = types.empty() || std::any_of(types.begin(), types.end(),
                                                     [&](const std::string& t) { return matches_type(v, t); });
        if (ok) lits.push_back(compact(v));
      }
      if (lits.empty()) return bad(ptr, "no value of 'enum'/'const' matches 'type', so nothing can satisfy it");
      return literal_node(lits);
    }
    if (has_any) {
      if (s.contains("type")) return unsupported("unsupported: 'type' next to 'anyOf' at " + at(ptr));
      for (const auto& [key, value] : s.items()) {
        if (kTypedKeywords.count(key)) {
          return unsupported("unsupported keyword '" + key + "' next to 'anyOf' at " +
                             at(ptr + "/" + pointer_escape(key)));
        }
      }
      const json& alts = s["anyOf"];
      if (!alts.is_array() || alts.empty()) {
        return bad(ptr + "/anyOf", "expected a non-empty array for 'anyOf', got " + type_name(alts));
      }
      const uint32_t n = new_node(NodeKind::kAnyOf);
      for (size_t i = 0; i < alts.size(); ++i) {
        STRATA_ASSIGN_OR_RETURN(const uint32_t a, compile(alts[i], ptr + "/anyOf/" + std::to_string(i)));
        g_->nodes[n].alts.push_back(a);
      }
      return n;
    }
    if (types.empty()) {
      // No type: object or array keywords say which (a subset of what the
      // schema allows, so outputs still validate); otherwise any value.
      const bool obj = s.contains("properties") || s.contains("required") || s.contains("additionalProperties");
      const bool arr = s.contains("items") || s.contains("minItems") || s.contains("maxItems");
      const bool str = s.contains("minLength") || s.contains("maxLength");
      if (obj + arr + str > 1) return unsupported("unsupported: keywords of several types without 'type' at " + at(ptr));
      if (obj) types = {"object"};
      if (arr) types = {"array"};
      if (str) types = {"string"};
      if (types.empty()) return any_value();
    }
    std::vector<uint32_t> variants;
    for (const std::string& t : types) {
      STRATA_ASSIGN_OR_RETURN(const uint32_t v, compile_typed(s, ptr, t));
      variants.push_back(v);
    }
    if (variants.size() == 1) return variants[0];
    const uint32_t n = new_node(NodeKind::kAnyOf);
    g_->nodes[n].alts = variants;
    return n;
  }

  Result<uint32_t> compile_typed(const json& s, const std::string& ptr, const std::string& type) {
    if (type == "null") return literal_node({"null"});
    if (type == "boolean") return literal_node({"true", "false"});
    if (type == "number") return new_node(NodeKind::kNumber);
    if (type == "integer") return new_node(NodeKind::kInteger);
    if (type == "string") {
      STRATA_ASSIGN_OR_RETURN(const uint32_t lo, get_count(s, "minLength", ptr, 0));
      STRATA_ASSIGN_OR_RETURN(const uint32_t hi, get_count(s, "maxLength", ptr, kUnbounded));
      if (lo > hi) return bad(ptr, "minLength " + std::to_string(lo) + " is above maxLength " + std::to_string(hi));
      const uint32_t n = new_node(NodeKind::kString);
      g_->nodes[n].min = lo;
      g_->nodes[n].max = hi;
      return n;
    }
    if (type == "array") {
      STRATA_ASSIGN_OR_RETURN(const uint32_t lo, get_count(s, "minItems", ptr, 0));
      STRATA_ASSIGN_OR_RETURN(const uint32_t hi, get_count(s, "maxItems", ptr, kUnbounded));
      if (lo > hi) return bad(ptr, "minItems " + std::to_string(lo) + " is above maxItems " + std::to_string(hi));
      uint32_t items = kNoNode;
      uint32_t max = hi;
      if (auto it = s.find("items"); it != s.end()) {
        if (it->is_array()) return unsupported("unsupported: 'items' as an array (tuple form) at " + at(ptr + "/items"));
        if (it->is_boolean() && !it->get<bool>()) {
          if (lo > 0) return bad(ptr, "minItems " + std::to_string(lo) + " with items false can never be satisfied");
          max = 0;
        } else {
          STRATA_ASSIGN_OR_RETURN(items, compile(*it, ptr + "/items"));
        }
      }
      if (items == kNoNode) items = any_value();
      const uint32_t n = new_node(NodeKind::kArray);
      g_->nodes[n].items = items;
      g_->nodes[n].min = lo;
      g_->nodes[n].max = max;
      return n;
    }
    // object
    const uint32_t n = new_node(NodeKind::kObject);
    std::vector<Property> props;
    if (auto it = s.find("properties"); it != s.end()) {
      if (!it->is_object()) return bad(ptr + "/properties", "expected an object for 'properties', got " + type_name(*it));
      for (const auto& [key, sub] : it->items()) {
        if (props.size() >= kMaxProperties) {
          return unsupported("unsupported: more than " + std::to_string(kMaxProperties) + " properties at " +
                             at(ptr + "/properties"));
        }
        STRATA_ASSIGN_OR_RETURN(const uint32_t v, compile(sub, ptr + "/properties/" + pointer_escape(key)));
        props.push_back({key, v});
      }
    }
    uint32_t additional = kNoNode;
    bool additional_allowed = true;
    if (auto it = s.find("additionalProperties"); it != s.end()) {
      if (it->is_boolean()) {
        additional_allowed = it->get<bool>();
      } else {
        STRATA_ASSIGN_OR_RETURN(additional, compile(*it, ptr + "/additionalProperties"));
      }
    }
    if (additional_allowed && additional == kNoNode) additional = any_value();
    uint64_t required = 0;
    if (auto it = s.find("required"); it != s.end()) {
      if (!it->is_array()) return bad(ptr + "/required", "expected an array for 'required', got " + type_name(*it));
      for (size_t i = 0; i < it->size(); ++i) {
        const json& r = (*it)[i];
        const std::string rp = ptr + "/required/" + std::to_string(i);
        if (!r.is_string()) return bad(rp, "expected a property name, got " + type_name(r));
        auto p = std::find_if(props.begin(), props.end(), [&](const Property& x) { return x.key == r.get<std::string>(); });
        if (p == props.end()) {
          // A required key without a schema of its own takes additionalProperties'.
          if (additional == kNoNode) {
            return bad(rp, "required property '" + r.get<std::string>() +
                               "' is not in 'properties' and additionalProperties is false");
          }
          if (props.size() >= kMaxProperties) {
            return unsupported("unsupported: more than " + std::to_string(kMaxProperties) + " properties at " + at(ptr));
          }
          props.push_back({r.get<std::string>(), additional});
          p = props.end() - 1;
        }
        required |= uint64_t{1} << (p - props.begin());
      }
    }
    // Keys are matched as written between the quotes: the JSON-escaped name.
    for (Property& p : props) {
      const std::string quoted = compact(json(p.key));
      p.key = quoted.substr(1, quoted.size() - 2);
    }
    Node& node = g_->nodes[n];
    node.props = std::move(props);
    node.required = required;
    node.additional = additional;
    return n;
  }

  // anyOf edges consume no input; a cycle of them would let the matcher
  // expand forever.
  Status check_cycles() {
    std::vector<uint8_t> color(g_->nodes.size(), 0);
    std::vector<std::pair<uint32_t, size_t>> stack;
    for (uint32_t start = 0; start < g_->nodes.size(); ++start) {
      if (color[start]) continue;
      stack.push_back({start, 0});
      color[start] = 1;
      while (!stack.empty()) {
        auto& [n, i] = stack.back();
        const Node& node = g_->nodes[n];
        if (node.kind == NodeKind::kAnyOf && i < node.alts.size()) {
          const uint32_t next = node.alts[i++];
          if (color[next] == 1) return invalid_argument("JSON Schema: circular $ref that never reaches a value at " + where_);
          if (color[next] == 0) {
            color[next] = 1;
            stack.push_back({next, 0});
          }
          continue;
        }
        color[n] = 2;
        stack.pop_back();
      }
    }
    return Status::ok();
  }

  const json& root_;
  std::string where_;
  std::shared_ptr<JsonGrammar> g_;
  std::map<std::string, uint32_t> memo_;  // JSON pointer -> node
  uint32_t any_ = kNoNode;
  int ref_depth_ = 0;
};

}  // namespace

namespace {

Result<JsonConstraint> compile_schema(const nlohmann::json& schema, const JsonConstraintOptions& options,
                                      const std::string& where, std::string description) {
  Compiler c(schema, options, where);
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<JsonGrammar> g, c.run());
  g->description = std::move(description);
  return JsonConstraint(std::move(g));
}

}  // namespace

Result<JsonConstraint> compile_json_schema(const nlohmann::json& schema, const JsonConstraintOptions& options,
                                           const std::string& where) {
  return compile_schema(schema, options, where, "json_schema");
}

JsonConstraint json_object_constraint(const JsonConstraintOptions& options) {
  static const json kEmpty = json::object();
  Compiler c(kEmpty, options, "");
  const uint32_t root = c.any_object();
  std::shared_ptr<JsonGrammar> g = c.grammar();
  g->root = root;
  g->description = "json_object";
  return JsonConstraint(std::move(g));
}

Result<std::optional<JsonConstraint>> compile_response_format(const nlohmann::json& rf,
                                                              const JsonConstraintOptions& options) {
  if (rf.is_null()) return std::optional<JsonConstraint>();
  if (!rf.is_object()) return invalid_argument("response_format: expected an object, got " + type_name(rf));
  auto type = rf.find("type");
  if (type == rf.end() || !type->is_string()) {
    return invalid_argument("response_format.type: expected one of \"text\", \"json_object\", \"json_schema\"");
  }
  const std::string t = type->get<std::string>();
  if (t == "text") return std::optional<JsonConstraint>();
  if (t == "json_object") return std::optional<JsonConstraint>(json_object_constraint(options));
  if (t != "json_schema") {
    return invalid_argument("response_format.type: expected one of \"text\", \"json_object\", \"json_schema\", got \"" +
                            t + "\"");
  }
  auto js = rf.find("json_schema");
  if (js == rf.end() || !js->is_object()) {
    return invalid_argument("response_format.json_schema: expected an object with 'name' and 'schema'");
  }
  std::string name;
  if (auto n = js->find("name"); n != js->end()) {
    if (!n->is_string()) return invalid_argument("response_format.json_schema.name: expected a string");
    name = n->get<std::string>();
  }
  if (auto st = js->find("strict"); st != js->end() && !st->is_boolean() && !st->is_null()) {
    return invalid_argument("response_format.json_schema.strict: expected a boolean");
  }
  auto schema = js->find("schema");
  static const nlohmann::json kAny = true;
  STRATA_ASSIGN_OR_RETURN(JsonConstraint c, compile_schema(schema == js->end() ? kAny : *schema, options,
                                                           "response_format.json_schema.schema",
                                                           "json_schema '" + name + "'"));
  return std::optional<JsonConstraint>(std::move(c));
}

void apply_token_mask(std::span<float> logits, const std::vector<uint8_t>& mask) {
  const size_t n = std::min(logits.size(), mask.size());
  for (size_t i = 0; i < n; ++i) {
    if (!mask[i]) logits[i] = -std::numeric_limits<float>::infinity();
  }
  for (size_t i = n; i < logits.size(); ++i) logits[i] = -std::numeric_limits<float>::infinity();
}

}  // namespace strata::serve
