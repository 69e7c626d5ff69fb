// The built-in filters and tests, with jinja2's argument names and defaults
// (so `tojson(indent=2)` and `default('x', true)` bind as in Python). tojson
// is the Hugging Face variant: json.dumps with ensure_ascii=False.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_set>

#include "runtime/chat/jinja_interp.h"
#include "runtime/chat/jinja_strings.h"

namespace strata::chat::jinja {
namespace {

using FilterFn = Result<Value> (*)(Interpreter&, const Value&, CallArgs&);
using TestFn = Result<bool> (*)(Interpreter&, const Value&, CallArgs&);

const std::optional<Value> kNone = Value::none();
const std::optional<Value> kFalse = Value::boolean(false);
const std::optional<Value> kRequired = std::nullopt;

Status missing(const char* fname) { return invalid_argument(std::string(fname) + "() is missing a required argument"); }

Result<int64_t> int_arg(const char* fname, const Value& v) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_float()) return static_cast<int64_t>(v.as_double());
  return invalid_argument(std::string(fname) + "() expected an integer argument, got " + v.type_name());
}

Result<size_t> py_len(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined: return size_t{0};
    case Kind::kString: return utf8_length(v.str());
    case Kind::kList: return v.items().size();
    case Kind::kDict: return v.dict_ref().entries.size();
    case Kind::kLoop: return v.loop_state()->items->items.size();
    case Kind::kIter:
      if (!v.is_one_shot()) return v.items().size();
      break;
    default: break;
  }
  return invalid_argument(std::string("object of type '") + v.type_name() + "' has no len()");
}

// jinja's attribute getter: "a.b.0" looks up each part with getitem.
Result<Value> lookup_path(Interpreter& in, const Value& item, const std::string& path) {
  Value cur = item;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    STRATA_ASSIGN_OR_RETURN(cur, in.getitem(cur, numeric ? Value::integer(std::stoll(part)) : Value::string(part)));
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

// Sort/unique key: the attribute, lower-cased when strings compare case-insensitively.
Result<Value> sort_key(Interpreter& in, const Value& item, const std::optional<Value>& attribute, bool case_sensitive) {
  Value key = item;
  if (attribute && !attribute->is_none()) {
    STRATA_ASSIGN_OR_RETURN(std::string path, in.str(*attribute));
    STRATA_ASSIGN_OR_RETURN(key, lookup_path(in, item, path));
  }
  if (!case_sensitive && key.is_string()) return Value::string(py_lower(key.str()));
  return key;
}

Result<Value> f_length(Interpreter&, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("length", args, {}).status());
  STRATA_ASSIGN_OR_RETURN(size_t n, py_len(v));
  return Value::integer(static_cast<int64_t>(n));
}

Result<Value> f_tojson(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("tojson", args, {{"ensure_ascii", kFalse}, {"indent", kNone},
                                                           {"separators", kNone}, {"sort_keys", kFalse}}));
  JsonDumpOptions o;
  o.ensure_ascii = a[0]->truthy();
  if (!a[1]->is_none()) {
    o.has_indent = true;
    if (a[1]->is_string()) {
      o.indent = a[1]->str();
    } else if (a[1]->is_int() || a[1]->is_bool()) {
      const int64_t n = a[1]->as_int();
      STRATA_RETURN_IF_ERROR(in.check_string_size(static_cast<uint64_t>(std::max<int64_t>(0, n))));
      o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, n)), ' ');
    } else {
      return invalid_argument(std::string("tojson indent must be an int or a string, not ") + a[1]->type_name());
    }
    o.item_sep = ",";
  }
  if (!a[2]->is_none()) {
    STRATA_ASSIGN_OR_RETURN(auto seps, in.iterate(*a[2]));
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string()) {
      return invalid_argument("tojson separators must be two strings");
    }
    o.item_sep = seps[0].str();
    o.key_sep = seps[1].str();
  }
  o.sort_keys = a[3]->truthy();
  STRATA_ASSIGN_OR_RETURN(std::string s, to_json(v, o, in.budget()));
  return in.new_string(std::move(s));
}

Result<Value> f_trim(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("trim", args, {{"chars", kNone}}));
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  std::optional<std::string> chars;
  if (!a[0]->is_none()) {
    STRATA_ASSIGN_OR_RETURN(std::string c, in.str(*a[0]));
    chars = c;
  }
  return in.new_string(py_strip(s, chars, true, true));
}

template <std::string (*Fn)(std::string_view)>
Result<Value> f_case(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("filter", args, {}).status());
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  return in.new_string(Fn(s));
}

// jinja's title filter: capitalizes after spaces, dashes and opening brackets.
std::string jinja_title(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (char32_t c : utf8_decode(s)) {
    const bool boundary = py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (boundary) {
      utf8_append(out, c);
      word_start = true;
      continue;
    }
    const std::string one = utf8_encode(std::u32string(1, c));
    out += word_start ? py_upper(one) : py_lower(one);
    word_start = false;
  }
  return out;
}

Result<Value> f_replace(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("replace", args, {{"old", kRequired}, {"new", kRequired}, {"count", kNone}}));
  if (!a[0] || !a[1]) return missing("replace");
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  STRATA_ASSIGN_OR_RETURN(std::string o, in.str(*a[0]));
  STRATA_ASSIGN_OR_RETURN(std::string n, in.str(*a[1]));
  int64_t count = -1;
  if (!a[2]->is_none()) {
    STRATA_ASSIGN_OR_RETURN(count, int_arg("replace", *a[2]));
  }
  const uint64_t worst = s.size() + (o.empty() ? utf8_length(s) + 1 : s.size() / o.size()) * n.size();
  STRATA_RETURN_IF_ERROR(in.check_string_size(std::max<uint64_t>(worst, s.size())));
  return in.new_string(py_replace(s, o, n, static_cast<long>(count)));
}

Result<Value> f_join(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("join", args, {{"d", Value::string("")}, {"attribute", kNone}}));
  STRATA_ASSIGN_OR_RETURN(std::string sep, in.str(*a[0]));
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (!a[1]->is_none()) {
      STRATA_ASSIGN_OR_RETURN(std::string path, in.str(*a[1]));
      STRATA_ASSIGN_OR_RETURN(item, lookup_path(in, item, path));
    }
    STRATA_ASSIGN_OR_RETURN(std::string s, in.str(item));
    if (i) out += sep;
    out += s;
    STRATA_RETURN_IF_ERROR(in.check_string_size(out.size()));
  }
  return in.new_string(std::move(out));
}

Result<Value> f_default(Interpreter&, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("default", args, {{"default_value", Value::string("")}, {"boolean", kFalse}}));
  if (v.is_undefined() || (a[1]->truthy() && !v.truthy())) return *a[0];
  return v;
}

Result<Value> f_first(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("first", args, {}).status());
  if (v.is_one_shot()) {  // next(iter(generator)) takes one item
    List& l = *v.list_ptr();
    if (l.cursor >= l.items.size()) return Value::undefined("No first item, sequence was empty.");
    return l.items[l.cursor++];
  }
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Result<Value> f_last(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("last", args, {}).status());
  if (v.is_one_shot()) return invalid_argument(std::string("'") + v.type_name() + "' object is not reversible");
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Result<Value> f_list(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("list", args, {}).status());
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  return in.new_list(std::move(items));
}

Result<Value> f_items(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("items", args, {}).status());
  if (v.is_undefined()) return in.new_iter({});
  if (!v.is_dict()) return invalid_argument("Can only get item pairs from a mapping.");
  std::vector<Value> items;
  for (const auto& [k, val] : v.dict_ref().entries) items.push_back(Value::list({k, val}, true));
  return in.new_iter(std::move(items));
}

Result<Value> f_string(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("string", args, {}).status());
  if (v.is_string()) return v;
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  return in.new_string(std::move(s));
}

// Python int() of a string: optional sign, digits with single underscores,
// surrounding whitespace; base prefixes when base is 0 or matches.
std::optional<int64_t> parse_int(std::string s, int base) {
  s = py_strip(s, std::nullopt, true, true);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i + 1 < s.size() && s[i] == '0') {
    const char p = static_cast<char>(s[i + 1] | 0x20);
    const int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (pb && (base == 0 || base == pb)) {
      base = pb;
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    }
  }
  if (base == 0) base = 10;
  if (i >= s.size()) return std::nullopt;
  int64_t v = 0;
  bool prev_digit = false;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && prev_digit && i + 1 < s.size() && s[i + 1] != '_') {
      prev_digit = false;
      continue;
    }
    const char c = static_cast<char>(s[i] | 0x20);
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v)) return std::nullopt;
    prev_digit = true;
  }
  if (!prev_digit) return std::nullopt;
  return neg ? -v : v;
}

// Python float() of a string.
std::optional<double> parse_float(const std::string& raw) {
  std::string s = py_strip(raw, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
        return std::nullopt;
      }
      continue;
    }
    clean += s[i];
  }
  const std::string lower = py_lower(clean);
  const std::string body = (!lower.empty() && (lower[0] == '+' || lower[0] == '-')) ? lower.substr(1) : lower;
  if (body == "inf" || body == "infinity" || body == "nan") {
    const double x = body == "nan" ? NAN : INFINITY;
    return lower[0] == '-' ? -x : x;
  }
  if (clean.empty() || clean.find_first_of("xXpP") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return d;
}

Result<Value> f_int(Interpreter&, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("int", args, {{"default", Value::integer(0)}, {"base", Value::integer(10)}}));
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) {
    const double f = v.as_double();
    if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) return *a[0];
    return Value::integer(static_cast<int64_t>(f));
  }
  if (v.is_string()) {
    STRATA_ASSIGN_OR_RETURN(int64_t base, int_arg("int", *a[1]));
    if (auto i = parse_int(v.str(), static_cast<int>(base))) return Value::integer(*i);
    if (auto f = parse_float(v.str()); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18) {
      return Value::integer(static_cast<int64_t>(*f));
    }
    return *a[0];
  }
  if (v.is_undefined()) return undefined_status(v);
  return *a[0];
}

Result<Value> f_float(Interpreter&, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("float", args, {{"default", Value::number(0.0)}}));
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    if (auto f = parse_float(v.str())) return Value::number(*f);
    return *a[0];
  }
  if (v.is_undefined()) return undefined_status(v);
  return *a[0];
}

Result<Value> f_abs(Interpreter&, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("abs", args, {}).status());
  if (v.is_float()) return Value::number(std::fabs(v.as_double()));
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == INT64_MIN) return invalid_argument("integer overflow");
    return Value::integer(std::llabs(v.as_int()));
  }
  return invalid_argument(std::string("bad operand type for abs(): '") + v.type_name() + "'");
}

Result<Value> f_round(Interpreter&, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("round", args, {{"precision", Value::integer(0)}, {"method", Value::string("common")}}));
  STRATA_ASSIGN_OR_RETURN(int64_t precision, int_arg("round", *a[0]));
  if (!a[1]->is_string()) return invalid_argument("method must be common, ceil or floor");
  const std::string method = a[1]->str();
  if (method != "common" && method != "ceil" && method != "floor") {
    return invalid_argument("method must be common, ceil or floor");
  }
  if (!v.is_number()) return invalid_argument(std::string("type ") + v.type_name() + " doesn't define __round__ method");
  if (method == "common" && !v.is_float()) {
    if (precision >= 0) return Value::integer(v.as_int());
  }
  const double x = v.as_double();
  if (method != "common") {
    const double scale = std::pow(10.0, static_cast<double>(precision));
    return Value::number((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
  }
  if (!std::isfinite(x)) return Value::number(x);
  if (precision >= 0 && precision <= 300) {
    // printf rounds the exact binary value half-to-even, as Python's round().
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
    return Value::number(std::strtod(buf, nullptr));
  }
  const double scale = std::pow(10.0, static_cast<double>(-precision));
  return Value::number(std::nearbyint(x / scale) * scale);
}

Result<Value> f_map(Interpreter& in, const Value& v, CallArgs& args) {
  if (!v.truthy()) return in.new_iter({});  // jinja yields nothing for a falsy value
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  std::vector<Value> out;
  out.reserve(items.size());
  const Value* attribute = nullptr;
  const Value* dflt = nullptr;
  for (const auto& [k, val] : args.kwargs) {
    if (k == "attribute") attribute = &val;
    if (k == "default") dflt = &val;
  }
  if (args.args.empty() && attribute) {
    STRATA_ASSIGN_OR_RETURN(std::string path, in.str(*attribute));
    for (const auto& item : items) {
      STRATA_ASSIGN_OR_RETURN(Value x, lookup_path(in, item, path));
      out.push_back(x.is_undefined() && dflt ? *dflt : x);
    }
    return in.new_iter(std::move(out));
  }
  if (args.args.empty()) return invalid_argument("map() requires a filter name or attribute=");
  STRATA_ASSIGN_OR_RETURN(std::string filter, in.str(args.args[0]));
  for (const auto& item : items) {
    CallArgs fargs;
    fargs.args.assign(args.args.begin() + 1, args.args.end());
    fargs.kwargs = args.kwargs;
    STRATA_ASSIGN_OR_RETURN(Value x, in.apply_filter(filter, item, fargs));
    out.push_back(std::move(x));
  }
  return in.new_iter(std::move(out));
}

// select/reject/selectattr/rejectattr.
Result<Value> select_impl(Interpreter& in, const Value& v, CallArgs& args, bool keep, bool by_attr) {
  if (!v.truthy()) return in.new_iter({});  // jinja yields nothing for a falsy value
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  size_t next = 0;
  std::string path;
  if (by_attr) {
    if (args.args.empty()) return invalid_argument("Missing parameter for attribute name");
    STRATA_ASSIGN_OR_RETURN(path, in.str(args.args[next++]));
  }
  std::optional<std::string> test;
  if (next < args.args.size()) {
    STRATA_ASSIGN_OR_RETURN(std::string t, in.str(args.args[next++]));
    test = t;
  }
  std::vector<Value> out;
  for (const auto& item : items) {
    STRATA_RETURN_IF_ERROR(in.count_iterations(1));
    Value subject = item;
    if (by_attr) {
      STRATA_ASSIGN_OR_RETURN(subject, lookup_path(in, item, path));
    }
    bool r = false;
    if (test) {
      CallArgs targs;
      targs.args.assign(args.args.begin() + static_cast<long>(next), args.args.end());
      targs.kwargs = args.kwargs;
      STRATA_ASSIGN_OR_RETURN(r, in.apply_test(*test, subject, targs));
    } else {
      r = subject.truthy();
    }
    if (r == keep) out.push_back(item);
  }
  return in.new_iter(std::move(out));
}

Result<Value> f_select(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, false); }
Result<Value> f_reject(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, false); }
Result<Value> f_selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, true); }
Result<Value> f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, true); }

// Stable sort of (key, item) pairs by key with Python's ordering, as sort
// and dictsort do; a comparison Python would refuse is an error.
Result<Value> sorted_by_key(Interpreter& in, std::vector<std::pair<Value, Value>> keyed, bool reverse) {
  Status st;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    auto lt = reverse ? py_less(y.first, x.first) : py_less(x.first, y.first);
    if (!lt.is_ok()) {
      if (st.is_ok()) st = lt.status();
      return false;
    }
    return *lt;
  });
  STRATA_RETURN_IF_ERROR(st);
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return in.new_list(std::move(out));
}

Result<Value> f_sort(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("sort", args, {{"reverse", kFalse}, {"case_sensitive", kFalse}, {"attribute", kNone}}));
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& item : items) {
    STRATA_ASSIGN_OR_RETURN(Value k, sort_key(in, item, a[2], a[1]->truthy()));
    keyed.emplace_back(std::move(k), std::move(item));
  }
  return sorted_by_key(in, std::move(keyed), a[0]->truthy());
}

Result<Value> f_unique(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("unique", args, {{"case_sensitive", kFalse}, {"attribute", kNone}}));
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  std::unordered_set<std::string> seen;
  std::vector<Value> out;
  for (auto& item : items) {
    STRATA_ASSIGN_OR_RETURN(Value k, sort_key(in, item, a[1], a[0]->truthy()));
    STRATA_ASSIGN_OR_RETURN(std::string id, key_id(k));
    if (seen.insert(id).second) out.push_back(std::move(item));
  }
  return in.new_iter(std::move(out));
}

Result<Value> f_dictsort(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("dictsort", args, {{"case_sensitive", kFalse}, {"by", Value::string("key")},
                                                             {"reverse", kFalse}}));
  if (!v.is_dict()) return invalid_argument("dictsort expects a mapping");
  const bool by_value = a[1]->is_string() && a[1]->str() == "value";
  if (!by_value && !(a[1]->is_string() && a[1]->str() == "key")) {
    return invalid_argument("You can only sort by either \"key\" or \"value\"");
  }
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& [k, val] : v.dict_ref().entries) {
    Value key = by_value ? val : k;
    if (!a[0]->truthy() && key.is_string()) key = Value::string(py_lower(key.str()));
    keyed.emplace_back(key, Value::list({k, val}, true));
  }
  return sorted_by_key(in, std::move(keyed), a[2]->truthy());
}

Result<Value> min_max(Interpreter& in, const Value& v, CallArgs& args, bool want_max) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args(want_max ? "max" : "min", args, {{"case_sensitive", kFalse}, {"attribute", kNone}}));
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  STRATA_ASSIGN_OR_RETURN(Value best_key, sort_key(in, items[0], a[1], a[0]->truthy()));
  for (size_t i = 1; i < items.size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(Value k, sort_key(in, items[i], a[1], a[0]->truthy()));
    STRATA_ASSIGN_OR_RETURN(bool better, want_max ? py_less(best_key, k) : py_less(k, best_key));
    if (better) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}
Result<Value> f_min(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, false); }
Result<Value> f_max(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true); }

Result<Value> f_sum(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("sum", args, {{"attribute", kNone}, {"start", Value::integer(0)}}));
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  Value total = *a[1];
  for (const auto& item : items) {
    Value x = item;
    if (!a[0]->is_none()) {
      STRATA_ASSIGN_OR_RETURN(std::string path, in.str(*a[0]));
      STRATA_ASSIGN_OR_RETURN(x, lookup_path(in, item, path));
    }
    STRATA_ASSIGN_OR_RETURN(total, in.binary(BinOp::kAdd, total, x));
  }
  return total;
}

Result<Value> f_reverse(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("reverse", args, {}).status());
  if (v.is_string()) {
    std::u32string cps = utf8_decode(v.str());
    std::reverse(cps.begin(), cps.end());
    return in.new_string(utf8_encode(cps));
  }
  // reversed() gives an iterator over sequences and dicts; a generator is
  // not reversible, so jinja falls back to a reversed list.
  const bool reversible = v.is_list() || v.is_dict() || (v.is_iter() && !v.is_one_shot());
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  std::reverse(items.begin(), items.end());
  if (reversible) return in.new_iter(std::move(items), IterFlavor::kReverseIterator);
  return in.new_list(std::move(items));
}

Result<Value> f_batch(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("batch", args, {{"linecount", kRequired}, {"fill_with", kNone}}));
  if (!a[0]) return missing("batch");
  STRATA_ASSIGN_OR_RETURN(int64_t n, int_arg("batch", *a[0]));
  if (n <= 0) return invalid_argument("batch size must be positive");
  STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(v));
  std::vector<Value> out;
  std::vector<Value> cur;
  for (auto& item : items) {
    cur.push_back(std::move(item));
    if (static_cast<int64_t>(cur.size()) == n) {
      STRATA_ASSIGN_OR_RETURN(Value row, in.new_list(std::move(cur)));
      out.push_back(std::move(row));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (!a[1]->is_none()) {
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*a[1]);
    }
    STRATA_ASSIGN_OR_RETURN(Value row, in.new_list(std::move(cur)));
    out.push_back(std::move(row));
  }
  return in.new_iter(std::move(out));
}

Result<Value> f_indent(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("indent", args, {{"width", Value::integer(4)}, {"first", kFalse}, {"blank", kFalse}}));
  std::string ind;
  if (a[0]->is_string()) {
    ind = a[0]->str();
  } else {
    STRATA_ASSIGN_OR_RETURN(int64_t w, int_arg("indent", *a[0]));
    STRATA_RETURN_IF_ERROR(in.check_string_size(static_cast<uint64_t>(std::max<int64_t>(0, w))));
    ind.assign(static_cast<size_t>(std::max<int64_t>(0, w)), ' ');
  }
  // jinja appends the newline to the value itself: only strings can take it.
  if (!v.is_string()) {
    if (v.is_undefined()) return undefined_status(v);
    return invalid_argument(std::string("unsupported operand type(s) for +=: '") + v.type_name() + "' and 'str'");
  }
  std::string s = v.str() + "\n";  // so that a trailing newline does not add an empty line
  const auto lines = py_splitlines(s, false);
  STRATA_RETURN_IF_ERROR(in.check_string_size(s.size() + lines.size() * ind.size()));
  std::string out;
  if (a[2]->truthy()) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n" + ind;
      out += lines[i];
    }
  } else {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) {
        out += "\n";
        if (!lines[i].empty()) out += ind;
      }
      out += lines[i];
    }
  }
  if (a[1]->truthy()) out = ind + out;
  return in.new_string(std::move(out));
}

Result<Value> f_center(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("center", args, {{"width", Value::integer(80)}}));
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  CallArgs m;
  m.args.push_back(*a[0]);
  return call_method(in, Value::string(s), "center", m);
}

Result<Value> f_truncate(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("truncate", args, {{"length", Value::integer(255)}, {"killwords", kFalse},
                                                             {"end", Value::string("...")}, {"leeway", kNone}}));
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  STRATA_ASSIGN_OR_RETURN(int64_t length, int_arg("truncate", *a[0]));
  STRATA_ASSIGN_OR_RETURN(std::string end, in.str(*a[2]));
  int64_t leeway = 5;
  if (!a[3]->is_none()) {
    STRATA_ASSIGN_OR_RETURN(leeway, int_arg("truncate", *a[3]));
  }
  const std::u32string cps = utf8_decode(s);
  const auto end_len = static_cast<int64_t>(utf8_length(end));
  if (length < end_len) return invalid_argument("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
  if (leeway < 0) return invalid_argument("expected leeway >= 0, got " + std::to_string(leeway));
  if (static_cast<int64_t>(cps.size()) <= length + leeway) return in.new_string(s);
  std::string head = utf8_encode(std::u32string_view(cps).substr(0, static_cast<size_t>(length - end_len)));
  if (a[1]->truthy()) return in.new_string(head + end);
  const size_t sp = head.rfind(' ');
  if (sp != std::string::npos) head.resize(sp);
  return in.new_string(head + end);
}

Result<Value> f_wordcount(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("wordcount", args, {}).status());
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8_decode(s)) {
    const bool w = cp_is_alpha(c) || cp_is_digit(c) || c == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

Result<Value> f_format(Interpreter& in, const Value& v, CallArgs& args) {
  if (!args.args.empty() && !args.kwargs.empty()) {
    return invalid_argument("can't handle positional and keyword arguments at the same time");
  }
  STRATA_ASSIGN_OR_RETURN(std::string fmt, in.str(v));
  Value fargs;
  if (!args.kwargs.empty()) {
    auto d = std::make_shared<Dict>();
    for (auto& [k, val] : args.kwargs) d->set(Value::string(k), val);
    fargs = Value::dict(d);
  } else {
    fargs = Value::list(args.args, true);
  }
  STRATA_ASSIGN_OR_RETURN(std::string s, percent_format(in, fmt, fargs));
  return in.new_string(std::move(s));
}

Result<Value> f_escape(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("escape", args, {}).status());
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return in.new_string(std::move(out));
}

Result<Value> f_safe(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_RETURN_IF_ERROR(bind_args("safe", args, {}).status());
  if (v.is_string()) return v;
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  return in.new_string(std::move(s));
}

Result<Value> f_attr(Interpreter& in, const Value& v, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("attr", args, {{"name", kRequired}}));
  if (!a[0]) return missing("attr");
  STRATA_ASSIGN_OR_RETURN(std::string name, in.str(*a[0]));
  // Attribute only: dict keys are not attributes.
  if (v.is_dict()) {
    bool unsafe = false;
    if (!has_method(v, name, &unsafe)) return Value::undefined("'dict object' has no attribute '" + name + "'");
  }
  return in.getattr(v, name);
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> k = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"capitalize", f_case<py_capitalize>},
      {"center", f_center},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"first", f_first},
      {"float", f_float},
      {"format", f_format},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_case<py_lower>},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"sort", f_sort},
      {"string", f_string},
      {"sum", f_sum},
      {"title", f_case<jinja_title>},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"truncate", f_truncate},
      {"unique", f_unique},
      {"upper", f_case<py_upper>},
      {"wordcount", f_wordcount},
  };
  return k;
}

// ---------------------------------------------------------------- tests

Result<Value> one_arg(const char* name, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {{"other", kRequired}}));
  if (!a[0]) return missing(name);
  return *a[0];
}

Status no_args(const char* name, CallArgs& args) { return bind_args(name, args, {}).status(); }

// Tests that look at the value alone.
using Predicate = bool (*)(const Value&);
const std::map<std::string, Predicate>& predicates() {
  static const std::map<std::string, Predicate> k = {
      {"defined", [](const Value& v) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v) { return v.is_undefined(); }},
      {"none", [](const Value& v) { return v.is_none(); }},
      {"boolean", [](const Value& v) { return v.is_bool(); }},
      {"false", [](const Value& v) { return v.is_bool() && !v.as_bool(); }},
      {"true", [](const Value& v) { return v.is_bool() && v.as_bool(); }},
      {"integer", [](const Value& v) { return v.is_int(); }},
      {"float", [](const Value& v) { return v.is_float(); }},
      {"number", [](const Value& v) { return v.is_number(); }},
      {"string", [](const Value& v) { return v.is_string(); }},
      {"mapping", [](const Value& v) { return v.is_dict(); }},
      // Undefined iterates as empty, has a length and can be "called" (to fail).
      {"iterable",
       [](const Value& v) {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict() || v.is_loop() || v.is_iter();
       }},
      {"sequence", [](const Value& v) { return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict(); }},
      {"callable", [](const Value& v) { return v.is_callable() || v.is_undefined(); }},
      {"escaped", [](const Value&) { return false; }},
  };
  return k;
}

Result<bool> t_lower(Interpreter& in, const Value& v, CallArgs& a) {
  STRATA_RETURN_IF_ERROR(no_args("lower", a));
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  CallArgs none;
  STRATA_ASSIGN_OR_RETURN(Value r, call_method(in, Value::string(s), "islower", none));
  return r.truthy();
}
Result<bool> t_upper(Interpreter& in, const Value& v, CallArgs& a) {
  STRATA_RETURN_IF_ERROR(no_args("upper", a));
  STRATA_ASSIGN_OR_RETURN(std::string s, in.str(v));
  CallArgs none;
  STRATA_ASSIGN_OR_RETURN(Value r, call_method(in, Value::string(s), "isupper", none));
  return r.truthy();
}
Result<bool> t_odd(Interpreter& in, const Value& v, CallArgs& a) {
  STRATA_RETURN_IF_ERROR(no_args("odd", a));
  STRATA_ASSIGN_OR_RETURN(Value r, in.binary(BinOp::kMod, v, Value::integer(2)));
  return py_equal(r, Value::integer(1));
}
Result<bool> t_even(Interpreter& in, const Value& v, CallArgs& a) {
  STRATA_RETURN_IF_ERROR(no_args("even", a));
  STRATA_ASSIGN_OR_RETURN(Value r, in.binary(BinOp::kMod, v, Value::integer(2)));
  return py_equal(r, Value::integer(0));
}
Result<bool> t_divisibleby(Interpreter& in, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value n, one_arg("divisibleby", a));
  STRATA_ASSIGN_OR_RETURN(Value r, in.binary(BinOp::kMod, v, n));
  return py_equal(r, Value::integer(0));
}
Result<bool> t_eq(Interpreter&, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value o, one_arg("eq", a));
  return py_equal(v, o);
}
Result<bool> t_ne(Interpreter&, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value o, one_arg("ne", a));
  return !py_equal(v, o);
}
Result<bool> ordered(const Value& x, const Value& y) {
  if (x.is_undefined()) return undefined_status(x);
  if (y.is_undefined()) return undefined_status(y);
  return py_less(x, y);
}
Result<bool> t_lt(Interpreter&, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value o, one_arg("lt", a));
  return ordered(v, o);
}
Result<bool> t_gt(Interpreter&, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value o, one_arg("gt", a));
  return ordered(o, v);
}
Result<bool> t_le(Interpreter&, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value o, one_arg("le", a));
  STRATA_ASSIGN_OR_RETURN(bool gt, ordered(o, v));
  return !gt;
}
Result<bool> t_ge(Interpreter&, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value o, one_arg("ge", a));
  STRATA_ASSIGN_OR_RETURN(bool lt, ordered(v, o));
  return !lt;
}
Result<bool> t_in(Interpreter& in, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value seq, one_arg("in", a));
  return in.contains(seq, v);
}
// Python's `is`: singletons and small integers compare by value, the rest
// by identity.
Result<bool> t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  STRATA_ASSIGN_OR_RETURN(Value o, one_arg("sameas", a));
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Kind::kNone:
    case Kind::kUndefined: return true;
    case Kind::kBool: return v.as_bool() == o.as_bool();
    case Kind::kInt: return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Kind::kString:
    case Kind::kList:
    case Kind::kDict:
    case Kind::kNamespace: return v.identity() == o.identity();
    default: return py_equal(v, o);
  }
}

Result<bool> t_filter(Interpreter&, const Value& v, CallArgs& a);
Result<bool> t_test(Interpreter&, const Value& v, CallArgs& a);

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> k = {
      {"!=", t_ne},          {"<", t_lt},          {"<=", t_le},         {"==", t_eq},
      {">", t_gt},           {">=", t_ge},         {"divisibleby", t_divisibleby},
      {"eq", t_eq},          {"equalto", t_eq},    {"even", t_even},     {"filter", t_filter},
      {"ge", t_ge},          {"greaterthan", t_gt}, {"gt", t_gt},        {"in", t_in},
      {"le", t_le},          {"lessthan", t_lt},   {"lower", t_lower},   {"lt", t_lt},
      {"ne", t_ne},          {"odd", t_odd},       {"sameas", t_sameas}, {"test", t_test},
      {"upper", t_upper},
  };
  return k;
}

Result<bool> t_filter(Interpreter& in, const Value& v, CallArgs& a) {
  STRATA_RETURN_IF_ERROR(no_args("filter", a));
  STRATA_ASSIGN_OR_RETURN(std::string name, in.str(v));
  return filters().count(name) > 0;
}
Result<bool> t_test(Interpreter& in, const Value& v, CallArgs& a) {
  STRATA_RETURN_IF_ERROR(no_args("test", a));
  STRATA_ASSIGN_OR_RETURN(std::string name, in.str(v));
  return tests().count(name) > 0 || predicates().count(name) > 0;
}

}  // namespace

Result<Value> builtin_filter(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  const auto& f = filters();
  auto it = f.find(name);
  if (it == f.end()) return invalid_argument("no filter named '" + name + "'");
  return it->second(in, v, args);
}

Result<bool> builtin_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  const auto& p = predicates();
  if (auto it = p.find(name); it != p.end()) {
    STRATA_RETURN_IF_ERROR(no_args(name.c_str(), args));
    return it->second(v);
  }
  const auto& t = tests();
  auto it = t.find(name);
  if (it == t.end()) return invalid_argument("no test named '" + name + "'");
  return it->second(in, v, args);
}

bool is_builtin_filter(const std::string& name) { return filters().count(name) > 0; }
bool is_builtin_test(const std::string& name) { return predicates().count(name) > 0 || tests().count(name) > 0; }

}  // namespace strata::chat::jinja
