// Statement execution and expression evaluation with jinja2's semantics:
// scoping (loop bodies and macros get their own frame, `if` does not) and
// undefined values that are falsy and print as nothing but fail when used.
// The object protocol and arithmetic are in jinja_ops.cpp.
#include "runtime/chat/jinja_interp.h"

#include "runtime/chat/jinja_lexer.h"

namespace strata::chat::jinja {

// ---------------------------------------------------------------- Frame

const Value* Frame::find_local(std::string_view name) const {
  for (const auto& [k, v] : vars) {
    if (k == name) return &v;
  }
  return nullptr;
}

void Frame::set(const std::string& name, Value v) {
  for (auto& [k, old] : vars) {
    if (k == name) {
      old = std::move(v);
      return;
    }
  }
  vars.emplace_back(name, std::move(v));
}

Status undefined_status(const Value& v) {
  const std::string& hint = v.undefined_hint();
  return invalid_argument(hint.empty() ? "value is undefined" : hint);
}

// ---------------------------------------------------------------- setup

Interpreter::Interpreter(const std::string& source, const RenderOptions& opts) : source_(source), opts_(opts) {}

Interpreter::~Interpreter() {
  // Macros hold their defining frame and frames hold macros; namespaces can
  // hold themselves. Emptying them all here frees every cycle.
  for (auto& f : captured_frames_) f->vars.clear();
  for (auto& ns : namespaces_) ns->clear();
}

Result<std::string> Interpreter::run(const Body& body, const Vars& vars) {
  context_ = &vars;
  globals_ = builtin_globals();
  auto top = std::make_shared<Frame>();
  std::string out;
  out_ = &out;
  Flow flow = Flow::kNormal;
  Status st = exec_body(body, top, flow);
  out_ = nullptr;
  top->vars.clear();
  if (!st.is_ok()) return st;
  return out;
}

Status Interpreter::at(uint32_t pos, const Status& s) const {
  static const std::string kPrefix = "template line ";
  if (s.message().rfind(kPrefix, 0) == 0) return s;
  return {s.code(), "template " + describe_position(source_, pos) + ": " + s.message()};
}

Status Interpreter::undefined_error(const Value& v) const { return undefined_status(v); }

Status Interpreter::charge(uint64_t bytes) {
  allocated_ += bytes;
  if (allocated_ > opts_.limits.max_alloc_bytes) {
    return invalid_argument("expected the template to build at most " + std::to_string(opts_.limits.max_alloc_bytes) +
                            " bytes of values, got more");
  }
  return Status::ok();
}

Status Interpreter::count_iterations(uint64_t n) {
  iterations_ += n;
  if (iterations_ > opts_.limits.max_loop_iterations) {
    return invalid_argument("expected at most " + std::to_string(opts_.limits.max_loop_iterations) +
                            " loop iterations, got more");
  }
  return Status::ok();
}

Status Interpreter::check_string_size(uint64_t bytes) const {
  if (bytes > opts_.limits.max_output_bytes) {
    return invalid_argument("expected strings of at most " + std::to_string(opts_.limits.max_output_bytes) +
                            " bytes, got " + std::to_string(bytes));
  }
  return Status::ok();
}

Result<Value> Interpreter::new_string(std::string s) {
  STRATA_RETURN_IF_ERROR(check_string_size(s.size()));
  STRATA_RETURN_IF_ERROR(charge(s.size()));
  return Value::string(std::move(s));
}

Result<Value> Interpreter::new_list(std::vector<Value> items, bool is_tuple) {
  STRATA_RETURN_IF_ERROR(charge(items.size() * sizeof(Value)));
  Value v = Value::list(std::move(items), is_tuple);
  if (v.depth() > opts_.limits.max_value_depth) {
    return invalid_argument("expected lists nested at most " + std::to_string(opts_.limits.max_value_depth) +
                            " deep, got deeper");
  }
  return v;
}

Result<Value> Interpreter::new_iter(std::vector<Value> items, IterFlavor flavor) {
  STRATA_ASSIGN_OR_RETURN(Value list, new_list(std::move(items)));
  std::vector<Value> moved = std::move(list.list_ptr()->items);
  return Value::iter(std::move(moved), flavor);
}

Result<Value> Interpreter::new_dict(std::shared_ptr<Dict> d) {
  STRATA_RETURN_IF_ERROR(charge(d->entries.size() * 2 * sizeof(Value)));
  if (d->depth > opts_.limits.max_value_depth) {
    return invalid_argument("expected dicts nested at most " + std::to_string(opts_.limits.max_value_depth) +
                            " deep, got deeper");
  }
  return Value::dict(std::move(d));
}

Result<Value> Interpreter::new_namespace(std::shared_ptr<Dict> attrs) {
  STRATA_RETURN_IF_ERROR(charge(attrs->entries.size() * 2 * sizeof(Value) + sizeof(Dict)));
  namespaces_.push_back(attrs);
  return Value::ns(std::move(attrs));
}

// ---------------------------------------------------------------- statements

Status Interpreter::append_output(std::string_view text) {
  if (out_->size() + text.size() > opts_.limits.max_output_bytes) {
    return invalid_argument("expected output of at most " + std::to_string(opts_.limits.max_output_bytes) +
                            " bytes, got more");
  }
  out_->append(text);
  return Status::ok();
}

Status Interpreter::emit(const Value& v) {
  if (v.is_string()) return append_output(v.str());
  if (v.is_undefined()) return Status::ok();
  STRATA_ASSIGN_OR_RETURN(std::string s, str(v));
  return append_output(s);
}

Result<std::string> Interpreter::capture(const Body& body, const FramePtr& frame) {
  std::string buf;
  std::string* saved = out_;
  out_ = &buf;
  Flow flow = Flow::kNormal;
  Status st = exec_body(body, frame, flow);
  out_ = saved;
  if (!st.is_ok()) return st;
  STRATA_RETURN_IF_ERROR(charge(buf.size()));
  return buf;
}

Status Interpreter::exec_body(const Body& body, const FramePtr& frame, Flow& flow) {
  for (const auto& s : body) {
    STRATA_RETURN_IF_ERROR(exec(*s, frame, flow));
    if (flow != Flow::kNormal) return Status::ok();
  }
  return Status::ok();
}

// Whether jinja's optimizer evaluates `e` when it compiles the template:
// literals and operators, tests and context-free filters over them, and a
// conditional whose constant test picks a constant branch. Such expressions
// read no variables and call nothing, so evaluating a test here is safe.
bool Interpreter::is_foldable(const Expr& e) {
  // Filters that need the render context are never folded.
  static const char* const kContextFilters[] = {"map", "select", "reject", "selectattr", "rejectattr"};
  switch (e.kind) {
    case ExprKind::kConst: return true;
    case ExprKind::kName:
    case ExprKind::kCall:
    case ExprKind::kBlockValue: return false;
    case ExprKind::kFilter:
      if (!e.a) return false;
      for (const char* f : kContextFilters) {
        if (e.name == f) return false;
      }
      break;
    case ExprKind::kCond: {
      if (!is_foldable(*e.b)) return false;
      auto test = eval(*e.b, std::make_shared<Frame>());
      if (!test.is_ok()) return false;
      if (test->truthy()) return is_foldable(*e.a);
      return e.c && is_foldable(*e.c);
    }
    default: break;
  }
  for (const Expr* child : {e.a.get(), e.b.get(), e.c.get()}) {
    if (child && !is_foldable(*child)) return false;
  }
  for (const auto& item : e.items) {
    if (!is_foldable(*item)) return false;
  }
  for (const auto& kw : e.kwargs) {
    if (!is_foldable(*kw.second)) return false;
  }
  return !e.dyn_args && !e.dyn_kwargs;
}

static FramePtr child_frame(const FramePtr& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

Status Interpreter::exec(const Stmt& s, const FramePtr& frame, Flow& flow) {
  // Statements nest inside macros that recurse: they share the depth budget.
  if (eval_depth_ >= opts_.limits.max_eval_depth) {
    return at(s.pos, invalid_argument("expected evaluation nested at most " +
                                      std::to_string(opts_.limits.max_eval_depth) + " deep, got deeper"));
  }
  ++eval_depth_;
  Status st = exec_inner(s, frame, flow);
  --eval_depth_;
  return st;
}

Status Interpreter::exec_inner(const Stmt& s, const FramePtr& frame, Flow& flow) {
  switch (s.kind) {
    case StmtKind::kData: return append_output(s.text);
    case StmtKind::kOutput: {
      // jinja evaluates a wholly constant {{ }} expression while compiling,
      // with slices going through its forgiving getitem (see eval_getitem).
      const bool saved = folding_output_;
      folding_output_ = is_foldable(*s.expr);
      auto r = eval(*s.expr, frame);
      folding_output_ = saved;
      STRATA_ASSIGN_OR_RETURN(Value v, std::move(r));
      Status st = emit(v);
      return st.is_ok() ? st : at(s.expr->pos, st);
    }
    case StmtKind::kIf:
      for (const auto& [test, body] : s.branches) {
        STRATA_ASSIGN_OR_RETURN(Value c, eval(*test, frame));
        if (c.truthy()) return exec_body(body, frame, flow);
      }
      return exec_body(s.else_body, frame, flow);
    case StmtKind::kFor: return exec_for(s, frame);
    case StmtKind::kSet: {
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*s.expr, frame));
      return assign(s.target, v, frame);
    }
    case StmtKind::kSetBlock: {
      STRATA_ASSIGN_OR_RETURN(std::string text, capture(s.body, child_frame(frame)));
      STRATA_ASSIGN_OR_RETURN(Value v, new_string(std::move(text)));
      if (s.expr) {
        block_value_ = v;
        STRATA_ASSIGN_OR_RETURN(v, eval(*s.expr, frame));
      }
      return assign(s.target, v, frame);
    }
    case StmtKind::kMacro: frame->set(s.macro->name, make_macro(*s.macro, frame)); return Status::ok();
    case StmtKind::kCallBlock: return exec_call_block(s, frame);
    case StmtKind::kFilterBlock: {
      STRATA_ASSIGN_OR_RETURN(std::string text, capture(s.body, child_frame(frame)));
      STRATA_ASSIGN_OR_RETURN(block_value_, new_string(std::move(text)));
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*s.expr, frame));
      return emit(v);
    }
    case StmtKind::kWith: {
      auto inner = child_frame(frame);
      for (size_t i = 0; i < s.with_targets.size(); ++i) {
        STRATA_ASSIGN_OR_RETURN(Value v, eval(*s.with_values[i], frame));
        STRATA_RETURN_IF_ERROR(assign(s.with_targets[i], v, inner));
      }
      return exec_body(s.body, inner, flow);
    }
    case StmtKind::kBreak: flow = Flow::kBreak; return Status::ok();
    case StmtKind::kContinue: flow = Flow::kContinue; return Status::ok();
    case StmtKind::kScope: {
      Flow inner_flow = Flow::kNormal;
      return exec_body(s.body, child_frame(frame), inner_flow);
    }
  }
  return Status::ok();
}

Status Interpreter::exec_for(const Stmt& s, const FramePtr& frame) {
  STRATA_ASSIGN_OR_RETURN(Value iterable, eval(*s.expr, frame));
  auto items_or = iterate(iterable);
  if (!items_or.is_ok()) return at(s.expr->pos, items_or.status());
  std::vector<Value> items = std::move(items_or).value();
  if (s.cond) {
    std::vector<Value> kept;
    for (auto& item : items) {
      Status st = count_iterations(1);
      if (!st.is_ok()) return at(s.pos, st);
      auto scope = child_frame(frame);
      STRATA_RETURN_IF_ERROR(assign(s.target, item, scope));
      STRATA_ASSIGN_OR_RETURN(Value keep, eval(*s.cond, scope));
      if (keep.truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    Flow flow = Flow::kNormal;
    return exec_body(s.else_body, child_frame(frame), flow);
  }
  auto state = std::make_shared<LoopState>();
  state->items = std::make_shared<List>();
  state->items->items = std::move(items);
  const Value loop = Value::loop(state);
  const size_t n = state->items->items.size();
  for (size_t i = 0; i < n; ++i) {
    Status st = count_iterations(1);
    if (!st.is_ok()) return at(s.pos, st);
    state->index0 = i;
    auto scope = child_frame(frame);
    STRATA_RETURN_IF_ERROR(assign(s.target, state->items->items[i], scope));
    scope->set("loop", loop);
    Flow flow = Flow::kNormal;
    STRATA_RETURN_IF_ERROR(exec_body(s.body, scope, flow));
    if (flow == Flow::kBreak) break;
  }
  return Status::ok();
}

Status Interpreter::exec_call_block(const Stmt& s, const FramePtr& frame) {
  const Value caller = make_macro(*s.macro, frame);
  STRATA_ASSIGN_OR_RETURN(Value v, eval_call(*s.expr, frame, &caller));
  Status st = emit(v);
  return st.is_ok() ? st : at(s.pos, st);
}

Status Interpreter::assign(const Target& t, const Value& v, const FramePtr& frame) {
  switch (t.kind) {
    case Target::Kind::kName: frame->set(t.names[0], v); return Status::ok();
    case Target::Kind::kTuple: {
      auto items = iterate(v);
      if (!items.is_ok()) return at(t.pos, items.status());
      if (items->size() < t.names.size()) {
        return at(t.pos, invalid_argument("not enough values to unpack (expected " + std::to_string(t.names.size()) +
                                          ", got " + std::to_string(items->size()) + ")"));
      }
      if (items->size() > t.names.size()) {
        return at(t.pos,
                  invalid_argument("too many values to unpack (expected " + std::to_string(t.names.size()) + ")"));
      }
      for (size_t i = 0; i < t.names.size(); ++i) frame->set(t.names[i], (*items)[i]);
      return Status::ok();
    }
    case Target::Kind::kNsAttr: {
      const Value* target = nullptr;
      for (const Frame* f = frame.get(); f && !target; f = f->parent.get()) target = f->find_local(t.names[0]);
      if (!target) {
        for (const auto& [k, val] : *context_) {
          if (k == t.names[0]) target = &val;
        }
      }
      if (!target || !target->is_namespace()) {
        return at(t.pos, invalid_argument("cannot assign attribute on non-namespace object"));
      }
      target->dict_ptr()->set(Value::string(t.attr), v);
      return Status::ok();
    }
  }
  return Status::ok();
}

// ---------------------------------------------------------------- macros

Value Interpreter::make_macro(const MacroDef& m, const FramePtr& closure) {
  captured_frames_.push_back(closure);
  const MacroDef* def = &m;
  return Value::callable(m.name, [def, closure](Interpreter& in, CallArgs& args) {
    return in.invoke_macro(*def, closure, args);
  });
}

Result<Value> Interpreter::invoke_macro(const MacroDef& m, const FramePtr& closure, CallArgs& args) {
  if (macro_depth_ >= opts_.limits.max_macro_depth) {
    return invalid_argument("expected macro calls nested at most " + std::to_string(opts_.limits.max_macro_depth) +
                            " deep, got deeper (runaway recursion?)");
  }
  auto frame = child_frame(closure);
  const size_t np = m.params.size();
  std::vector<bool> bound(np, false);
  std::vector<Value> extra;
  for (size_t i = 0; i < args.args.size(); ++i) {
    if (i < np) {
      frame->set(m.params[i], args.args[i]);
      bound[i] = true;
    } else {
      extra.push_back(args.args[i]);
    }
  }
  if (!extra.empty() && !m.catch_varargs) {
    return invalid_argument("macro '" + m.name + "' takes not more than " + std::to_string(np) + " argument(s)");
  }
  auto kwargs = std::make_shared<Dict>();
  Value caller = Value::undefined("No caller defined");
  for (auto& [k, v] : args.kwargs) {
    size_t idx = np;
    for (size_t i = 0; i < np; ++i) {
      if (m.params[i] == k) idx = i;
    }
    if (idx < np) {
      if (bound[idx]) return invalid_argument("macro '" + m.name + "' got multiple values for argument '" + k + "'");
      frame->set(k, v);
      bound[idx] = true;
    } else if (k == "caller" && m.uses_caller) {
      caller = v;
    } else if (m.catch_kwargs) {
      kwargs->set(Value::string(k), v);
    } else {
      return invalid_argument("macro '" + m.name + "' takes no keyword argument '" + k + "'");
    }
  }
  ++macro_depth_;
  const size_t first_default = np - m.defaults.size();
  for (size_t i = 0; i < np; ++i) {
    if (bound[i]) continue;
    if (i >= first_default) {
      auto d = eval(*m.defaults[i - first_default], frame);
      if (!d.is_ok()) {
        --macro_depth_;
        return d.status();
      }
      frame->set(m.params[i], std::move(d).value());
    } else {
      frame->set(m.params[i], Value::undefined("parameter '" + m.params[i] + "' was not provided"));
    }
  }
  if (m.catch_varargs) frame->set("varargs", Value::list(std::move(extra), true));
  if (m.catch_kwargs) frame->set("kwargs", Value::dict(kwargs));
  if (m.uses_caller) frame->set("caller", caller);
  auto text = capture(m.body, frame);
  --macro_depth_;
  frame->vars.clear();
  if (!text.is_ok()) return text.status();
  return Value::string(std::move(text).value());
}

// ---------------------------------------------------------------- expressions

Result<Value> Interpreter::eval(const Expr& e, const FramePtr& frame) {
  if (eval_depth_ >= opts_.limits.max_eval_depth) {
    return at(e.pos, invalid_argument("expected evaluation nested at most " +
                                      std::to_string(opts_.limits.max_eval_depth) + " deep, got deeper"));
  }
  ++eval_depth_;
  auto r = eval_inner(e, frame);
  --eval_depth_;
  if (!r.is_ok()) return at(e.pos, r.status());
  if (r->depth() > opts_.limits.max_value_depth) {
    return at(e.pos, invalid_argument("expected values nested at most " +
                                      std::to_string(opts_.limits.max_value_depth) + " deep, got deeper"));
  }
  return r;
}

Result<Value> Interpreter::eval_inner(const Expr& e, const FramePtr& frame) {
  switch (e.kind) {
    case ExprKind::kConst: return e.value;
    case ExprKind::kName: return eval_name(e, frame);
    case ExprKind::kGetAttr: {
      STRATA_ASSIGN_OR_RETURN(Value obj, eval(*e.a, frame));
      if (obj.is_undefined()) return undefined_error(obj);
      return getattr(obj, e.name);
    }
    case ExprKind::kGetItem: return eval_getitem(e, frame);
    case ExprKind::kSlice: return invalid_argument("a slice is only valid inside []");
    case ExprKind::kCall: return eval_call(e, frame, nullptr);
    case ExprKind::kFilter: {
      Value v = block_value_;
      if (e.a) {
        STRATA_ASSIGN_OR_RETURN(v, eval(*e.a, frame));
      }
      CallArgs args;
      STRATA_RETURN_IF_ERROR(eval_args(e, frame, args));
      return apply_filter(e.name, v, args);
    }
    case ExprKind::kTest: {
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*e.a, frame));
      CallArgs args;
      STRATA_RETURN_IF_ERROR(eval_args(e, frame, args));
      STRATA_ASSIGN_OR_RETURN(bool r, apply_test(e.name, v, args));
      return Value::boolean(r);
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*e.a, frame));
      if (v.is_undefined()) return undefined_error(v);
      const bool neg = e.kind == ExprKind::kNeg;
      if (v.is_float()) return Value::number(neg ? -v.as_double() : v.as_double());
      if (v.is_int() || v.is_bool()) {
        if (neg && v.as_int() == INT64_MIN) return invalid_argument("integer overflow");
        return Value::integer(neg ? -v.as_int() : v.as_int());
      }
      return invalid_argument(std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" +
                              v.type_name() + "'");
    }
    case ExprKind::kNot: {
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*e.a, frame));
      return Value::boolean(!v.truthy());
    }
    case ExprKind::kBinary: {
      STRATA_ASSIGN_OR_RETURN(Value a, eval(*e.a, frame));
      STRATA_ASSIGN_OR_RETURN(Value b, eval(*e.b, frame));
      return binary(e.op, a, b);
    }
    case ExprKind::kAnd: {
      STRATA_ASSIGN_OR_RETURN(Value a, eval(*e.a, frame));
      if (!a.truthy()) return a;
      return eval(*e.b, frame);
    }
    case ExprKind::kOr: {
      STRATA_ASSIGN_OR_RETURN(Value a, eval(*e.a, frame));
      if (a.truthy()) return a;
      return eval(*e.b, frame);
    }
    case ExprKind::kCompare: return eval_compare(e, frame);
    case ExprKind::kConcat: return eval_concat(e, frame);
    case ExprKind::kCond: {
      STRATA_ASSIGN_OR_RETURN(Value test, eval(*e.b, frame));
      if (test.truthy()) return eval(*e.a, frame);
      if (e.c) return eval(*e.c, frame);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
    case ExprKind::kList:
    case ExprKind::kTuple:
    case ExprKind::kDict: return eval_literal(e, frame);
    case ExprKind::kBlockValue: return block_value_;
  }
  return internal_error("unknown expression kind");
}

Result<Value> Interpreter::eval_name(const Expr& e, const FramePtr& frame) {
  for (const Frame* f = frame.get(); f; f = f->parent.get()) {
    if (const Value* v = f->find_local(e.name)) return *v;
  }
  for (const auto& [k, v] : *context_) {
    if (k == e.name) return v;
  }
  for (const auto& [k, v] : globals_) {
    if (k == e.name) return v;
  }
  return Value::undefined("'" + e.name + "' is undefined");
}

Result<Value> Interpreter::eval_getitem(const Expr& e, const FramePtr& frame) {
  STRATA_ASSIGN_OR_RETURN(Value obj, eval(*e.a, frame));
  if (e.b->kind == ExprKind::kSlice) {
    Value start = Value::none(), stop = Value::none(), step = Value::none();
    const Expr& s = *e.b;
    if (s.a) {
      STRATA_ASSIGN_OR_RETURN(start, eval(*s.a, frame));
    }
    if (s.b) {
      STRATA_ASSIGN_OR_RETURN(stop, eval(*s.b, frame));
    }
    if (s.c) {
      STRATA_ASSIGN_OR_RETURN(step, eval(*s.c, frame));
    }
    if (obj.is_undefined()) return undefined_error(obj);
    auto r = slice(obj, start, stop, step);
    // A slice is a plain Python subscript at run time, so it fails where x[i]
    // would give undefined, except in output that jinja folds while compiling.
    const bool zero_step = (step.is_int() || step.is_bool()) && step.as_int() == 0;  // a ValueError
    if (!r.is_ok() && !zero_step && folding_output_) return Value::undefined(r.status().message());
    return r;
  }
  STRATA_ASSIGN_OR_RETURN(Value key, eval(*e.b, frame));
  if (obj.is_undefined()) return undefined_error(obj);
  return getitem(obj, key);
}

Status Interpreter::eval_args(const Expr& e, const FramePtr& frame, CallArgs& out) {
  for (const auto& a : e.items) {
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*a, frame));
    out.args.push_back(std::move(v));
  }
  for (const auto& [k, a] : e.kwargs) {
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*a, frame));
    out.kwargs.emplace_back(k, std::move(v));
  }
  if (e.dyn_args) {
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*e.dyn_args, frame));
    STRATA_ASSIGN_OR_RETURN(auto items, iterate(v));
    for (auto& item : items) out.args.push_back(std::move(item));
  }
  if (e.dyn_kwargs) {
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*e.dyn_kwargs, frame));
    if (!v.is_dict()) return invalid_argument(std::string("argument after ** must be a mapping, not ") + v.type_name());
    for (const auto& [k, val] : v.dict_ref().entries) {
      if (!k.is_string()) return invalid_argument("keywords must be strings");
      out.kwargs.emplace_back(k.str(), val);
    }
  }
  return Status::ok();
}

Result<Value> Interpreter::eval_call(const Expr& e, const FramePtr& frame, const Value* caller) {
  STRATA_ASSIGN_OR_RETURN(Value callee, eval(*e.a, frame));
  CallArgs args;
  STRATA_RETURN_IF_ERROR(eval_args(e, frame, args));
  if (caller) args.kwargs.emplace_back("caller", *caller);
  return call(callee, args);
}

Result<Value> Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_callable()) return callee.fn().fn(*this, args);
  if (callee.is_undefined()) return undefined_error(callee);
  return invalid_argument(std::string("'") + callee.type_name() + "' object is not callable");
}

Result<Value> Interpreter::eval_compare(const Expr& e, const FramePtr& frame) {
  STRATA_ASSIGN_OR_RETURN(Value left, eval(*e.items[0], frame));
  for (size_t i = 0; i < e.cmp_ops.size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(Value right, eval(*e.items[i + 1], frame));
    bool r = false;
    const CmpOp op = e.cmp_ops[i];
    switch (op) {
      case CmpOp::kEq: r = py_equal(left, right); break;
      case CmpOp::kNe: r = !py_equal(left, right); break;
      case CmpOp::kIn:
      case CmpOp::kNotIn: {
        STRATA_ASSIGN_OR_RETURN(r, contains(right, left));
        if (op == CmpOp::kNotIn) r = !r;
        break;
      }
      default: {
        if (left.is_undefined()) return undefined_error(left);
        if (right.is_undefined()) return undefined_error(right);
        const bool swap = op == CmpOp::kGt || op == CmpOp::kLe;
        STRATA_ASSIGN_OR_RETURN(bool lt, swap ? py_less(right, left) : py_less(left, right));
        if (op == CmpOp::kLt || op == CmpOp::kGt) {
          r = lt;
        } else {
          // a <= b is not (b < a) for orderable values; NaN aside.
          r = !lt;
        }
        break;
      }
    }
    if (!r) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Result<Value> Interpreter::eval_concat(const Expr& e, const FramePtr& frame) {
  std::string out;
  for (const auto& part : e.items) {
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*part, frame));
    STRATA_ASSIGN_OR_RETURN(std::string s, str(v));
    STRATA_RETURN_IF_ERROR(check_string_size(out.size() + s.size()));
    out += s;
  }
  return new_string(std::move(out));
}

Result<Value> Interpreter::eval_literal(const Expr& e, const FramePtr& frame) {
  if (e.kind == ExprKind::kDict) {
    auto d = std::make_shared<Dict>();
    for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
      STRATA_ASSIGN_OR_RETURN(Value k, eval(*e.items[i], frame));
      STRATA_ASSIGN_OR_RETURN(Value v, eval(*e.items[i + 1], frame));
      STRATA_RETURN_IF_ERROR(key_id(k).status());
      d->set(std::move(k), std::move(v));
    }
    return new_dict(std::move(d));
  }
  std::vector<Value> items;
  items.reserve(e.items.size());
  for (const auto& item : e.items) {
    STRATA_ASSIGN_OR_RETURN(Value v, eval(*item, frame));
    items.push_back(std::move(v));
  }
  return new_list(std::move(items), e.kind == ExprKind::kTuple);
}

}  // namespace strata::chat::jinja
