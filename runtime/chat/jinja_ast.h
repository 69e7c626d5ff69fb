// The parsed template: expression and statement trees. Positions are byte
// offsets into the normalized source, turned into line/column on error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/chat/jinja_value.h"

namespace strata::chat::jinja {

enum class ExprKind : uint8_t {
  kConst,       // value
  kName,        // name
  kGetAttr,     // a.name
  kGetItem,     // a[b]; b may be a kSlice
  kSlice,       // a:b:c, any of them null
  kCall,        // a(items..., kwargs..., *dyn_args, **dyn_kwargs)
  kFilter,      // a | name(items..., kwargs...); a is null inside {% filter %}
  kTest,        // a is name(items...)
  kNeg,         // -a
  kPos,         // +a
  kNot,         // not a
  kBinary,      // a op b
  kAnd,         // a and b (yields an operand, as Python)
  kOr,          // a or b
  kCompare,     // items[0] cmp_ops[0] items[1] cmp_ops[1] items[2] ...
  kConcat,      // items joined with ~
  kCond,        // a if b else c (c may be null)
  kList,        // [items]
  kTuple,       // (items)
  kDict,        // {items[0]: items[1], ...}
  kBlockValue,  // the rendered body of a {% filter %} block
};

enum class BinOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::kConst;
  uint32_t pos = 0;
  Value value;
  std::string name;
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args, dyn_kwargs;
  BinOp op = BinOp::kAdd;
  std::vector<CmpOp> cmp_ops;
};

// Left side of `set`, `for` and `with`: a name, names to unpack, or ns.attr.
struct Target {
  enum class Kind : uint8_t { kName, kTuple, kNsAttr } kind = Kind::kName;
  std::vector<std::string> names;  // kNsAttr: names[0] is the namespace
  std::string attr;
  uint32_t pos = 0;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroDef {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // for the last defaults.size() params
  Body body;
  bool catch_varargs = false;  // the body reads `varargs`
  bool catch_kwargs = false;   // the body reads `kwargs`
  bool uses_caller = false;    // the body reads `caller`
  uint32_t pos = 0;
};

enum class StmtKind : uint8_t {
  kData,         // text
  kOutput,       // {{ expr }} / {% print expr %}
  kIf,           // branches, else_body
  kFor,          // target in expr [if cond] body [else else_body]
  kSet,          // target = expr
  kSetBlock,     // {% set target [| filter] %}body{% endset %}; expr: the filter chain or null
  kMacro,        // macro
  kCallBlock,    // {% call(macro params) expr %}macro body{% endcall %}
  kFilterBlock,  // {% filter expr %}body{% endfilter %}
  kWith,         // with_targets = with_values; body
  kBreak,
  kContinue,
  kScope,  // a body rendered in place ({% generation %})
};

struct Stmt {
  StmtKind kind = StmtKind::kData;
  uint32_t pos = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  Target target;
  bool recursive = false;
  std::unique_ptr<MacroDef> macro;
  std::vector<Target> with_targets;
  std::vector<ExprPtr> with_values;
};

}  // namespace strata::chat::jinja
