// Template: the parsed tree shared read-only between renders; each render
// runs its own Interpreter.
#include "runtime/chat/jinja.h"

#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_interp.h"
#include "runtime/chat/jinja_parser.h"

namespace strata::chat::jinja {

struct ParsedTemplate {
  std::string source;
  Body body;
};

namespace {

// jinja2 refuses unknown filters and tests when it compiles a template,
// except inside `if` blocks and conditional expressions, where the error
// waits until the filter is actually used. Same here. `soft`: inside one.
class NameChecker {
 public:
  explicit NameChecker(const std::string& source) : source_(source) {}

  Status body(const Body& b, bool soft) {
    for (const auto& s : b) STRATA_RETURN_IF_ERROR(stmt(*s, soft));
    return Status::ok();
  }

 private:
  Status stmt(const Stmt& s, bool soft) {
    switch (s.kind) {
      case StmtKind::kIf:
        for (const auto& [test, b] : s.branches) {
          STRATA_RETURN_IF_ERROR(expr(test.get(), true));
          STRATA_RETURN_IF_ERROR(body(b, true));
        }
        return body(s.else_body, true);
      case StmtKind::kFor:
        STRATA_RETURN_IF_ERROR(expr(s.expr.get(), soft));
        STRATA_RETURN_IF_ERROR(expr(s.cond.get(), false));
        STRATA_RETURN_IF_ERROR(body(s.body, false));
        return body(s.else_body, false);
      case StmtKind::kMacro:
      case StmtKind::kCallBlock:
        for (const auto& d : s.macro->defaults) STRATA_RETURN_IF_ERROR(expr(d.get(), false));
        STRATA_RETURN_IF_ERROR(body(s.macro->body, false));
        return expr(s.expr.get(), soft);
      case StmtKind::kWith:
        for (const auto& v : s.with_values) STRATA_RETURN_IF_ERROR(expr(v.get(), soft));
        return body(s.body, false);
      case StmtKind::kSetBlock:
      case StmtKind::kFilterBlock:
        STRATA_RETURN_IF_ERROR(expr(s.expr.get(), soft));
        return body(s.body, false);
      case StmtKind::kScope: return body(s.body, false);
      default: return expr(s.expr.get(), soft);
    }
  }

  Status expr(const Expr* e, bool soft) {
    if (!e) return Status::ok();
    if (e->kind == ExprKind::kCond) soft = true;
    if (!soft && e->kind == ExprKind::kFilter && !is_builtin_filter(e->name)) {
      return invalid_argument("template " + describe_position(source_, e->pos) + ": no filter named '" + e->name + "'");
    }
    if (!soft && e->kind == ExprKind::kTest && !is_builtin_test(e->name)) {
      return invalid_argument("template " + describe_position(source_, e->pos) + ": no test named '" + e->name + "'");
    }
    for (const Expr* child : {e->a.get(), e->b.get(), e->c.get(), e->dyn_args.get(), e->dyn_kwargs.get()}) {
      STRATA_RETURN_IF_ERROR(expr(child, soft));
    }
    for (const auto& item : e->items) STRATA_RETURN_IF_ERROR(expr(item.get(), soft));
    for (const auto& kw : e->kwargs) STRATA_RETURN_IF_ERROR(expr(kw.second.get(), soft));
    return Status::ok();
  }

  const std::string& source_;
};

}  // namespace

Result<Template> Template::parse(std::string_view source, const LexerOptions& opts) {
  auto parsed = std::make_shared<ParsedTemplate>();
  parsed->source = normalize_source(source, opts);
  STRATA_ASSIGN_OR_RETURN(auto tokens, tokenize(parsed->source, opts));
  STRATA_ASSIGN_OR_RETURN(parsed->body, parse_template(parsed->source, tokens));
  STRATA_RETURN_IF_ERROR(NameChecker(parsed->source).body(parsed->body, false));
  Template t;
  t.parsed_ = std::move(parsed);
  return t;
}

Result<std::string> Template::render(const Vars& vars, const RenderOptions& opts) const {
  Interpreter in(parsed_->source, opts);
  return in.run(parsed_->body, vars);
}

Result<std::string> Template::render_json(const nlohmann::ordered_json& vars, const RenderOptions& opts) const {
  if (!vars.is_object()) return invalid_argument("expected the template context as a JSON object");
  Vars v;
  for (const auto& [k, j] : vars.items()) {
    STRATA_ASSIGN_OR_RETURN(Value val, from_json(j));
    v.emplace_back(k, std::move(val));
  }
  return render(v, opts);
}

const std::string& Template::source() const { return parsed_->source; }

}  // namespace strata::chat::jinja
