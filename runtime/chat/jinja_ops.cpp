// The Python object protocol as jinja's sandbox exposes it: attribute and
// item lookup (missing gives undefined), slicing, iteration, membership and
// arithmetic with Python's rules (floor division, sign of %, no implicit
// str/int mixing).
#include <cmath>

#include "runtime/chat/jinja_interp.h"

namespace strata::chat::jinja {

// ---------------------------------------------------------------- objects

static std::string object_desc(const Value& obj) {
  if (obj.is_none()) return "'None'";
  return std::string("'") + obj.type_name() + " object'";
}

static Value no_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(object_desc(obj) + " has no attribute '" + name + "'");
}

Result<Value> Interpreter::getattr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return undefined_error(obj);
  bool unsafe = false;
  if (has_method(obj, name, &unsafe)) {
    if (unsafe) {
      return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.");
    }
    return Value::callable(name, [obj, name](Interpreter& in, CallArgs& args) {
      return call_method(in, obj, name, args);
    });
  }
  switch (obj.kind()) {
    case Kind::kDict:
      if (const Value* v = obj.dict_ref().find(name)) return *v;
      break;
    case Kind::kNamespace:
      if (const Value* v = obj.dict_ref().find(name)) return *v;
      break;
    case Kind::kLoop: return loop_attr(*obj.loop_state(), obj, name);
    default: break;
  }
  return no_attribute(obj, name);
}

Result<Value> Interpreter::loop_attr(const LoopState& st, const Value& loop, const std::string& name) {
  const auto& items = st.items->items;
  const auto n = static_cast<int64_t>(items.size());
  const auto i = static_cast<int64_t>(st.index0);
  if (name == "index") return Value::integer(i + 1);
  if (name == "index0") return Value::integer(i);
  if (name == "revindex") return Value::integer(n - i);
  if (name == "revindex0") return Value::integer(n - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(st.depth);
  if (name == "depth0") return Value::integer(st.depth - 1);
  if (name == "previtem") {
    if (i == 0) return Value::undefined("there is no previous item");
    return items[static_cast<size_t>(i - 1)];
  }
  if (name == "nextitem") {
    if (i + 1 >= n) return Value::undefined("there is no next item");
    return items[static_cast<size_t>(i + 1)];
  }
  if (name == "cycle") {
    auto state = loop.loop_state();
    return Value::callable("cycle", [state](Interpreter&, CallArgs& args) -> Result<Value> {
      if (args.args.empty()) return invalid_argument("no items for cycling given");
      return args.args[state->index0 % args.args.size()];
    });
  }
  return no_attribute(loop, name);
}

Result<Value> Interpreter::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return undefined_error(obj);
  const bool int_key = key.is_int() || key.is_bool();
  switch (obj.kind()) {
    case Kind::kList:
      if (int_key) {
        const auto& items = obj.items();
        int64_t i = key.as_int();
        if (i < 0) i += static_cast<int64_t>(items.size());
        if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
        return Value::undefined(object_desc(obj) + " has no element " + std::to_string(key.as_int()));
      }
      break;
    case Kind::kIter:
      if (int_key && obj.list_ptr()->flavor == IterFlavor::kRange) {
        const auto& items = obj.items();
        int64_t i = key.as_int();
        if (i < 0) i += static_cast<int64_t>(items.size());
        if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
      }
      break;
    case Kind::kString:
      if (int_key) {
        const std::u32string cps = utf8_decode(obj.str());
        int64_t i = key.as_int();
        if (i < 0) i += static_cast<int64_t>(cps.size());
        if (i >= 0 && i < static_cast<int64_t>(cps.size())) {
          return Value::string(utf8_encode(std::u32string_view(&cps[static_cast<size_t>(i)], 1)));
        }
        return Value::undefined(object_desc(obj) + " has no element " + std::to_string(key.as_int()));
      }
      break;
    case Kind::kDict:
      if (key_id(key).is_ok()) {
        if (const Value* v = obj.dict_ref().find(key)) return *v;
      }
      break;
    default: break;
  }
  if (key.is_string()) return getattr(obj, key.str());
  auto r = to_repr(key, budget());
  return Value::undefined(object_desc(obj) + " has no attribute " + (r.is_ok() ? *r : std::string("?")));
}

// Python's slice.indices(n): bounds clamped, defaults by the step's sign.
struct SliceIndices {
  int64_t start = 0, stop = 0, step = 1;
  std::vector<size_t> idx;  // the positions selected, in order
};

static Result<SliceIndices> slice_indices(size_t n, const Value& start_v, const Value& stop_v, const Value& step_v) {
  for (const Value* v : {&start_v, &stop_v, &step_v}) {
    if (!v->is_none() && !v->is_int() && !v->is_bool()) {
      return invalid_argument("slice indices must be integers or None or have an __index__ method");
    }
  }
  SliceIndices r;
  if (!step_v.is_none()) r.step = step_v.as_int();
  if (r.step == 0) return invalid_argument("slice step cannot be zero");
  const auto len = static_cast<int64_t>(n);
  const int64_t lower = r.step < 0 ? -1 : 0;
  const int64_t upper = r.step < 0 ? len - 1 : len;
  auto adjust = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t x = v.as_int();
    if (x < 0) {
      x += len;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  r.start = adjust(start_v, r.step < 0 ? upper : lower);
  r.stop = adjust(stop_v, r.step < 0 ? lower : upper);
  if (r.step > 0) {
    for (int64_t i = r.start; i < r.stop; i += r.step) r.idx.push_back(static_cast<size_t>(i));
  } else {
    for (int64_t i = r.start; i > r.stop; i += r.step) r.idx.push_back(static_cast<size_t>(i));
  }
  return r;
}

// jinja compiles `x[a:b:c]` to a plain Python subscript (no sandbox lookup),
// so unlike x[i] a failed slice is an error, not undefined.
Result<Value> Interpreter::slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) return undefined_error(obj);
  if (obj.is_list() || (obj.is_iter() && obj.list_ptr()->flavor == IterFlavor::kRange)) {
    STRATA_ASSIGN_OR_RETURN(SliceIndices r, slice_indices(obj.items().size(), start, stop, step));
    std::vector<Value> out;
    out.reserve(r.idx.size());
    for (size_t i : r.idx) out.push_back(obj.items()[i]);
    if (obj.is_list()) return new_list(std::move(out), obj.is_tuple());
    // A slice of a range is a range.
    const int64_t* a = obj.list_ptr()->range_args;
    STRATA_ASSIGN_OR_RETURN(Value v, new_iter(std::move(out), IterFlavor::kRange));
    v.list_ptr()->range_args[0] = a[0] + r.start * a[2];
    v.list_ptr()->range_args[1] = a[0] + r.stop * a[2];
    v.list_ptr()->range_args[2] = a[2] * r.step;
    return v;
  }
  if (obj.is_string()) {
    const std::string& s = obj.str();
    if (is_ascii(s)) {
      STRATA_ASSIGN_OR_RETURN(SliceIndices r, slice_indices(s.size(), start, stop, step));
      std::string out;
      out.reserve(r.idx.size());
      for (size_t i : r.idx) out += s[i];
      return new_string(std::move(out));
    }
    const std::u32string cps = utf8_decode(s);
    STRATA_ASSIGN_OR_RETURN(SliceIndices r, slice_indices(cps.size(), start, stop, step));
    std::u32string out;
    for (size_t i : r.idx) out += cps[i];
    return new_string(utf8_encode(out));
  }
  if (obj.is_dict()) return invalid_argument("unhashable type: 'slice'");
  return invalid_argument(std::string("'") + obj.type_name() + "' object is not subscriptable");
}

Result<std::vector<Value>> Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined: return std::vector<Value>{};
    case Kind::kList: return v.items();
    case Kind::kIter: {
      List& l = *v.list_ptr();
      if (!v.is_one_shot()) return l.items;
      std::vector<Value> rest(l.items.begin() + static_cast<long>(std::min(l.cursor, l.items.size())), l.items.end());
      l.cursor = l.items.size();
      return rest;
    }
    case Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.dict_ref().entries.size());
      for (const auto& [k, val] : v.dict_ref().entries) keys.push_back(k);
      return keys;
    }
    case Kind::kString: {
      std::vector<Value> chars;
      for (char32_t c : utf8_decode(v.str())) chars.push_back(Value::string(utf8_encode(std::u32string(1, c))));
      STRATA_RETURN_IF_ERROR(charge(chars.size() * sizeof(Value)));
      return chars;
    }
    default: return invalid_argument(std::string("'") + v.type_name() + "' object is not iterable");
  }
}

Result<bool> Interpreter::contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kUndefined: return false;
    case Kind::kString:
      if (!item.is_string()) {
        return invalid_argument(std::string("'in <string>' requires string as left operand, not ") + item.type_name());
      }
      return container.str().find(item.str()) != std::string::npos;
    case Kind::kList:
      for (const auto& x : container.items()) {
        if (py_equal(x, item)) return true;
      }
      return false;
    case Kind::kIter: {
      // A generator is consumed up to and including the match.
      List& l = *container.list_ptr();
      const bool one_shot = container.is_one_shot();
      for (size_t i = one_shot ? l.cursor : 0; i < l.items.size(); ++i) {
        if (py_equal(l.items[i], item)) {
          if (one_shot) l.cursor = i + 1;
          return true;
        }
      }
      if (one_shot) l.cursor = l.items.size();
      return false;
    }
    case Kind::kDict: {
      STRATA_RETURN_IF_ERROR(key_id(item).status());
      return container.dict_ref().find(item) != nullptr;
    }
    default:
      return invalid_argument(std::string("argument of type '") + container.type_name() + "' is not iterable");
  }
}

Result<Value> Interpreter::apply_filter(const std::string& name, const Value& v, CallArgs& args) {
  return builtin_filter(*this, name, v, args);
}

Result<bool> Interpreter::apply_test(const std::string& name, const Value& v, CallArgs& args) {
  return builtin_test(*this, name, v, args);
}

// ---------------------------------------------------------------- arithmetic

namespace {

Status type_error(const char* op, const Value& a, const Value& b) {
  return invalid_argument(std::string("unsupported operand type(s) for ") + op + ": '" + a.type_name() + "' and '" +
                          b.type_name() + "'");
}

// Python's float divmod: the remainder takes the divisor's sign.
void float_divmod(double a, double b, double* div_out, double* mod_out) {
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0) {
    if ((b < 0) != (mod < 0)) {
      mod += b;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, b);
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, a / b);
  }
  *div_out = floordiv;
  *mod_out = mod;
}

Result<Value> int_pow(int64_t base, int64_t exp) {
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, base, &result)) return invalid_argument("integer overflow");
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return invalid_argument("integer overflow");
  }
  return Value::integer(result);
}

}  // namespace

Result<Value> Interpreter::binary(BinOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) return undefined_error(a);
  // str % x formats without touching x unless the format asks for it.
  if (b.is_undefined() && !(op == BinOp::kMod && a.is_string())) return undefined_error(b);
  static const char* const kOpNames[] = {"+", "-", "*", "/", "//", "%", "**"};
  const char* opname = kOpNames[static_cast<int>(op)];
  const bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  const bool nums = a.is_number() && b.is_number();
  switch (op) {
    case BinOp::kAdd: {
      if (ints) {
        int64_t r;
        if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) return invalid_argument("integer overflow");
        return Value::integer(r);
      }
      if (nums) return Value::number(a.as_double() + b.as_double());
      if (a.is_string() && b.is_string()) {
        STRATA_RETURN_IF_ERROR(check_string_size(a.str().size() + b.str().size()));
        return new_string(a.str() + b.str());
      }
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return new_list(std::move(items), a.is_tuple());
      }
      if (a.is_string() || a.is_list()) {
        return invalid_argument(std::string("can only concatenate ") + a.type_name() + " (not \"" + b.type_name() +
                                "\") to " + a.type_name());
      }
      return type_error(opname, a, b);
    }
    case BinOp::kSub: {
      if (ints) {
        int64_t r;
        if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) return invalid_argument("integer overflow");
        return Value::integer(r);
      }
      if (nums) return Value::number(a.as_double() - b.as_double());
      return type_error(opname, a, b);
    }
    case BinOp::kMul: {
      if (ints) {
        int64_t r;
        if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) return invalid_argument("integer overflow");
        return Value::integer(r);
      }
      if (nums) return Value::number(a.as_double() * b.as_double());
      const Value* seq = (a.is_string() || a.is_list()) ? &a : (b.is_string() || b.is_list()) ? &b : nullptr;
      const Value* count = seq == &a ? &b : &a;
      if (seq && (count->is_int() || count->is_bool())) {
        const int64_t n = std::max<int64_t>(0, count->as_int());
        const uint64_t unit = seq->is_string() ? seq->str().size() : seq->items().size() * sizeof(Value);
        if (unit && static_cast<uint64_t>(n) > opts_.limits.max_alloc_bytes / unit) {
          return invalid_argument("expected a repeated value of at most " +
                                  std::to_string(opts_.limits.max_alloc_bytes) + " bytes, got more");
        }
        if (seq->is_string()) {
          STRATA_RETURN_IF_ERROR(check_string_size(seq->str().size() * static_cast<uint64_t>(n)));
          std::string out;
          out.reserve(seq->str().size() * static_cast<size_t>(n));
          for (int64_t i = 0; i < n; ++i) out += seq->str();
          return new_string(std::move(out));
        }
        std::vector<Value> items;
        for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq->items().begin(), seq->items().end());
        return new_list(std::move(items), seq->is_tuple());
      }
      if (seq) {
        return invalid_argument(std::string("can't multiply sequence by non-int of type '") + count->type_name() + "'");
      }
      return type_error(opname, a, b);
    }
    case BinOp::kDiv: {
      if (!nums) return type_error(opname, a, b);
      if (b.as_double() == 0.0) return invalid_argument("division by zero");
      return Value::number(a.as_double() / b.as_double());
    }
    case BinOp::kFloorDiv:
    case BinOp::kMod: {
      if (op == BinOp::kMod && a.is_string()) {
        STRATA_ASSIGN_OR_RETURN(std::string s, percent_format(*this, a.str(), b));
        return new_string(std::move(s));
      }
      if (!nums) return type_error(opname, a, b);
      if (ints) {
        const int64_t x = a.as_int();
        const int64_t y = b.as_int();
        if (y == 0) return invalid_argument("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) return invalid_argument("integer overflow");
        int64_t q = x / y;
        int64_t r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          q -= 1;
          r += y;
        }
        return Value::integer(op == BinOp::kFloorDiv ? q : r);
      }
      if (b.as_double() == 0.0) return invalid_argument("float floor division by zero");
      double div = 0;
      double mod = 0;
      float_divmod(a.as_double(), b.as_double(), &div, &mod);
      return Value::number(op == BinOp::kFloorDiv ? div : mod);
    }
    case BinOp::kPow: {
      if (!nums) return type_error(opname, a, b);
      if (ints && b.as_int() >= 0) return int_pow(a.as_int(), b.as_int());
      const double x = a.as_double();
      const double y = b.as_double();
      if (x == 0.0 && y < 0) return invalid_argument("0.0 cannot be raised to a negative power");
      if (x < 0 && y != std::floor(y)) return invalid_argument("complex results are not supported");
      return Value::number(std::pow(x, y));
    }
  }
  return type_error(opname, a, b);
}

}  // namespace strata::chat::jinja
