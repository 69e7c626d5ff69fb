// Python's object semantics for template values: construction, str()/repr(),
// json.dumps, equality, ordering and dict-key identity, plus UTF-8 helpers.
#include "runtime/chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace strata::chat::jinja {

// ---------------------------------------------------------------- Dict

const Value* Dict::find(const Value& key) const {
  auto id = key_id(key);
  if (!id.is_ok()) return nullptr;
  auto it = index.find(*id);
  return it == index.end() ? nullptr : &entries[it->second].second;
}

const Value* Dict::find(std::string_view key) const {
  std::string id;
  id.reserve(key.size() + 1);
  id += 's';
  id += key;
  auto it = index.find(id);
  return it == index.end() ? nullptr : &entries[it->second].second;
}

void Dict::set(Value key, Value value) {
  auto id = key_id(key);
  if (!id.is_ok()) return;  // callers check hashability first
  depth = std::max({depth, 1 + key.depth(), 1 + value.depth()});
  auto [it, inserted] = index.emplace(std::move(*id), entries.size());
  if (inserted) {
    entries.emplace_back(std::move(key), std::move(value));
  } else {
    entries[it->second].second = std::move(value);
  }
}

// ---------------------------------------------------------------- Value

Value Value::undefined(std::string hint) {
  Value v;
  if (!hint.empty()) v.p_ = std::make_shared<std::string>(std::move(hint));
  return v;
}
Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.p_ = std::make_shared<std::string>(std::move(s));
  return v;
}
Value Value::list(std::vector<Value> items, bool is_tuple) {
  Value v;
  v.kind_ = Kind::kList;
  auto l = std::make_shared<List>();
  uint32_t depth = 0;
  for (const auto& item : items) depth = std::max(depth, item.depth());
  l->depth = depth + 1;
  l->items = std::move(items);
  l->is_tuple = is_tuple;
  v.p_ = std::move(l);
  return v;
}
Value Value::dict(std::shared_ptr<Dict> d) {
  Value v;
  v.kind_ = Kind::kDict;
  v.p_ = std::move(d);
  return v;
}
Value Value::ns(std::shared_ptr<Dict> attrs) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.p_ = std::move(attrs);
  return v;
}
Value Value::callable(std::string name, NativeFn fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.p_ = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}
Value Value::loop(std::shared_ptr<LoopState> state) {
  Value v;
  v.kind_ = Kind::kLoop;
  v.p_ = std::move(state);
  return v;
}
Value Value::iter(std::vector<Value> items, IterFlavor flavor) {
  Value v = list(std::move(items));
  v.kind_ = Kind::kIter;
  v.list_ptr()->flavor = flavor;
  return v;
}

double Value::as_double() const {
  switch (kind_) {
    case Kind::kFloat: return f_;
    case Kind::kInt: return static_cast<double>(i_);
    case Kind::kBool: return b_ ? 1.0 : 0.0;
    default: return 0.0;
  }
}

uint32_t Value::depth() const {
  switch (kind_) {
    case Kind::kList: return list_ptr()->depth;
    case Kind::kDict: return dict_ptr()->depth;
    case Kind::kNamespace: return 1;
    default: return 0;
  }
}

const std::string& Value::undefined_hint() const {
  static const std::string kEmpty;
  return kind_ == Kind::kUndefined && p_ ? *static_cast<const std::string*>(p_.get()) : kEmpty;
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return b_;
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return f_ != 0.0;
    case Kind::kString: return !str().empty();
    case Kind::kList: return !items().empty();
    case Kind::kDict: return !dict_ptr()->entries.empty();
    case Kind::kIter: return is_one_shot() || !items().empty();
    default: return true;
  }
}

const char* Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return list_ptr()->is_tuple ? "tuple" : "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kCallable: return "function";
    case Kind::kLoop: return "LoopContext";
    case Kind::kIter:
      switch (list_ptr()->flavor) {
        case IterFlavor::kGenerator: return "generator";
        case IterFlavor::kReverseIterator: return "list_reverseiterator";
        case IterFlavor::kDictKeys: return "dict_keys";
        case IterFlavor::kDictValues: return "dict_values";
        case IterFlavor::kDictItems: return "dict_items";
        case IterFlavor::kRange: return "range";
      }
      break;
  }
  return "object";
}

// ---------------------------------------------------------------- UTF-8

bool utf8_valid(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len = 0;
    char32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::u32string utf8_decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

void append_py_hex_escape(std::string& out, char32_t c) {
  char b[16];
  if (c <= 0xFF) {
    std::snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned>(c));
  } else if (c <= 0xFFFF) {
    std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
  } else {
    std::snprintf(b, sizeof b, "\\U%08x", static_cast<unsigned>(c));
  }
  out += b;
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// ---------------------------------------------------------------- str / repr

std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == 0.0) return std::signbit(f) ? "-0.0" : "0.0";
  // Shortest round-trip digits in scientific form "d.ddde+XX", then laid out
  // as Python does: positional when -4 < decimal point position <= 16.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (sci[i] != '.') digits += sci[i];
  }
  const int exp10 = std::stoi(sci.substr(e + 1));
  const int decpt = exp10 + 1;
  const int nd = static_cast<int>(digits.size());
  std::string out = sign;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (decpt >= nd) {
      out += digits;
      out.append(static_cast<size_t>(decpt - nd), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt));
      out += '.';
      out += digits.substr(static_cast<size_t>(decpt));
    }
  } else {
    out += digits[0];
    if (nd > 1) {
      out += '.';
      out += digits.substr(1);
    }
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    out += eb;
  }
  return out;
}

namespace {

// Python's str.isprintable() approximated without Unicode tables: control
// characters, the Latin-1 non-printables, separators, format characters and
// private use are escaped; everything else is kept.
bool py_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB)) {
    return false;
  }
  if ((c >= 0x0600 && c <= 0x0605) || c == 0x061C || c == 0x06DD || c == 0x070F || c == 0x180E) return false;
  if ((c >= 0xD800 && c <= 0xF8FF) || c >= 0xF0000 || (c >= 0xE0000 && c <= 0xE007F)) return false;
  return true;
}

void repr_string(std::string& out, const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out += quote;
  const std::u32string cps = utf8_decode(s);
  for (char32_t c : cps) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (!py_printable(c)) {
      append_py_hex_escape(out, c);
    } else {
      utf8_append(out, c);
    }
  }
  out += quote;
}

Status too_large(const SizeBudget& b) {
  return invalid_argument("expected a value of at most " + std::to_string(b.max_bytes) +
                          " bytes, got a larger one (template output limit)");
}
Status too_deep(const SizeBudget& b) {
  return invalid_argument("expected values nested at most " + std::to_string(b.max_depth) +
                          " deep, got deeper (or a value that contains itself)");
}

Status write_repr(std::string& out, const Value& v, const SizeBudget& budget, size_t depth, bool top_str);

Status write_repr_items(std::string& out, const std::vector<Value>& items, const SizeBudget& budget, size_t depth) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    STRATA_RETURN_IF_ERROR(write_repr(out, items[i], budget, depth + 1, false));
  }
  return Status::ok();
}

Status write_repr_dict(std::string& out, const Dict& d, const SizeBudget& budget, size_t depth) {
  out += '{';
  bool first = true;
  for (const auto& [k, val] : d.entries) {
    if (!first) out += ", ";
    first = false;
    STRATA_RETURN_IF_ERROR(write_repr(out, k, budget, depth + 1, false));
    out += ": ";
    STRATA_RETURN_IF_ERROR(write_repr(out, val, budget, depth + 1, false));
  }
  out += '}';
  return Status::ok();
}

// top_str: the outermost value of str() (strings unquoted, undefined empty).
Status write_repr(std::string& out, const Value& v, const SizeBudget& budget, size_t depth, bool top_str) {
  if (depth > budget.max_depth) return too_deep(budget);
  if (budget.max_bytes && out.size() > budget.max_bytes) return too_large(budget);
  switch (v.kind()) {
    case Kind::kUndefined:
      if (!top_str) out += "Undefined";
      break;
    case Kind::kNone: out += "None"; break;
    case Kind::kBool: out += v.as_bool() ? "True" : "False"; break;
    case Kind::kInt: out += std::to_string(v.as_int()); break;
    case Kind::kFloat: out += float_repr(v.as_double()); break;
    case Kind::kString:
      if (top_str) {
        out += v.str();
      } else {
        repr_string(out, v.str());
      }
      break;
    case Kind::kList:
      if (v.is_tuple()) {
        out += '(';
        STRATA_RETURN_IF_ERROR(write_repr_items(out, v.items(), budget, depth));
        if (v.items().size() == 1) out += ',';
        out += ')';
      } else {
        out += '[';
        STRATA_RETURN_IF_ERROR(write_repr_items(out, v.items(), budget, depth));
        out += ']';
      }
      break;
    case Kind::kDict: STRATA_RETURN_IF_ERROR(write_repr_dict(out, v.dict_ref(), budget, depth)); break;
    case Kind::kNamespace:
      out += "<Namespace ";
      STRATA_RETURN_IF_ERROR(write_repr_dict(out, v.dict_ref(), budget, depth));
      out += '>';
      break;
    case Kind::kCallable: out += "<function " + v.fn().name + ">"; break;
    case Kind::kIter:
      if (v.is_one_shot()) {
        out += std::string("<") + v.type_name() + " object>";
      } else if (v.list_ptr()->flavor == IterFlavor::kRange) {
        const int64_t* r = v.list_ptr()->range_args;
        out += "range(" + std::to_string(r[0]) + ", " + std::to_string(r[1]);
        if (r[2] != 1) out += ", " + std::to_string(r[2]);
        out += ")";
      } else {
        out += std::string(v.type_name()) + "([";
        STRATA_RETURN_IF_ERROR(write_repr_items(out, v.items(), budget, depth));
        out += "])";
      }
      break;
    case Kind::kLoop: {
      const auto& st = *v.loop_state();
      out += "<LoopContext " + std::to_string(st.index0 + 1) + "/" + std::to_string(st.items->items.size()) + ">";
      break;
    }
  }
  if (budget.max_bytes && out.size() > budget.max_bytes) return too_large(budget);
  return Status::ok();
}

// ---------------------------------------------------------------- json.dumps

void json_ascii_char(std::string& out, unsigned char c) {
  switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        char b[8];
        std::snprintf(b, sizeof b, "\\u%04x", c);
        out += b;
      } else {
        out += static_cast<char>(c);
      }
  }
}

// Python's json string encoding: control characters escaped in lowercase
// hex; with ensure_ascii every non-ASCII code point as \uXXXX (surrogate
// pairs past the BMP), otherwise UTF-8 kept as is.
void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  if (!ensure_ascii) {
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (c >= 0x80) {
        out += ch;
      } else {
        json_ascii_char(out, c);
      }
    }
  } else {
    for (char32_t c : utf8_decode(s)) {
      if (c < 0x7F) {  // ensure_ascii escapes DEL too
        json_ascii_char(out, static_cast<unsigned char>(c));
        continue;
      }
      char b[16];
      if (c <= 0xFFFF) {
        std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      } else {
        const char32_t v = c - 0x10000;
        std::snprintf(b, sizeof b, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                      static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
      }
      out += b;
    }
  }
  out += '"';
}

std::string json_float(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return float_repr(f);
}

Status not_serializable(const Value& v) {
  return invalid_argument(std::string("Object of type ") + (v.is_undefined() ? "Undefined" : v.type_name()) +
                          " is not JSON serializable");
}

Result<std::string> json_key(const Value& k) {
  switch (k.kind()) {
    case Kind::kString: return k.str();
    case Kind::kBool: return std::string(k.as_bool() ? "true" : "false");
    case Kind::kNone: return std::string("null");
    case Kind::kInt: return std::to_string(k.as_int());
    case Kind::kFloat: return json_float(k.as_double());
    default:
      return invalid_argument(std::string("keys must be str, int, float, bool or None, not ") + k.type_name());
  }
}

Status write_json(std::string& out, const Value& v, const JsonDumpOptions& o, const SizeBudget& budget,
                  size_t depth) {
  if (depth > budget.max_depth) return too_deep(budget);
  if (budget.max_bytes && out.size() > budget.max_bytes) return too_large(budget);
  auto newline = [&](size_t level) {
    out += '\n';
    for (size_t i = 0; i < level; ++i) out += o.indent;
  };
  switch (v.kind()) {
    case Kind::kNone: out += "null"; break;
    case Kind::kBool: out += v.as_bool() ? "true" : "false"; break;
    case Kind::kInt: out += std::to_string(v.as_int()); break;
    case Kind::kFloat: out += json_float(v.as_double()); break;
    case Kind::kString: json_string(out, v.str(), o.ensure_ascii); break;
    case Kind::kList: {
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        break;
      }
      out += '[';
      if (o.has_indent) newline(depth + 1);
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) {
          out += o.item_sep;
          if (o.has_indent) newline(depth + 1);
        }
        STRATA_RETURN_IF_ERROR(write_json(out, items[i], o, budget, depth + 1));
      }
      if (o.has_indent) newline(depth);
      out += ']';
      break;
    }
    case Kind::kDict: {
      const auto& d = v.dict_ref();
      if (d.entries.empty()) {
        out += "{}";
        break;
      }
      std::vector<const std::pair<Value, Value>*> order;
      order.reserve(d.entries.size());
      for (const auto& e : d.entries) order.push_back(&e);
      if (o.sort_keys) {
        Status st;
        std::stable_sort(order.begin(), order.end(), [&](auto* a, auto* b) {
          auto lt = py_less(a->first, b->first);
          if (!lt.is_ok()) {
            if (st.is_ok()) st = lt.status();
            return false;
          }
          return *lt;
        });
        STRATA_RETURN_IF_ERROR(st);
      }
      out += '{';
      if (o.has_indent) newline(depth + 1);
      bool first = true;
      for (const auto* e : order) {
        if (!first) {
          out += o.item_sep;
          if (o.has_indent) newline(depth + 1);
        }
        first = false;
        STRATA_ASSIGN_OR_RETURN(std::string key, json_key(e->first));
        json_string(out, key, o.ensure_ascii);
        out += o.key_sep;
        STRATA_RETURN_IF_ERROR(write_json(out, e->second, o, budget, depth + 1));
      }
      if (o.has_indent) newline(depth);
      out += '}';
      break;
    }
    default: return not_serializable(v);
  }
  if (budget.max_bytes && out.size() > budget.max_bytes) return too_large(budget);
  return Status::ok();
}

}  // namespace

Result<std::string> to_str(const Value& v, const SizeBudget& budget) {
  if (v.is_string()) return v.str();
  std::string out;
  STRATA_RETURN_IF_ERROR(write_repr(out, v, budget, 0, true));
  return out;
}

Result<std::string> to_repr(const Value& v, const SizeBudget& budget) {
  std::string out;
  STRATA_RETURN_IF_ERROR(write_repr(out, v, budget, 0, false));
  return out;
}

Result<std::string> to_json(const Value& v, const JsonDumpOptions& opts, const SizeBudget& budget) {
  std::string out;
  STRATA_RETURN_IF_ERROR(write_json(out, v, opts, budget, 0));
  return out;
}

// ---------------------------------------------------------------- comparison

bool py_equal(const Value& a, const Value& b, int depth) {
  if (depth > 512) return false;
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString: return a.identity() == b.identity() || a.str() == b.str();
    case Kind::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      if (a.identity() == b.identity()) return true;
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!py_equal(x[i], y[i], depth + 1)) return false;
      }
      return true;
    }
    case Kind::kDict: {
      const auto& x = a.dict_ref();
      const auto& y = b.dict_ref();
      if (&x == &y) return true;
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, val] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !py_equal(val, *other, depth + 1)) return false;
      }
      return true;
    }
    case Kind::kNamespace:
    case Kind::kCallable:
    case Kind::kLoop: return a.identity() == b.identity();
    case Kind::kIter: {
      if (a.identity() == b.identity()) return true;
      const IterFlavor f = a.list_ptr()->flavor;
      if (f == IterFlavor::kRange && b.list_ptr()->flavor == IterFlavor::kRange) {
        // Ranges are equal when they produce the same items.
        if (a.items().size() != b.items().size()) return false;
        for (size_t i = 0; i < a.items().size(); ++i) {
          if (a.items()[i].as_int() != b.items()[i].as_int()) return false;
        }
        return true;
      }
      if (a.is_one_shot() || f == IterFlavor::kDictValues || f == IterFlavor::kRange || f != b.list_ptr()->flavor) {
        return false;
      }
      // Key and item views compare as sets.
      if (a.items().size() != b.items().size()) return false;
      for (const auto& x : a.items()) {
        bool found = false;
        for (const auto& y : b.items()) {
          if (py_equal(x, y, depth + 1)) {
            found = true;
            break;
          }
        }
        if (!found) return false;
      }
      return true;
    }
    default: return false;
  }
}

Result<bool> py_less(const Value& a, const Value& b, int depth) {
  if (depth > 512) return invalid_argument("expected comparable values, got values nested too deep");
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) return a.as_int() < b.as_int();
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 byte order is code point order
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (py_equal(x[i], y[i], depth + 1)) continue;
      return py_less(x[i], y[i], depth + 1);
    }
    return x.size() < y.size();
  }
  return invalid_argument(std::string("'<' not supported between instances of '") + a.type_name() + "' and '" +
                          b.type_name() + "'");
}

Result<std::string> key_id(const Value& key) {
  switch (key.kind()) {
    case Kind::kUndefined: return std::string("u");
    case Kind::kNone: return std::string("n");
    case Kind::kBool:
    case Kind::kInt: return "i" + std::to_string(key.as_int());
    case Kind::kFloat: {
      const double f = key.as_double();
      if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 9.2e18) {
        return "i" + std::to_string(static_cast<int64_t>(f));
      }
      return "f" + float_repr(f);
    }
    case Kind::kString: return "s" + key.str();
    case Kind::kList: {
      if (!key.is_tuple()) break;
      std::string id = "t(";
      for (const auto& item : key.items()) {
        STRATA_ASSIGN_OR_RETURN(std::string part, key_id(item));
        id += std::to_string(part.size()) + ":" + part;
      }
      return id + ")";
    }
    case Kind::kCallable: {
      char b[32];
      std::snprintf(b, sizeof b, "c%p", static_cast<const void*>(&key.fn()));
      return std::string(b);
    }
    default: break;
  }
  return invalid_argument(std::string("unhashable type: '") + key.type_name() + "'");
}

Result<Value> from_json(const nlohmann::ordered_json& j, int max_depth) {
  if (max_depth <= 0) return invalid_argument("expected JSON nested at most 128 deep, got deeper");
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value::number(j.get<double>());
    case nlohmann::json::value_t::string: return Value::string(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) {
        STRATA_ASSIGN_OR_RETURN(Value v, from_json(e, max_depth - 1));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (const auto& [k, e] : j.items()) {
        STRATA_ASSIGN_OR_RETURN(Value v, from_json(e, max_depth - 1));
        d->set(Value::string(k), std::move(v));
      }
      return Value::dict(std::move(d));
    }
    default: return invalid_argument("expected JSON text, got binary data");
  }
}

}  // namespace strata::chat::jinja
