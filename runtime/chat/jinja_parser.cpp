// Recursive-descent parser for the template language. Each parse_* function
// matches one level of jinja2's grammar; errors say what was expected and
// what was found, with the position.
#include "runtime/chat/jinja_parser.h"

#include <algorithm>
#include <set>

namespace strata::chat::jinja {
namespace {

class Parser {
 public:
  Parser(const std::string& src, const std::vector<Token>& toks) : src_(src), toks_(toks) {}

  Result<Body> run() {
    STRATA_ASSIGN_OR_RETURN(Body body, subparse({}));
    if (cur().type != Tok::kEof) return fail(cur(), "unexpected '" + describe(cur()) + "'");
    return body;
  }

 private:
  // ---- token stream ----
  const Token& cur() const { return toks_[pos_]; }
  const Token& look(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op) const { return cur().type == Tok::kOp && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == Tok::kName && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::kData: return "template data";
      case Tok::kVarBegin: return "begin of print statement";
      case Tok::kVarEnd: return "end of print statement";
      case Tok::kBlockBegin: return "begin of statement block";
      case Tok::kBlockEnd: return "end of statement block";
      case Tok::kName:
      case Tok::kOp: return t.text;
      case Tok::kString: return "string";
      case Tok::kInt: return "integer";
      case Tok::kFloat: return "float";
      case Tok::kEof: return "end of template";
    }
    return "token";
  }

  Status fail(const Token& at, const std::string& msg) const {
    return invalid_argument("template " + describe_position(src_, at.offset) + ": " + msg);
  }
  Status expect_op(const char* op) {
    if (skip_op(op)) return Status::ok();
    return fail(cur(), std::string("expected '") + op + "', got '" + describe(cur()) + "'");
  }
  Status expect(Tok type, const char* what) {
    if (cur().type == type) {
      next();
      return Status::ok();
    }
    return fail(cur(), std::string("expected '") + what + "', got '" + describe(cur()) + "'");
  }
  Result<std::string> expect_name() {
    if (cur().type != Tok::kName) return fail(cur(), "expected a name, got '" + describe(cur()) + "'");
    return next().text;
  }

  // Bounds recursion; released by the guard's destructor.
  struct DepthGuard {
    explicit DepthGuard(int& d) : d_(d) { ++d_; }
    ~DepthGuard() { --d_; }
    int& d_;
  };
  Status check_depth() const {
    if (depth_ > kMaxParseDepth) {
      return fail(cur(), "expected nesting at most " + std::to_string(kMaxParseDepth) + " deep, got deeper");
    }
    return Status::ok();
  }

  static ExprPtr make(ExprKind kind, uint32_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // ---- statements ----

  // Parses until a block whose first name is one of `end_names` (left as the
  // current token, its "{%" consumed) or the end of the template.
  Result<Body> subparse(const std::vector<std::string>& end_names) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::kEof) return body;
      if (t.type == Tok::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kData;
        s->pos = t.offset;
        s->text = t.text;
        next();
        body.push_back(std::move(s));
        continue;
      }
      if (t.type == Tok::kVarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->pos = t.offset;
        STRATA_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, true, {}, false));
        STRATA_RETURN_IF_ERROR(expect(Tok::kVarEnd, "end of print statement"));
        body.push_back(std::move(s));
        continue;
      }
      if (t.type == Tok::kBlockBegin) {
        next();
        if (cur().type == Tok::kName &&
            std::find(end_names.begin(), end_names.end(), cur().text) != end_names.end()) {
          return body;
        }
        STRATA_ASSIGN_OR_RETURN(StmtPtr s, parse_statement());
        STRATA_RETURN_IF_ERROR(expect(Tok::kBlockEnd, "end of statement block"));
        body.push_back(std::move(s));
        continue;
      }
      return fail(t, "unexpected '" + describe(t) + "'");
    }
  }

  // After a tag's arguments: "%}" then the body up to one of `end_names`.
  // With drop_needle the end name is consumed (its "%}" is left).
  Result<Body> parse_statements(const std::vector<std::string>& end_names, bool drop_needle) {
    skip_op(":");
    STRATA_RETURN_IF_ERROR(expect(Tok::kBlockEnd, "end of statement block"));
    STRATA_ASSIGN_OR_RETURN(Body body, subparse(end_names));
    if (cur().type == Tok::kEof) {
      std::string names;
      for (const auto& n : end_names) names += (names.empty() ? "'" : " or '") + n + "'";
      return fail(cur(), "unexpected end of template, expected " + names);
    }
    if (drop_needle) next();
    return body;
  }

  Result<StmtPtr> parse_statement() {
    DepthGuard guard(depth_);
    STRATA_RETURN_IF_ERROR(check_depth());
    const Token& t = cur();
    if (t.type != Tok::kName) return fail(t, "expected a tag name, got '" + describe(t) + "'");
    const std::string& n = t.text;
    if (n == "if") return parse_if();
    if (n == "for") return parse_for();
    if (n == "set") return parse_set();
    if (n == "macro") return parse_macro();
    if (n == "call") return parse_call_block();
    if (n == "filter") return parse_filter_block();
    if (n == "with") return parse_with();
    if (n == "print") return parse_print();
    if (n == "generation") return parse_scope("endgeneration");
    if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) return fail(t, "'" + n + "' outside loop");
      auto s = std::make_unique<Stmt>();
      s->kind = n == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      s->pos = t.offset;
      next();
      return s;
    }
    if (n == "include" || n == "import" || n == "from" || n == "extends" || n == "block") {
      return fail(t, "expected a self-contained template, got '" + n + "' (templates cannot load other templates)");
    }
    if (n == "autoescape") return fail(t, "'autoescape' is not supported");
    return fail(t, "encountered unknown tag '" + n + "'");
  }

  Result<StmtPtr> parse_if() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kIf;
    s->pos = next().offset;
    while (true) {
      STRATA_ASSIGN_OR_RETURN(ExprPtr test, parse_tuple(false, false, {}, false));
      STRATA_ASSIGN_OR_RETURN(Body body, parse_statements({"elif", "else", "endif"}, false));
      s->branches.emplace_back(std::move(test), std::move(body));
      const std::string tag = next().text;
      if (tag == "elif") continue;
      if (tag == "else") {
        STRATA_ASSIGN_OR_RETURN(s->else_body, parse_statements({"endif"}, true));
      }
      break;
    }
    return s;
  }

  Result<StmtPtr> parse_for() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kFor;
    s->pos = next().offset;
    STRATA_ASSIGN_OR_RETURN(s->target, parse_assign_target(false, {"in"}));
    if (!skip_name("in")) return fail(cur(), "expected 'in', got '" + describe(cur()) + "'");
    STRATA_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, false, {"recursive"}, false));
    if (skip_name("if")) {
      STRATA_ASSIGN_OR_RETURN(s->cond, parse_expression(true));
    }
    if (skip_name("recursive")) return fail(cur(), "recursive for loops are not supported");
    ++loop_depth_;
    auto body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (!body.is_ok()) return body.status();
    s->body = std::move(body).value();
    if (next().text == "else") {
      STRATA_ASSIGN_OR_RETURN(s->else_body, parse_statements({"endfor"}, true));
    }
    return s;
  }

  Result<StmtPtr> parse_set() {
    auto s = std::make_unique<Stmt>();
    s->pos = next().offset;
    STRATA_ASSIGN_OR_RETURN(s->target, parse_assign_target(true, {}));
    if (skip_op("=")) {
      s->kind = StmtKind::kSet;
      STRATA_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, true, {}, false));
      return s;
    }
    s->kind = StmtKind::kSetBlock;
    if (is_op("|")) {
      STRATA_ASSIGN_OR_RETURN(s->expr, parse_filter(make(ExprKind::kBlockValue, cur().offset), false));
    }
    STRATA_ASSIGN_OR_RETURN(s->body, parse_statements({"endset"}, true));
    return s;
  }

  Result<std::unique_ptr<MacroDef>> parse_signature(std::unique_ptr<MacroDef> m) {
    STRATA_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (!m->params.empty()) STRATA_RETURN_IF_ERROR(expect_op(","));
      STRATA_ASSIGN_OR_RETURN(std::string p, expect_name());
      if (skip_op("=")) {
        STRATA_ASSIGN_OR_RETURN(ExprPtr d, parse_expression(true));
        m->defaults.push_back(std::move(d));
      } else if (!m->defaults.empty()) {
        return fail(cur(), "non-default argument follows default argument");
      }
      m->params.push_back(std::move(p));
    }
    next();
    return m;
  }

  // Parses a macro-like body, recording which of varargs/kwargs/caller it reads.
  Status parse_macro_body(MacroDef& m, const char* end_name) {
    names_read_.emplace_back();
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    auto body = parse_statements({end_name}, true);
    loop_depth_ = saved_loops;
    std::set<std::string> read = std::move(names_read_.back());
    names_read_.pop_back();
    if (!names_read_.empty()) names_read_.back().insert(read.begin(), read.end());
    if (!body.is_ok()) return body.status();
    m.body = std::move(body).value();
    m.catch_varargs = read.count("varargs") > 0;
    m.catch_kwargs = read.count("kwargs") > 0;
    m.uses_caller = read.count("caller") > 0;
    return Status::ok();
  }

  Result<StmtPtr> parse_macro() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kMacro;
    s->pos = next().offset;
    auto m = std::make_unique<MacroDef>();
    m->pos = s->pos;
    STRATA_ASSIGN_OR_RETURN(m->name, expect_name());
    STRATA_ASSIGN_OR_RETURN(m, parse_signature(std::move(m)));
    STRATA_RETURN_IF_ERROR(parse_macro_body(*m, "endmacro"));
    s->macro = std::move(m);
    return s;
  }

  Result<StmtPtr> parse_call_block() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kCallBlock;
    s->pos = next().offset;
    auto m = std::make_unique<MacroDef>();
    m->name = "caller";
    m->pos = s->pos;
    if (is_op("(")) {
      STRATA_ASSIGN_OR_RETURN(m, parse_signature(std::move(m)));
    }
    STRATA_ASSIGN_OR_RETURN(s->expr, parse_expression(true));
    if (s->expr->kind != ExprKind::kCall) return fail(cur(), "expected a call after 'call'");
    STRATA_RETURN_IF_ERROR(parse_macro_body(*m, "endcall"));
    s->macro = std::move(m);
    return s;
  }

  Result<StmtPtr> parse_filter_block() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kFilterBlock;
    s->pos = next().offset;
    STRATA_ASSIGN_OR_RETURN(s->expr, parse_filter(make(ExprKind::kBlockValue, cur().offset), true));
    STRATA_ASSIGN_OR_RETURN(s->body, parse_statements({"endfilter"}, true));
    return s;
  }

  Result<StmtPtr> parse_with() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kWith;
    s->pos = next().offset;
    while (cur().type != Tok::kBlockEnd) {
      if (!s->with_targets.empty()) STRATA_RETURN_IF_ERROR(expect_op(","));
      STRATA_ASSIGN_OR_RETURN(Target t, parse_assign_target(false, {}));
      STRATA_RETURN_IF_ERROR(expect_op("="));
      STRATA_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
      s->with_targets.push_back(std::move(t));
      s->with_values.push_back(std::move(v));
    }
    STRATA_ASSIGN_OR_RETURN(s->body, parse_statements({"endwith"}, true));
    return s;
  }

  // {% print a, b %}: each expression printed in turn.
  Result<StmtPtr> parse_print() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kScope;
    s->pos = next().offset;
    while (cur().type != Tok::kBlockEnd) {
      if (!s->body.empty()) STRATA_RETURN_IF_ERROR(expect_op(","));
      auto out = std::make_unique<Stmt>();
      out->kind = StmtKind::kOutput;
      out->pos = cur().offset;
      STRATA_ASSIGN_OR_RETURN(out->expr, parse_expression(true));
      s->body.push_back(std::move(out));
    }
    return s;
  }

  Result<StmtPtr> parse_scope(const char* end_name) {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kScope;
    s->pos = next().offset;
    STRATA_ASSIGN_OR_RETURN(s->body, parse_statements({end_name}, true));
    return s;
  }

  // A name, names separated by commas, or (with_namespace) name.attr.
  Result<Target> parse_assign_target(bool with_namespace, const std::vector<std::string>& extra_end) {
    Target t;
    t.pos = cur().offset;
    bool parens = skip_op("(");
    while (true) {
      if (cur().type != Tok::kName) return fail(cur(), "expected a name to assign to, got '" + describe(cur()) + "'");
      const std::string& n = cur().text;
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None") {
        return fail(cur(), "can't assign to '" + n + "'");
      }
      t.names.push_back(next().text);
      if (with_namespace && t.names.size() == 1 && !parens && is_op(".")) {
        next();
        STRATA_ASSIGN_OR_RETURN(t.attr, expect_name());
        t.kind = Target::Kind::kNsAttr;
        return t;
      }
      if (!skip_op(",")) break;
      t.kind = Target::Kind::kTuple;
      if (cur().type == Tok::kBlockEnd || is_op(")") || is_op("=") ||
          (cur().type == Tok::kName &&
           std::find(extra_end.begin(), extra_end.end(), cur().text) != extra_end.end())) {
        break;
      }
    }
    if (parens) {
      STRATA_RETURN_IF_ERROR(expect_op(")"));
      t.kind = Target::Kind::kTuple;
    }
    return t;
  }

  // ---- expressions ----

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    if (cur().type == Tok::kVarEnd || cur().type == Tok::kBlockEnd || is_op(")")) return true;
    return cur().type == Tok::kName &&
           std::find(extra_end.begin(), extra_end.end(), cur().text) != extra_end.end();
  }

  Result<ExprPtr> parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                              bool explicit_parens) {
    const uint32_t pos = cur().offset;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) STRATA_RETURN_IF_ERROR(expect_op(","));
      if (is_tuple_end(extra_end)) break;
      if (simplified) {
        STRATA_ASSIGN_OR_RETURN(ExprPtr e, parse_primary());
        args.push_back(std::move(e));
      } else {
        STRATA_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(with_condexpr));
        args.push_back(std::move(e));
      }
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) return fail(cur(), "expected an expression, got '" + describe(cur()) + "'");
    }
    auto t = make(ExprKind::kTuple, pos);
    t->items = std::move(args);
    return t;
  }

  Result<ExprPtr> parse_expression(bool with_condexpr) {
    DepthGuard guard(depth_);
    STRATA_RETURN_IF_ERROR(check_depth());
    if (!with_condexpr) return parse_or();
    const uint32_t pos = cur().offset;
    STRATA_ASSIGN_OR_RETURN(ExprPtr expr1, parse_or());
    while (skip_name("if")) {
      STRATA_ASSIGN_OR_RETURN(ExprPtr expr2, parse_or());
      ExprPtr expr3;
      if (skip_name("else")) {
        STRATA_ASSIGN_OR_RETURN(expr3, parse_expression(true));
      }
      auto c = make(ExprKind::kCond, pos);
      c->a = std::move(expr1);
      c->b = std::move(expr2);
      c->c = std::move(expr3);
      expr1 = std::move(c);
    }
    return expr1;
  }

  Result<ExprPtr> parse_or() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    while (is_name("or")) {
      const uint32_t pos = next().offset;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
      auto e = make(ExprKind::kOr, pos);
      e->a = std::move(left);
      e->b = std::move(right);
      left = std::move(e);
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    while (is_name("and")) {
      const uint32_t pos = next().offset;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
      auto e = make(ExprKind::kAnd, pos);
      e->a = std::move(left);
      e->b = std::move(right);
      left = std::move(e);
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    if (is_name("not")) {
      DepthGuard guard(depth_);
      STRATA_RETURN_IF_ERROR(check_depth());
      const uint32_t pos = next().offset;
      STRATA_ASSIGN_OR_RETURN(ExprPtr inner, parse_not());
      auto e = make(ExprKind::kNot, pos);
      e->a = std::move(inner);
      return e;
    }
    return parse_compare();
  }

  Result<ExprPtr> parse_compare() {
    const uint32_t pos = cur().offset;
    STRATA_ASSIGN_OR_RETURN(ExprPtr expr, parse_math1());
    std::vector<CmpOp> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      CmpOp op;
      if (is_op("==")) {
        op = CmpOp::kEq;
      } else if (is_op("!=")) {
        op = CmpOp::kNe;
      } else if (is_op("<")) {
        op = CmpOp::kLt;
      } else if (is_op("<=")) {
        op = CmpOp::kLe;
      } else if (is_op(">")) {
        op = CmpOp::kGt;
      } else if (is_op(">=")) {
        op = CmpOp::kGe;
      } else if (is_name("in")) {
        op = CmpOp::kIn;
      } else if (is_name("not") && look().type == Tok::kName && look().text == "in") {
        next();
        op = CmpOp::kNotIn;
      } else {
        break;
      }
      next();
      STRATA_ASSIGN_OR_RETURN(ExprPtr rhs, parse_math1());
      ops.push_back(op);
      operands.push_back(std::move(rhs));
    }
    if (ops.empty()) return expr;
    auto c = make(ExprKind::kCompare, pos);
    c->items.push_back(std::move(expr));
    for (auto& o : operands) c->items.push_back(std::move(o));
    c->cmp_ops = std::move(ops);
    return c;
  }

  Result<ExprPtr> binary(BinOp op, uint32_t pos, ExprPtr a, ExprPtr b) {
    auto e = make(ExprKind::kBinary, pos);
    e->op = op;
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  Result<ExprPtr> parse_math1() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, parse_concat());
    while (is_op("+") || is_op("-")) {
      const BinOp op = cur().text == "+" ? BinOp::kAdd : BinOp::kSub;
      const uint32_t pos = next().offset;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, parse_concat());
      STRATA_ASSIGN_OR_RETURN(left, binary(op, pos, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_concat() {
    const uint32_t pos = cur().offset;
    STRATA_ASSIGN_OR_RETURN(ExprPtr first, parse_math2());
    if (!is_op("~")) return first;
    auto c = make(ExprKind::kConcat, pos);
    c->items.push_back(std::move(first));
    while (skip_op("~")) {
      STRATA_ASSIGN_OR_RETURN(ExprPtr e, parse_math2());
      c->items.push_back(std::move(e));
    }
    return c;
  }

  Result<ExprPtr> parse_math2() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, parse_pow());
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string& t = cur().text;
      const BinOp op = t == "*" ? BinOp::kMul : t == "/" ? BinOp::kDiv : t == "//" ? BinOp::kFloorDiv : BinOp::kMod;
      const uint32_t pos = next().offset;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, parse_pow());
      STRATA_ASSIGN_OR_RETURN(left, binary(op, pos, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_pow() {
    STRATA_ASSIGN_OR_RETURN(ExprPtr left, parse_unary(true));
    while (is_op("**")) {
      const uint32_t pos = next().offset;
      STRATA_ASSIGN_OR_RETURN(ExprPtr right, parse_unary(true));
      STRATA_ASSIGN_OR_RETURN(left, binary(BinOp::kPow, pos, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_unary(bool with_filter) {
    DepthGuard guard(depth_);
    STRATA_RETURN_IF_ERROR(check_depth());
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const ExprKind kind = cur().text == "-" ? ExprKind::kNeg : ExprKind::kPos;
      const uint32_t pos = next().offset;
      STRATA_ASSIGN_OR_RETURN(ExprPtr inner, parse_unary(false));
      node = make(kind, pos);
      node->a = std::move(inner);
    } else {
      STRATA_ASSIGN_OR_RETURN(node, parse_primary());
    }
    STRATA_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) {
      STRATA_ASSIGN_OR_RETURN(node, parse_filter_expr(std::move(node)));
    }
    return node;
  }

  Result<ExprPtr> parse_primary() {
    DepthGuard guard(depth_);
    STRATA_RETURN_IF_ERROR(check_depth());
    const Token& t = cur();
    switch (t.type) {
      case Tok::kName: {
        next();
        auto e = make(ExprKind::kConst, t.offset);
        if (t.text == "true" || t.text == "True") {
          e->value = Value::boolean(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value::boolean(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = ExprKind::kName;
          e->name = t.text;
          if (!names_read_.empty()) names_read_.back().insert(t.text);
        }
        return e;
      }
      case Tok::kString: {
        auto e = make(ExprKind::kConst, t.offset);
        std::string s;
        while (cur().type == Tok::kString) s += next().text;
        e->value = Value::string(std::move(s));
        return e;
      }
      case Tok::kInt:
      case Tok::kFloat: {
        next();
        auto e = make(ExprKind::kConst, t.offset);
        e->value = t.type == Tok::kInt ? Value::integer(t.i) : Value::number(t.f);
        return e;
      }
      case Tok::kOp:
        if (t.text == "(") {
          next();
          STRATA_ASSIGN_OR_RETURN(ExprPtr e, parse_tuple(false, true, {}, true));
          STRATA_RETURN_IF_ERROR(expect_op(")"));
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    return fail(t, "unexpected '" + describe(t) + "'");
  }

  Result<ExprPtr> parse_list() {
    auto e = make(ExprKind::kList, next().offset);
    while (!is_op("]")) {
      if (!e->items.empty()) STRATA_RETURN_IF_ERROR(expect_op(","));
      if (is_op("]")) break;
      STRATA_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
      e->items.push_back(std::move(item));
    }
    next();
    return e;
  }

  Result<ExprPtr> parse_dict() {
    auto e = make(ExprKind::kDict, next().offset);
    while (!is_op("}")) {
      if (!e->items.empty()) STRATA_RETURN_IF_ERROR(expect_op(","));
      if (is_op("}")) break;
      STRATA_ASSIGN_OR_RETURN(ExprPtr key, parse_expression(true));
      STRATA_RETURN_IF_ERROR(expect_op(":"));
      STRATA_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      e->items.push_back(std::move(key));
      e->items.push_back(std::move(value));
    }
    next();
    return e;
  }

  Result<ExprPtr> parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        STRATA_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
      } else if (is_op("(")) {
        STRATA_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        STRATA_ASSIGN_OR_RETURN(node, parse_filter(std::move(node), false));
      } else if (is_name("is")) {
        STRATA_ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
      } else if (is_op("(")) {
        STRATA_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_subscript(ExprPtr node) {
    const Token& t = next();
    if (t.text == ".") {
      const Token& attr = cur();
      if (attr.type == Tok::kName) {
        next();
        auto e = make(ExprKind::kGetAttr, t.offset);
        e->a = std::move(node);
        e->name = attr.text;
        return e;
      }
      if (attr.type != Tok::kInt) return fail(attr, "expected a name or number after '.', got '" + describe(attr) + "'");
      next();
      auto e = make(ExprKind::kGetItem, t.offset);
      e->a = std::move(node);
      e->b = make(ExprKind::kConst, attr.offset);
      e->b->value = Value::integer(attr.i);
      return e;
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) STRATA_RETURN_IF_ERROR(expect_op(","));
      STRATA_ASSIGN_OR_RETURN(ExprPtr a, parse_subscribed());
      args.push_back(std::move(a));
    }
    next();
    if (args.empty()) return fail(t, "expected a subscript expression");
    auto e = make(ExprKind::kGetItem, t.offset);
    e->a = std::move(node);
    if (args.size() == 1) {
      e->b = std::move(args[0]);
    } else {
      e->b = make(ExprKind::kTuple, t.offset);
      e->b->items = std::move(args);
    }
    return e;
  }

  Result<ExprPtr> parse_subscribed() {
    const uint32_t pos = cur().offset;
    ExprPtr start;
    if (!is_op(":")) {
      STRATA_ASSIGN_OR_RETURN(start, parse_expression(true));
      if (!is_op(":")) return start;
    }
    next();  // ':'
    auto slice = make(ExprKind::kSlice, pos);
    slice->a = std::move(start);
    if (!is_op(":") && !is_op("]") && !is_op(",")) {
      STRATA_ASSIGN_OR_RETURN(slice->b, parse_expression(true));
    }
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) {
        STRATA_ASSIGN_OR_RETURN(slice->c, parse_expression(true));
      }
    }
    return slice;
  }

  // "(" args ")" into e->items, e->kwargs, e->dyn_args, e->dyn_kwargs.
  Status parse_call_args(Expr& e) {
    const Token& open = cur();
    STRATA_RETURN_IF_ERROR(expect_op("("));
    bool require_comma = false;
    auto invalid = [&] { return fail(open, "invalid syntax for function call expression"); };
    while (!is_op(")")) {
      if (require_comma) {
        STRATA_RETURN_IF_ERROR(expect_op(","));
        if (is_op(")")) break;
      }
      if (is_op("*")) {
        if (e.dyn_args || e.dyn_kwargs) return invalid();
        next();
        STRATA_ASSIGN_OR_RETURN(e.dyn_args, parse_expression(true));
      } else if (is_op("**")) {
        if (e.dyn_kwargs) return invalid();
        next();
        STRATA_ASSIGN_OR_RETURN(e.dyn_kwargs, parse_expression(true));
      } else if (cur().type == Tok::kName && look().type == Tok::kOp && look().text == "=") {
        if (e.dyn_kwargs) return invalid();
        std::string key = next().text;
        next();
        STRATA_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        e.kwargs.emplace_back(std::move(key), std::move(v));
      } else {
        if (e.dyn_args || e.dyn_kwargs || !e.kwargs.empty()) return invalid();
        STRATA_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        e.items.push_back(std::move(v));
      }
      require_comma = true;
    }
    next();
    return Status::ok();
  }

  Result<ExprPtr> parse_call(ExprPtr node) {
    auto e = make(ExprKind::kCall, node->pos);  // errors point at the callee
    e->a = std::move(node);
    STRATA_RETURN_IF_ERROR(parse_call_args(*e));
    return e;
  }

  Result<std::string> dotted_name() {
    STRATA_ASSIGN_OR_RETURN(std::string name, expect_name());
    while (skip_op(".")) {
      STRATA_ASSIGN_OR_RETURN(std::string part, expect_name());
      name += "." + part;
    }
    return name;
  }

  Result<ExprPtr> parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      auto e = make(ExprKind::kFilter, cur().offset);
      STRATA_ASSIGN_OR_RETURN(e->name, dotted_name());
      if (is_op("(")) STRATA_RETURN_IF_ERROR(parse_call_args(*e));
      e->a = std::move(node);
      node = std::move(e);
    }
    return node;
  }

  Result<ExprPtr> parse_test(ExprPtr node) {
    const uint32_t pos = next().offset;  // 'is'
    const bool negated = skip_name("not");
    auto e = make(ExprKind::kTest, pos);
    STRATA_ASSIGN_OR_RETURN(e->name, dotted_name());
    e->a = std::move(node);
    if (is_op("(")) {
      STRATA_RETURN_IF_ERROR(parse_call_args(*e));
    } else if ((cur().type == Tok::kName || cur().type == Tok::kString || cur().type == Tok::kInt ||
                cur().type == Tok::kFloat || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) return fail(cur(), "you cannot chain multiple tests with is");
      STRATA_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
      STRATA_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
      e->items.push_back(std::move(arg));
    }
    if (!negated) return e;
    auto n = make(ExprKind::kNot, pos);
    n->a = std::move(e);
    return n;
  }

  const std::string& src_;
  const std::vector<Token>& toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::set<std::string>> names_read_;  // one per macro body being parsed
};

}  // namespace

Result<Body> parse_template(const std::string& source, const std::vector<Token>& tokens) {
  Parser p(source, tokens);
  return p.run();
}

}  // namespace strata::chat::jinja
