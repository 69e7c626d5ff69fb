// The tree-walking evaluator behind Template::render, and the services it
// offers to the built-in filters, tests and methods (attribute lookup,
// calls, iteration, bounded allocation). Internal to runtime/chat.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/chat/jinja.h"
#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_value.h"

namespace strata::chat::jinja {

// One variable scope. A for-loop iteration, macro call, with-block and the
// template itself each get one; `set` writes the innermost, lookups walk out.
struct Frame {
  std::shared_ptr<Frame> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find_local(std::string_view name) const;
  void set(const std::string& name, Value v);
};
using FramePtr = std::shared_ptr<Frame>;

enum class Flow { kNormal, kBreak, kContinue };

class Interpreter {
 public:
  Interpreter(const std::string& source, const RenderOptions& opts);
  ~Interpreter();  // clears captured frames and namespaces: breaks reference cycles
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  Result<std::string> run(const Body& body, const Vars& vars);

  // ---- services for builtins ----
  const RenderOptions& options() const { return opts_; }
  SizeBudget budget() const { return {opts_.limits.max_output_bytes, 512}; }
  // Values whose size depends on the input are built through these, which
  // charge the allocation budget and enforce size and nesting limits.
  Result<Value> new_string(std::string s);
  Result<Value> new_list(std::vector<Value> items, bool is_tuple = false);
  Result<Value> new_iter(std::vector<Value> items, IterFlavor flavor = IterFlavor::kGenerator);
  Result<Value> new_dict(std::shared_ptr<Dict> d);
  Result<Value> new_namespace(std::shared_ptr<Dict> attrs);
  Status charge(uint64_t bytes);
  Status check_string_size(uint64_t bytes) const;
  Status count_iterations(uint64_t n);

  Result<std::string> str(const Value& v) const { return to_str(v, budget()); }
  Result<Value> call(const Value& callee, CallArgs& args);
  // jinja's getattr (Python attribute first, then item) and getitem (item
  // first, then attribute for string keys); missing gives undefined.
  Result<Value> getattr(const Value& obj, const std::string& name);
  Result<Value> getitem(const Value& obj, const Value& key);
  // The items a for loop over `v` sees (dict: keys, str: characters).
  Result<std::vector<Value>> iterate(const Value& v);
  Result<bool> contains(const Value& container, const Value& item);
  Result<Value> binary(BinOp op, const Value& a, const Value& b);
  Result<Value> apply_filter(const std::string& name, const Value& v, CallArgs& args);
  Result<bool> apply_test(const std::string& name, const Value& v, CallArgs& args);
  Result<Value> invoke_macro(const MacroDef& m, const FramePtr& closure, CallArgs& args);

 private:
  Status exec_body(const Body& body, const FramePtr& frame, Flow& flow);
  Status exec(const Stmt& s, const FramePtr& frame, Flow& flow);
  Status exec_inner(const Stmt& s, const FramePtr& frame, Flow& flow);
  Status exec_for(const Stmt& s, const FramePtr& frame);
  Status exec_call_block(const Stmt& s, const FramePtr& frame);
  Status assign(const Target& t, const Value& v, const FramePtr& frame);
  Status emit(const Value& v);
  Status append_output(std::string_view text);
  Result<std::string> capture(const Body& body, const FramePtr& frame);

  Result<Value> eval(const Expr& e, const FramePtr& frame);
  Result<Value> eval_inner(const Expr& e, const FramePtr& frame);
  Result<Value> eval_name(const Expr& e, const FramePtr& frame);
  Result<Value> eval_getitem(const Expr& e, const FramePtr& frame);
  Result<Value> eval_call(const Expr& e, const FramePtr& frame, const Value* caller);
  Result<Value> eval_compare(const Expr& e, const FramePtr& frame);
  Result<Value> eval_concat(const Expr& e, const FramePtr& frame);
  Result<Value> eval_literal(const Expr& e, const FramePtr& frame);
  Status eval_args(const Expr& e, const FramePtr& frame, CallArgs& out);
  Result<Value> slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
  Value make_macro(const MacroDef& m, const FramePtr& closure);
  Result<Value> loop_attr(const LoopState& st, const Value& loop, const std::string& name);

  bool is_foldable(const Expr& e);
  Status at(uint32_t pos, const Status& s) const;  // adds the position unless present
  Status undefined_error(const Value& v) const;

  const std::string& source_;
  RenderOptions opts_;
  Vars globals_;
  const Vars* context_ = nullptr;
  std::string* out_ = nullptr;
  Value block_value_;  // body of the {% filter %} block being applied
  uint64_t allocated_ = 0;
  uint64_t iterations_ = 0;
  int macro_depth_ = 0;
  int eval_depth_ = 0;
  bool folding_output_ = false;  // evaluating a {{ }} that jinja would fold at compile time
  std::vector<FramePtr> captured_frames_;
  std::vector<std::shared_ptr<Dict>> namespaces_;
};

// Undefined's error, e.g. "'x' is undefined".
Status undefined_status(const Value& v);

// ---- built-ins (jinja_builtins.cpp) ----
Result<Value> builtin_filter(Interpreter& in, const std::string& name, const Value& v, CallArgs& args);
Result<bool> builtin_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args);
bool is_builtin_filter(const std::string& name);
bool is_builtin_test(const std::string& name);
// Methods of str, list and dict as Python has them. `unsafe` is set for the
// methods that would modify a value (refused, as in jinja's immutable sandbox).
bool has_method(const Value& obj, const std::string& name, bool* unsafe);
Result<Value> call_method(Interpreter& in, const Value& obj, const std::string& name, CallArgs& args);
Vars builtin_globals();
// Python's printf-style `fmt % args` (also the `format` filter).
Result<std::string> percent_format(Interpreter& in, const std::string& fmt, const Value& args);

// Binds call arguments to a Python-style signature. Parameters without a
// default that are not given come back empty.
struct Param {
  const char* name;
  std::optional<Value> def;
};
Result<std::vector<std::optional<Value>>> bind_args(const std::string& fname, CallArgs& args,
                                                    const std::vector<Param>& params);

}  // namespace strata::chat::jinja
