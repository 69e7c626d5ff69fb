// Python methods of str, list and dict as templates call them, the global
// functions (range, namespace, dict, joiner, raise_exception, strftime_now),
// and Python's two string formatting mini-languages (`%` and str.format).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>

#include "runtime/chat/jinja_interp.h"
#include "runtime/chat/jinja_strings.h"

namespace strata::chat::jinja {

Result<std::vector<std::optional<Value>>> bind_args(const std::string& fname, CallArgs& args,
                                                    const std::vector<Param>& params) {
  std::vector<std::optional<Value>> out(params.size());
  if (args.args.size() > params.size()) {
    return invalid_argument(fname + "() takes at most " + std::to_string(params.size()) + " argument(s), got " +
                            std::to_string(args.args.size()));
  }
  for (size_t i = 0; i < args.args.size(); ++i) out[i] = args.args[i];
  for (auto& [k, v] : args.kwargs) {
    size_t idx = params.size();
    for (size_t i = 0; i < params.size(); ++i) {
      if (k == params[i].name) idx = i;
    }
    if (idx == params.size()) return invalid_argument(fname + "() got an unexpected keyword argument '" + k + "'");
    if (out[idx]) return invalid_argument(fname + "() got multiple values for argument '" + k + "'");
    out[idx] = v;
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (!out[i] && params[i].def) out[i] = *params[i].def;
  }
  return out;
}

namespace {

Status need_args(const std::string& fname, const std::vector<std::optional<Value>>& a, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!a[i]) return invalid_argument(fname + "() missing required argument #" + std::to_string(i + 1));
  }
  return Status::ok();
}

Result<std::string> want_str(const std::string& fname, const Value& v) {
  if (!v.is_string()) return invalid_argument(fname + "() argument must be str, not " + v.type_name());
  return v.str();
}

Result<int64_t> want_int(const std::string& fname, const Value& v) {
  if (!v.is_int() && !v.is_bool()) {
    return invalid_argument(fname + "() argument must be an integer, not " + std::string(v.type_name()));
  }
  return v.as_int();
}

std::optional<std::string> opt_str(const std::optional<Value>& v) {
  if (!v || v->is_none()) return std::nullopt;
  return v->is_string() ? std::optional<std::string>(v->str()) : std::nullopt;
}

Result<Value> str_list(Interpreter& in, const std::vector<std::string>& parts, bool tuple = false) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (const auto& p : parts) items.push_back(Value::string(p));
  return in.new_list(std::move(items), tuple);
}

std::string pad(const std::string& s, int64_t width, char32_t fill, char align) {
  const auto len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return s;
  const int64_t marg = width - len;
  int64_t left = 0;
  if (align == '>') {
    left = marg;
  } else if (align == '^') {
    left = marg / 2 + (marg & width & 1);
  }
  std::string f;
  utf8_append(f, fill);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += f;
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) out += f;
  return out;
}

const std::set<std::string>& str_methods() {
  static const std::set<std::string> k = {
      "capitalize", "casefold",  "center",    "count",        "endswith",     "find",       "format",
      "index",      "isalnum",   "isalpha",   "isdecimal",    "isdigit",      "islower",    "isnumeric",
      "isspace",    "istitle",   "isupper",   "join",         "ljust",        "lower",      "lstrip",
      "partition",  "removeprefix", "removesuffix", "replace", "rfind",       "rindex",     "rjust",
      "rpartition", "rsplit",    "rstrip",    "split",        "splitlines",   "startswith", "strip",
      "swapcase",   "title",     "upper",     "zfill"};
  return k;
}

bool all_cps(const std::string& s, bool (*pred)(char32_t)) {
  if (s.empty()) return false;
  for (char32_t c : utf8_decode(s)) {
    if (!pred(c)) return false;
  }
  return true;
}

Result<Value> str_format(Interpreter& in, const std::string& fmt, CallArgs& args);

Result<Value> call_str_method(Interpreter& in, const std::string& s, const std::string& name, CallArgs& args) {
  auto bind = [&](const std::vector<Param>& p) { return bind_args(name, args, p); };
  const std::optional<Value> kNone = Value::none();
  if (name == "upper") return in.new_string(py_upper(s));
  if (name == "lower" || name == "casefold") return in.new_string(py_lower(s));
  if (name == "title") return in.new_string(py_title(s));
  if (name == "capitalize") return in.new_string(py_capitalize(s));
  if (name == "swapcase") {
    std::string out;
    for (char32_t c : utf8_decode(s)) {
      const std::string one = utf8_encode(std::u32string(1, c));
      out += cp_is_upper(c) ? py_lower(one) : cp_is_lower(c) ? py_upper(one) : one;
    }
    return in.new_string(std::move(out));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"chars", kNone}}));
    if (!a[0]->is_none() && !a[0]->is_string()) return invalid_argument(name + " arg must be None or str");
    return in.new_string(py_strip(s, opt_str(a[0]), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"sep", kNone}, {"maxsplit", Value::integer(-1)}}));
    if (!a[0]->is_none() && !a[0]->is_string()) return invalid_argument("must be str or None");
    STRATA_ASSIGN_OR_RETURN(int64_t maxsplit, want_int(name, *a[1]));
    const auto sep = opt_str(a[0]);
    if (sep && sep->empty()) return invalid_argument("empty separator");
    const long m = static_cast<long>(maxsplit);
    return str_list(in, name == "split" ? py_split(s, sep, m) : py_rsplit(s, sep, m));
  }
  if (name == "splitlines") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"keepends", Value::boolean(false)}}));
    return str_list(in, py_splitlines(s, a[0]->truthy()));
  }
  if (name == "startswith" || name == "endswith") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"prefix", std::nullopt}, {"start", kNone}, {"end", kNone}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
    std::string hay = s;
    if (!a[1]->is_none() || !a[2]->is_none()) {
      CallArgs no_args;
      const std::u32string cps = utf8_decode(s);
      auto clamp = [&](const Value& v, int64_t dflt) {
        if (v.is_none()) return dflt;
        int64_t x = v.as_int();
        const auto n = static_cast<int64_t>(cps.size());
        if (x < 0) x = std::max<int64_t>(0, x + n);
        return std::min(x, n);
      };
      const int64_t b = clamp(*a[1], 0);
      const int64_t e = clamp(*a[2], static_cast<int64_t>(cps.size()));
      if (b > e) return Value::boolean(false);
      hay = utf8_encode(std::u32string_view(cps).substr(static_cast<size_t>(b), static_cast<size_t>(e - b)));
    }
    std::vector<std::string> options;
    if (a[0]->is_string()) {
      options.push_back(a[0]->str());
    } else if (a[0]->is_tuple()) {
      for (const auto& v : a[0]->items()) {
        STRATA_ASSIGN_OR_RETURN(std::string o, want_str(name, v));
        options.push_back(std::move(o));
      }
    } else {
      return invalid_argument(name + " first arg must be str or a tuple of str, not " + a[0]->type_name());
    }
    for (const auto& o : options) {
      const bool hit = name == "startswith" ? hay.compare(0, o.size(), o) == 0 && hay.size() >= o.size()
                                            : hay.size() >= o.size() && hay.compare(hay.size() - o.size(), o.size(), o) == 0;
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "replace") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"old", std::nullopt}, {"new", std::nullopt}, {"count", Value::integer(-1)}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 2));
    STRATA_ASSIGN_OR_RETURN(std::string o, want_str(name, *a[0]));
    STRATA_ASSIGN_OR_RETURN(std::string n, want_str(name, *a[1]));
    STRATA_ASSIGN_OR_RETURN(int64_t count, want_int(name, *a[2]));
    const uint64_t worst = s.size() + (o.empty() ? utf8_length(s) + 1 : s.size() / o.size()) * n.size();
    STRATA_RETURN_IF_ERROR(in.check_string_size(worst > s.size() ? worst : s.size()));
    return in.new_string(py_replace(s, o, n, static_cast<long>(count)));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"sub", std::nullopt}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
    STRATA_ASSIGN_OR_RETURN(std::string sub, want_str(name, *a[0]));
    if (name == "count") return Value::integer(static_cast<int64_t>(py_count(s, sub)));
    const long at = py_find(s, sub, name[0] == 'r');
    if (at < 0 && (name == "index" || name == "rindex")) return invalid_argument("substring not found");
    return Value::integer(at);
  }
  if (name == "join") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"iterable", std::nullopt}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
    STRATA_ASSIGN_OR_RETURN(auto items, in.iterate(*a[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return invalid_argument("sequence item " + std::to_string(i) + ": expected str instance, " +
                                items[i].type_name() + " found");
      }
      if (i) out += s;
      out += items[i].str();
      STRATA_RETURN_IF_ERROR(in.check_string_size(out.size()));
    }
    return in.new_string(std::move(out));
  }
  if (name == "format") return str_format(in, s, args);
  if (name == "isalnum") return Value::boolean(all_cps(s, [](char32_t c) { return cp_is_alpha(c) || cp_is_digit(c); }));
  if (name == "isalpha") return Value::boolean(all_cps(s, cp_is_alpha));
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") return Value::boolean(all_cps(s, cp_is_digit));
  if (name == "isspace") return Value::boolean(all_cps(s, py_isspace));
  if (name == "islower" || name == "isupper") {
    bool cased = false;
    for (char32_t c : utf8_decode(s)) {
      if (name == "islower" ? cp_is_upper(c) : cp_is_lower(c)) return Value::boolean(false);
      cased = cased || cp_is_cased(c);
    }
    return Value::boolean(cased);
  }
  if (name == "istitle") {
    bool prev_cased = false;
    bool any = false;
    for (char32_t c : utf8_decode(s)) {
      if (cp_is_upper(c)) {
        if (prev_cased) return Value::boolean(false);
        prev_cased = any = true;
      } else if (cp_is_lower(c)) {
        if (!prev_cased) return Value::boolean(false);
        prev_cased = any = true;
      } else {
        prev_cased = false;
      }
    }
    return Value::boolean(any);
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"width", std::nullopt}, {"fillchar", Value::string(" ")}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
    STRATA_ASSIGN_OR_RETURN(int64_t width, want_int(name, *a[0]));
    STRATA_RETURN_IF_ERROR(in.check_string_size(static_cast<uint64_t>(std::max<int64_t>(0, width)) * 4));
    STRATA_ASSIGN_OR_RETURN(std::string fill, want_str(name, *a[1]));
    const std::u32string f = utf8_decode(fill);
    if (f.size() != 1) return invalid_argument("The fill character must be exactly one character long");
    const char align = name == "center" ? '^' : name == "ljust" ? '<' : '>';
    return in.new_string(pad(s, width, f[0], align));
  }
  if (name == "zfill") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"width", std::nullopt}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
    STRATA_ASSIGN_OR_RETURN(int64_t width, want_int(name, *a[0]));
    STRATA_RETURN_IF_ERROR(in.check_string_size(static_cast<uint64_t>(std::max<int64_t>(0, width))));
    const auto len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return in.new_string(s);
    std::string body = s;
    std::string sign;
    if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
      sign = body.substr(0, 1);
      body.erase(0, 1);
    }
    return in.new_string(sign + std::string(static_cast<size_t>(width - len), '0') + body);
  }
  if (name == "partition" || name == "rpartition") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"sep", std::nullopt}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
    STRATA_ASSIGN_OR_RETURN(std::string sep, want_str(name, *a[0]));
    if (sep.empty()) return invalid_argument("empty separator");
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos) {
      return name == "partition" ? str_list(in, {s, "", ""}, true) : str_list(in, {"", "", s}, true);
    }
    return str_list(in, {s.substr(0, at), sep, s.substr(at + sep.size())}, true);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind({{"affix", std::nullopt}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
    STRATA_ASSIGN_OR_RETURN(std::string x, want_str(name, *a[0]));
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return in.new_string(s.substr(x.size()));
    if (name == "removesuffix" && s.size() >= x.size() && !x.empty() &&
        s.compare(s.size() - x.size(), x.size(), x) == 0) {
      return in.new_string(s.substr(0, s.size() - x.size()));
    }
    return in.new_string(s);
  }
  return invalid_argument("'str' object has no attribute '" + name + "'");
}

Result<Value> dict_items(Interpreter& in, const Dict& d) {
  std::vector<Value> items;
  items.reserve(d.entries.size());
  for (const auto& [k, v] : d.entries) items.push_back(Value::list({k, v}, true));
  return in.new_iter(std::move(items), IterFlavor::kDictItems);
}

Result<Value> call_dict_method(Interpreter& in, const Value& obj, const std::string& name, CallArgs& args) {
  const Dict& d = obj.dict_ref();
  if (name == "get") {
    STRATA_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {{"key", std::nullopt}, {"default", Value::none()}}));
    STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
    STRATA_RETURN_IF_ERROR(key_id(*a[0]).status());
    const Value* v = d.find(*a[0]);
    return v ? *v : *a[1];
  }
  STRATA_RETURN_IF_ERROR(bind_args(name, args, {}).status());
  if (name == "items") return dict_items(in, d);
  if (name == "keys" || name == "values") {
    std::vector<Value> out;
    out.reserve(d.entries.size());
    for (const auto& [k, v] : d.entries) out.push_back(name == "keys" ? k : v);
    return in.new_iter(std::move(out), name == "keys" ? IterFlavor::kDictKeys : IterFlavor::kDictValues);
  }
  if (name == "copy") {
    auto copy = std::make_shared<Dict>(d);
    return in.new_dict(std::move(copy));
  }
  return invalid_argument("'dict' object has no attribute '" + name + "'");
}

Result<Value> call_list_method(Interpreter& in, const Value& obj, const std::string& name, CallArgs& args) {
  const auto& items = obj.items();
  if (name == "copy") {
    STRATA_RETURN_IF_ERROR(bind_args(name, args, {}).status());
    return in.new_list(items, obj.is_tuple());
  }
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args(name, args, {{"value", std::nullopt}}));
  STRATA_RETURN_IF_ERROR(need_args(name, a, 1));
  int64_t count = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!py_equal(items[i], *a[0])) continue;
    if (name == "index") return Value::integer(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") return invalid_argument(std::string(obj.type_name()) + ".index(x): x not in " + obj.type_name());
  return Value::integer(count);
}

// ---- formatting ----

Result<std::string> c_format(const std::string& spec, double f) {
  const int n = std::snprintf(nullptr, 0, spec.c_str(), f);
  if (n < 0) return invalid_argument("bad format");
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), spec.c_str(), f);
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> c_format_int(const std::string& spec, long long v) {
  const int n = std::snprintf(nullptr, 0, spec.c_str(), v);
  if (n < 0) return invalid_argument("bad format");
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), spec.c_str(), v);
  out.resize(static_cast<size_t>(n));
  return out;
}

// One conversion of the `%` language: flags, width, precision, type.
Result<std::string> percent_one(Interpreter& in, const Value& v, const std::string& flags, int64_t width,
                                int64_t precision, char type) {
  STRATA_RETURN_IF_ERROR(in.check_string_size(static_cast<uint64_t>(std::max<int64_t>({width, precision, 0}))));
  std::string body;
  const bool left = flags.find('-') != std::string::npos;
  switch (type) {
    case 's':
    case 'r':
    case 'a': {
      if (type == 's') {
        STRATA_ASSIGN_OR_RETURN(body, in.str(v));
      } else {
        STRATA_ASSIGN_OR_RETURN(body, to_repr(v, in.budget()));
      }
      if (precision >= 0) {
        const std::u32string cps = utf8_decode(body);
        if (static_cast<size_t>(precision) < cps.size()) body = utf8_encode(cps.substr(0, static_cast<size_t>(precision)));
      }
      return pad(body, width, ' ', left ? '<' : '>');
    }
    case 'c': {
      if (v.is_string() && utf8_length(v.str()) == 1) return pad(v.str(), width, ' ', left ? '<' : '>');
      if (!v.is_int()) return invalid_argument("%c requires an int or a unicode character");
      std::string one;
      utf8_append(one, static_cast<char32_t>(v.as_int()));
      return pad(one, width, ' ', left ? '<' : '>');
    }
    default: break;
  }
  if (!v.is_number()) {
    return invalid_argument(std::string("%") + type + " format: a real number is required, not " + v.type_name());
  }
  std::string spec = "%" + flags;
  if (width >= 0) spec += std::to_string(width);
  if (precision >= 0) spec += "." + std::to_string(precision);
  if (type == 'd' || type == 'i' || type == 'u' || type == 'x' || type == 'X' || type == 'o') {
    if ((type == 'x' || type == 'X' || type == 'o') && v.is_float()) {
      return invalid_argument(std::string("%") + type + " format: an integer is required, not float");
    }
    const double f = v.as_double();
    if (v.is_float() && !std::isfinite(f)) return invalid_argument("cannot convert float infinity or NaN to integer");
    const long long i = v.is_float() ? static_cast<long long>(std::trunc(f)) : static_cast<long long>(v.as_int());
    if (type == 'x' || type == 'X' || type == 'o') {
      // Python formats the magnitude and puts the sign in front.
      const unsigned long long mag = i < 0 ? 0ull - static_cast<unsigned long long>(i) : static_cast<unsigned long long>(i);
      spec += "ll";
      spec += type;
      STRATA_ASSIGN_OR_RETURN(std::string digits, c_format_int(spec, static_cast<long long>(mag)));
      if (i < 0) {
        const size_t first = digits.find_first_not_of(' ');
        digits.insert(first == std::string::npos ? 0 : first, "-");
        if (digits.size() > static_cast<size_t>(std::max<int64_t>(width, 0)) && digits[0] == ' ') digits.erase(0, 1);
      }
      return digits;
    }
    return c_format_int(spec + "lld", i);
  }
  if (std::string("eEfFgG").find(type) == std::string::npos) {
    return invalid_argument(std::string("unsupported format character '") + type + "'");
  }
  return c_format(spec + type, v.as_double());
}

Result<std::string> format_spec(Interpreter& in, const Value& v, const std::string& spec);

Result<Value> str_format(Interpreter& in, const std::string& fmt, CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      return invalid_argument("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) return invalid_argument("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    if (field.find('{') != std::string::npos) return invalid_argument("nested format fields are not supported");
    std::string spec;
    char conv = 0;
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size()) return invalid_argument("expected ':' after conversion specifier");
      conv = field[bang + 1];
      field.resize(bang);
    }
    size_t name_end = field.find_first_of(".[");
    const std::string name = field.substr(0, name_end);
    Value v;
    if (name.empty()) {
      if (auto_index >= args.args.size()) return invalid_argument("Replacement index " + std::to_string(auto_index) + " out of range");
      v = args.args[auto_index++];
    } else if (std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      const size_t idx = std::stoul(name);
      if (idx >= args.args.size()) return invalid_argument("Replacement index " + name + " out of range");
      v = args.args[idx];
    } else {
      bool found = false;
      for (const auto& [k, val] : args.kwargs) {
        if (k == name) {
          v = val;
          found = true;
        }
      }
      if (!found) return invalid_argument("'" + name + "'");
    }
    while (name_end != std::string::npos && name_end < field.size()) {
      if (field[name_end] == '.') {
        const size_t e = field.find_first_of(".[", name_end + 1);
        STRATA_ASSIGN_OR_RETURN(v, in.getattr(v, field.substr(name_end + 1, e - name_end - 1)));
        name_end = e;
      } else {
        const size_t e = field.find(']', name_end);
        if (e == std::string::npos) return invalid_argument("Missing ']' in format string");
        const std::string key = field.substr(name_end + 1, e - name_end - 1);
        const bool numeric = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
        STRATA_ASSIGN_OR_RETURN(v, in.getitem(v, numeric ? Value::integer(std::stoll(key)) : Value::string(key)));
        name_end = e + 1;
      }
    }
    if (conv == 'r' || conv == 'a') {
      STRATA_ASSIGN_OR_RETURN(std::string r, to_repr(v, in.budget()));
      v = Value::string(std::move(r));
    } else if (conv == 's') {
      STRATA_ASSIGN_OR_RETURN(std::string r, in.str(v));
      v = Value::string(std::move(r));
    } else if (conv) {
      return invalid_argument(std::string("Unknown conversion specifier ") + conv);
    }
    STRATA_ASSIGN_OR_RETURN(std::string piece, format_spec(in, v, spec));
    out += piece;
    STRATA_RETURN_IF_ERROR(in.check_string_size(out.size()));
  }
  return in.new_string(std::move(out));
}

// Python's format-spec mini-language: [[fill]align][sign][#][0][width][,|_][.precision][type].
Result<std::string> format_spec(Interpreter& in, const Value& v, const std::string& spec) {
  if (spec.empty()) return in.str(v);
  const std::u32string sp = utf8_decode(spec);
  size_t i = 0;
  char32_t fill = ' ';
  char align = 0;
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (sp.size() >= 2 && is_align(sp[1])) {
    fill = sp[0];
    align = static_cast<char>(sp[1]);
    i = 2;
  } else if (!sp.empty() && is_align(sp[0])) {
    align = static_cast<char>(sp[0]);
    i = 1;
  }
  char sign = 0;
  if (i < sp.size() && (sp[i] == '+' || sp[i] == '-' || sp[i] == ' ')) sign = static_cast<char>(sp[i++]);
  bool alt = false;
  if (i < sp.size() && sp[i] == '#') {
    alt = true;
    ++i;
  }
  if (i < sp.size() && sp[i] == '0') {
    if (!align) {
      fill = '0';
      align = '=';
    }
    ++i;
  }
  int64_t width = 0;
  while (i < sp.size() && sp[i] >= '0' && sp[i] <= '9') width = std::min<int64_t>(width * 10 + (sp[i++] - '0'), 1 << 24);
  char group = 0;
  if (i < sp.size() && (sp[i] == ',' || sp[i] == '_')) group = static_cast<char>(sp[i++]);
  int64_t precision = -1;
  if (i < sp.size() && sp[i] == '.') {
    ++i;
    precision = 0;
    while (i < sp.size() && sp[i] >= '0' && sp[i] <= '9') precision = std::min<int64_t>(precision * 10 + (sp[i++] - '0'), 1 << 16);
  }
  char type = 0;
  if (i < sp.size()) type = static_cast<char>(sp[i++]);
  if (i != sp.size()) return invalid_argument("Invalid format specifier '" + spec + "'");
  STRATA_RETURN_IF_ERROR(in.check_string_size(static_cast<uint64_t>(width + std::max<int64_t>(precision, 0))));
  std::string body;
  if (v.is_string() || (!v.is_number() && (type == 0 || type == 's'))) {
    if (type != 0 && type != 's') return invalid_argument(std::string("Unknown format code '") + type + "' for object of type 'str'");
    STRATA_ASSIGN_OR_RETURN(body, in.str(v));
    if (precision >= 0) {
      const std::u32string cps = utf8_decode(body);
      if (static_cast<size_t>(precision) < cps.size()) body = utf8_encode(cps.substr(0, static_cast<size_t>(precision)));
    }
    return pad(body, width, fill, align ? (align == '=' ? '<' : align) : '<');
  }
  if (!v.is_number()) return invalid_argument("unsupported format string passed to " + std::string(v.type_name()) + ".__format__");
  std::string flags;
  if (sign == '+' || sign == ' ') flags += sign;
  if (alt) flags += '#';
  const bool is_int_value = !v.is_float();
  if (type == 0 && is_int_value) type = 'd';
  if (type == 0) {
    body = precision >= 0 ? *c_format("%" + flags + "." + std::to_string(precision) + "g", v.as_double())
                          : float_repr(v.as_double());
    if (sign == '+' && v.as_double() >= 0) body = "+" + body;
  } else if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b' || type == 'c') {
    if (!is_int_value) return invalid_argument(std::string("Unknown format code '") + type + "' for object of type 'float'");
    const long long x = v.as_int();
    if (type == 'b') {
      unsigned long long m = x < 0 ? 0ull - static_cast<unsigned long long>(x) : static_cast<unsigned long long>(x);
      std::string bits;
      do {
        bits.insert(bits.begin(), static_cast<char>('0' + (m & 1)));
        m >>= 1;
      } while (m);
      body = (x < 0 ? "-" : (sign == '+' ? "+" : sign == ' ' ? " " : "")) + std::string(alt ? "0b" : "") + bits;
    } else if (type == 'c') {
      utf8_append(body, static_cast<char32_t>(x));
    } else {
      STRATA_ASSIGN_OR_RETURN(body, c_format_int("%" + flags + "ll" + type, x));
    }
  } else if (std::string("eEfFgG%").find(type) != std::string::npos) {
    const double f = type == '%' ? v.as_double() * 100 : v.as_double();
    const std::string t(1, type == '%' ? 'f' : type);
    STRATA_ASSIGN_OR_RETURN(body, c_format("%" + flags + "." + std::to_string(precision < 0 ? 6 : precision) + t, f));
    if (type == '%') body += '%';
  } else {
    return invalid_argument(std::string("Unknown format code '") + type + "'");
  }
  if (group) {
    size_t digits_begin = body.find_first_of("0123456789");
    size_t digits_end = body.find_first_not_of("0123456789", digits_begin);
    if (digits_end == std::string::npos) digits_end = body.size();
    if (digits_begin != std::string::npos) {
      for (size_t k = digits_end; k > digits_begin + 3; k -= 3) body.insert(k - 3, 1, group);
    }
  }
  if (align == '=') {
    size_t sign_len = (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) ? 1 : 0;
    const std::string head = body.substr(0, sign_len);
    return head + pad(body.substr(sign_len), width - static_cast<int64_t>(sign_len), fill, '>');
  }
  return pad(body, width, fill, align ? align : '>');
}

// ---- globals ----

Result<Value> global_range(Interpreter& in, CallArgs& args) {
  if (!args.kwargs.empty()) return invalid_argument("range() takes no keyword arguments");
  if (args.args.empty() || args.args.size() > 3) return invalid_argument("range expected 1 to 3 arguments");
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < args.args.size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(v[i], want_int("range", args.args[i]));
  }
  int64_t start = 0, stop = v[0], step = 1;
  if (args.args.size() >= 2) {
    start = v[0];
    stop = v[1];
  }
  if (args.args.size() == 3) step = v[2];
  if (step == 0) return invalid_argument("range() arg 3 must not be zero");
  // jinja's sandbox refuses ranges longer than 100000 items.
  const double n = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
  if (n > 100000) return invalid_argument("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  std::vector<Value> items;
  for (int64_t x = start; step > 0 ? x < stop : x > stop; x += step) items.push_back(Value::integer(x));
  STRATA_ASSIGN_OR_RETURN(Value r, in.new_iter(std::move(items), IterFlavor::kRange));
  r.list_ptr()->range_args[0] = start;
  r.list_ptr()->range_args[1] = stop;
  r.list_ptr()->range_args[2] = step;
  return r;
}

// dict(*args, **kwargs) as Python builds it: a mapping or pairs, then keywords.
Result<std::shared_ptr<Dict>> build_dict(Interpreter& in, CallArgs& args, const char* fname) {
  auto d = std::make_shared<Dict>();
  if (args.args.size() > 1) return invalid_argument(std::string(fname) + " expected at most 1 positional argument");
  if (args.args.size() == 1) {
    const Value& src = args.args[0];
    if (src.is_dict() || src.is_namespace()) {
      for (const auto& [k, v] : src.dict_ref().entries) d->set(k, v);
    } else {
      STRATA_ASSIGN_OR_RETURN(auto pairs, in.iterate(src));
      for (const auto& p : pairs) {
        STRATA_ASSIGN_OR_RETURN(auto kv, in.iterate(p));
        if (kv.size() != 2) return invalid_argument("dictionary update sequence element has wrong length");
        STRATA_RETURN_IF_ERROR(key_id(kv[0]).status());
        d->set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : args.kwargs) d->set(Value::string(k), v);
  return d;
}

Result<Value> global_strftime_now(Interpreter& in, CallArgs& args) {
  STRATA_ASSIGN_OR_RETURN(auto a, bind_args("strftime_now", args, {{"format", std::nullopt}}));
  STRATA_RETURN_IF_ERROR(need_args("strftime_now", a, 1));
  STRATA_ASSIGN_OR_RETURN(std::string fmt, want_str("strftime_now", *a[0]));
  const std::time_t now = in.options().now_unix ? static_cast<std::time_t>(*in.options().now_unix) : std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  if (fmt.empty()) return Value::string("");
  // strftime has no way to report "too small" apart from an empty result.
  for (size_t cap = 256; cap <= (1u << 20); cap *= 4) {
    std::string buf(cap, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    if (n > 0) {
      buf.resize(n);
      return in.new_string(std::move(buf));
    }
  }
  return Value::string("");
}

}  // namespace

bool has_method(const Value& obj, const std::string& name, bool* unsafe) {
  *unsafe = false;
  switch (obj.kind()) {
    case Kind::kString: return str_methods().count(name) > 0;
    case Kind::kList: {
      static const std::set<std::string> kUnsafe = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
      if (!obj.is_tuple() && kUnsafe.count(name)) {
        *unsafe = true;
        return true;
      }
      return name == "index" || name == "count" || (name == "copy" && !obj.is_tuple());
    }
    case Kind::kDict: {
      static const std::set<std::string> kUnsafe = {"clear", "pop", "popitem", "setdefault", "update"};
      if (kUnsafe.count(name)) {
        *unsafe = true;
        return true;
      }
      return name == "get" || name == "items" || name == "keys" || name == "values" || name == "copy";
    }
    default: return false;
  }
}

Result<Value> call_method(Interpreter& in, const Value& obj, const std::string& name, CallArgs& args) {
  switch (obj.kind()) {
    case Kind::kString: return call_str_method(in, obj.str(), name, args);
    case Kind::kDict: return call_dict_method(in, obj, name, args);
    case Kind::kList: return call_list_method(in, obj, name, args);
    default: return invalid_argument(std::string("'") + obj.type_name() + "' object has no attribute '" + name + "'");
  }
}

Result<std::string> percent_format(Interpreter& in, const std::string& fmt, const Value& args) {
  std::vector<Value> positional;
  const Value* mapping = nullptr;
  // Python takes any non-tuple with item access (dict, list) as a mapping:
  // unused, it raises no "not all arguments converted".
  const bool mapping_like = args.is_dict() || (args.is_list() && !args.is_tuple()) || args.is_undefined();
  if (args.is_tuple()) {
    positional = args.items();
  } else {
    if (args.is_dict()) mapping = &args;
    positional.push_back(args);
  }
  size_t next = 0;
  bool used_mapping = false;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) return invalid_argument("incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    Value v;
    bool have = false;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) return invalid_argument("incomplete format key");
      if (!mapping) return invalid_argument("format requires a mapping");
      const Value* found = mapping->dict_ref().find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!found) return invalid_argument("'" + fmt.substr(i + 1, close - i - 1) + "'");
      v = *found;
      have = used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) flags += fmt[i++];
    auto take_next = [&]() -> Result<Value> {
      if (next >= positional.size()) return invalid_argument("not enough arguments for format string");
      return positional[next++];
    };
    auto read_num = [&](int64_t* out_num) -> Status {
      if (i < fmt.size() && fmt[i] == '*') {
        ++i;
        STRATA_ASSIGN_OR_RETURN(Value n, take_next());
        STRATA_ASSIGN_OR_RETURN(*out_num, want_int("format", n));
        return Status::ok();
      }
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') {
        *out_num = std::max<int64_t>(*out_num, 0) * 10 + (fmt[i++] - '0');
        if (*out_num > (1 << 24)) return invalid_argument("width too big");
      }
      return Status::ok();
    };
    int64_t width = -1;
    int64_t precision = -1;
    STRATA_RETURN_IF_ERROR(read_num(&width));
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      precision = 0;
      STRATA_RETURN_IF_ERROR(read_num(&precision));
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) return invalid_argument("incomplete format");
    if (!have) {
      STRATA_ASSIGN_OR_RETURN(v, take_next());
    }
    STRATA_ASSIGN_OR_RETURN(std::string piece, percent_one(in, v, flags, width, precision, fmt[i]));
    out += piece;
    STRATA_RETURN_IF_ERROR(in.check_string_size(out.size()));
  }
  if (!used_mapping && !mapping_like && next < positional.size()) {
    return invalid_argument("not all arguments converted during string formatting");
  }
  return out;
}

Vars builtin_globals() {
  Vars g;
  g.emplace_back("range", Value::callable("range", global_range));
  g.emplace_back("dict", Value::callable("dict", [](Interpreter& in, CallArgs& args) -> Result<Value> {
    STRATA_ASSIGN_OR_RETURN(auto d, build_dict(in, args, "dict"));
    return in.new_dict(std::move(d));
  }));
  g.emplace_back("namespace", Value::callable("namespace", [](Interpreter& in, CallArgs& args) -> Result<Value> {
    STRATA_ASSIGN_OR_RETURN(auto d, build_dict(in, args, "namespace"));
    return in.new_namespace(std::move(d));
  }));
  g.emplace_back("joiner", Value::callable("joiner", [](Interpreter&, CallArgs& args) -> Result<Value> {
    STRATA_ASSIGN_OR_RETURN(auto a, bind_args("joiner", args, {{"sep", Value::string(", ")}}));
    auto used = std::make_shared<bool>(false);
    Value sep = *a[0];
    return Value::callable("joiner", [used, sep](Interpreter&, CallArgs&) -> Result<Value> {
      if (!*used) {
        *used = true;
        return Value::string("");
      }
      return sep;
    });
  }));
  g.emplace_back("raise_exception", Value::callable("raise_exception", [](Interpreter& in, CallArgs& args) -> Result<Value> {
    std::string msg;
    if (!args.args.empty()) {
      STRATA_ASSIGN_OR_RETURN(msg, in.str(args.args[0]));
    }
    return invalid_argument("raised: " + msg);
  }));
  g.emplace_back("strftime_now", Value::callable("strftime_now", global_strftime_now));
  return g;
}

}  // namespace strata::chat::jinja
