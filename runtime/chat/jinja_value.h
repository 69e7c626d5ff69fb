// Values of the template language: Python's object model as far as chat
// templates observe it (None, bool, int, float, str, list, tuple, dict,
// namespaces, callables and jinja's Undefined), with Python's str(), repr(),
// truthiness, equality and ordering, and HF-style json.dumps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/base/status.h"

namespace strata::chat::jinja {

class Value;
class Interpreter;
struct LoopState;

enum class Kind : uint8_t {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,  // list or tuple (is_tuple)
  kDict,
  kNamespace,
  kCallable,
  kLoop,  // the `loop` object of a for loop
  kIter,  // a one-shot generator/iterator or a dict view (see IterFlavor)
};

// What a kIter stands for. Filters like map and select return generators in
// jinja2, and dict.items() returns a view; they iterate like lists but differ
// where Python differs: generators are always true, have no len(), are used
// up by one pass and cannot be serialized; views have a len() but no index.
enum class IterFlavor : uint8_t { kGenerator, kReverseIterator, kDictKeys, kDictValues, kDictItems, kRange };

// Containers record how deeply they nest (a scalar is 0, a namespace counts
// as 1 whatever it holds) so that building ever deeper values is refused
// before their recursive destruction or printing could exhaust the stack.
struct List {
  std::vector<Value> items;
  bool is_tuple = false;
  uint32_t depth = 1;
  IterFlavor flavor = IterFlavor::kGenerator;  // kIter only
  size_t cursor = 0;                           // kIter generators: items before it are consumed
  int64_t range_args[3] = {0, 0, 1};           // kRange: start, stop, step (for repr)
};

// Insertion-ordered mapping, as Python's dict. Keys are compared the Python
// way (1, 1.0 and True are the same key) through key_id().
struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  std::unordered_map<std::string, size_t> index;
  uint32_t depth = 1;

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;  // a string key
  // Inserts or replaces; replacing keeps the original position, as Python does.
  void set(Value key, Value value);
  void clear() { entries.clear(); index.clear(); }
};

// Positional and keyword arguments of one call.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

struct Callable;
using NativeFn = std::function<Result<Value>(Interpreter&, CallArgs&)>;

struct Callable {
  std::string name;  // for messages and str()
  NativeFn fn;
};

// A value is a kind, a scalar and one shared pointer to the payload (string,
// List, Dict, Callable, LoopState; the hint of an undefined), so copies are
// cheap and a Value stays small (it lives on every evaluation stack frame).
class Value {
 public:
  Value() = default;  // undefined
  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double f);
  static Value string(std::string s);
  static Value list(std::vector<Value> items, bool is_tuple = false);
  static Value dict(std::shared_ptr<Dict> d);
  static Value ns(std::shared_ptr<Dict> attrs);
  static Value callable(std::string name, NativeFn fn);
  static Value loop(std::shared_ptr<LoopState> state);
  static Value iter(std::vector<Value> items, IterFlavor flavor);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && list_ptr()->is_tuple; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_loop() const { return kind_ == Kind::kLoop; }
  bool is_iter() const { return kind_ == Kind::kIter; }
  // A generator or iterator (one pass), as opposed to a list or a dict view.
  bool is_one_shot() const { return kind_ == Kind::kIter && list_ptr()->flavor <= IterFlavor::kReverseIterator; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }  // int or bool
  double as_double() const;                                                    // any number
  const std::string& str() const { return *static_cast<const std::string*>(p_.get()); }  // strings
  // list, tuple, kIter (all of it, consumed or not)
  const std::vector<Value>& items() const { return list_ptr()->items; }
  List* list_ptr() const { return static_cast<List*>(p_.get()); }  // list, tuple, kIter
  const Dict& dict_ref() const { return *dict_ptr(); }
  Dict* dict_ptr() const { return static_cast<Dict*>(p_.get()); }  // dict or namespace
  const Callable& fn() const { return *static_cast<const Callable*>(p_.get()); }
  std::shared_ptr<LoopState> loop_state() const { return std::static_pointer_cast<LoopState>(p_); }
  // What Python's `is` compares for objects.
  const void* identity() const { return p_.get(); }
  // Hint of an undefined value, e.g. "'x' is undefined"; empty if none.
  const std::string& undefined_hint() const;

  // Nesting depth of a container (see List); 0 for scalars.
  uint32_t depth() const;

  // Python truthiness; undefined is false.
  bool truthy() const;
  // Python's type name, for messages: "str", "dict", "NoneType", "undefined".
  const char* type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<void> p_;
};

// State of one running for loop, read through `loop.*`.
struct LoopState {
  std::shared_ptr<List> items;  // the (filtered) items iterated
  size_t index0 = 0;
  int depth = 1;
};

// Limits applied to every string/list built and every serialization, so a
// hostile template cannot exhaust memory. 0 means unbounded.
struct SizeBudget {
  size_t max_bytes = 0;
  size_t max_depth = 512;  // nesting of values being printed (namespaces may chain)
};

// ---- UTF-8 (strings index by code point, as Python's str does) ----
bool utf8_valid(std::string_view s);
std::u32string utf8_decode(std::string_view s);  // input must be valid
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t c);
// Python's escape for a code point in a string literal: \xNN, \uNNNN or \UNNNNNNNN.
void append_py_hex_escape(std::string& out, char32_t c);
size_t utf8_length(std::string_view s);
bool is_ascii(std::string_view s);
// Python's str.isspace() for one code point.
bool py_isspace(char32_t c);

// ---- Python conversions ----
// str(v) for output; undefined prints as "". Fails only past the budget.
Result<std::string> to_str(const Value& v, const SizeBudget& budget);
// repr(v).
Result<std::string> to_repr(const Value& v, const SizeBudget& budget);
// Python float.__repr__: shortest round-trip digits, "1.0", "1e-05", "1e+16".
std::string float_repr(double f);

struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::string indent;  // used when has_indent
  bool has_indent = false;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
// Python json.dumps; fails on values JSON cannot hold (undefined, callables).
Result<std::string> to_json(const Value& v, const JsonDumpOptions& opts, const SizeBudget& budget);

// Python ==. Containers compare deeply; depth past the budget compares unequal.
bool py_equal(const Value& a, const Value& b, int depth = 0);
// Python <: numbers, strings (by code point), lists/tuples lexicographically.
// Other pairs raise TypeError in Python: an error here.
Result<bool> py_less(const Value& a, const Value& b, int depth = 0);
// Identity of a dict key: equal keys (1, 1.0, True) give equal ids. Lists,
// dicts and namespaces are unhashable: an error.
Result<std::string> key_id(const Value& key);

// JSON (as parsed from the user) to a value; objects keep their order.
Result<Value> from_json(const nlohmann::ordered_json& j, int max_depth = 128);

}  // namespace strata::chat::jinja
