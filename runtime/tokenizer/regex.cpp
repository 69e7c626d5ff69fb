// The pre-tokenizer regex engine: a recursive-descent parser to a small AST,
// a compiler to a backtracking program, and the matcher. See regex.h for the
// supported syntax.
#include "runtime/tokenizer/regex.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <string>

#include "runtime/tokenizer/unicode.h"

namespace strata {

namespace {

constexpr uint32_t kInf = UINT32_MAX;
constexpr uint32_t kNoCount = UINT32_MAX;
constexpr int kMaxDepth = 64;             // nesting of groups
constexpr uint32_t kMaxCount = 1000;      // {n,m} bounds
constexpr size_t kMaxInstructions = 1 << 16;
constexpr uint32_t kAllCategories = (1u << unicode::kCategoryCount) - 1;

struct Node {
  enum Kind { kSet, kSeq, kAlt, kRepeat, kLook, kBegin, kEnd, kWordBoundary, kNotWordBoundary } kind;
  uint32_t set = 0;
  uint32_t min = 0, max = 0;
  bool negative = false;
  std::vector<std::unique_ptr<Node>> kids;

  explicit Node(Kind k) : kind(k) {}
};
using NodePtr = std::unique_ptr<Node>;

bool is_word(uint32_t cp) {
  const uint32_t bits = unicode::kLetterBits | unicode::kMarkBits | unicode::cat_bit(unicode::kNd) |
                        unicode::cat_bit(unicode::kPc);
  return ((bits >> unicode::category(cp)) & 1) != 0;
}

bool nullable(const Node& n) {
  switch (n.kind) {
    case Node::kSet: return false;
    case Node::kSeq:
      for (const auto& k : n.kids) {
        if (!nullable(*k)) return false;
      }
      return true;
    case Node::kAlt:
      for (const auto& k : n.kids) {
        if (nullable(*k)) return true;
      }
      return false;
    case Node::kRepeat: return n.min == 0 || nullable(*n.kids[0]);
    default: return true;  // lookahead and anchors consume nothing
  }
}

// Adds the sets a match of n can start with; returns whether n can match
// empty (then what follows n may start the match too). Lookaheads and
// anchors are transparent: they constrain a match, never widen its start.
bool first_sets(const Node& n, std::vector<uint32_t>* out) {
  switch (n.kind) {
    case Node::kSet: out->push_back(n.set); return false;
    case Node::kSeq:
      for (const auto& k : n.kids) {
        if (!first_sets(*k, out)) return false;
      }
      return true;
    case Node::kAlt: {
      bool any = false;
      for (const auto& k : n.kids) any = first_sets(*k, out) || any;
      return any;
    }
    case Node::kRepeat: return first_sets(*n.kids[0], out) || n.min == 0;
    default: return true;
  }
}

}  // namespace

bool CodepointSet::contains_slow(uint32_t cp, uint8_t flags) const {
  bool in = ((category_bits >> (flags & unicode::kCategoryMask)) & 1) != 0;
  if (!in && white_space) in = (flags & unicode::kWhiteSpaceBit) != 0;
  if (!in && not_white_space) in = (flags & unicode::kWhiteSpaceBit) == 0;
  if (!in && !ranges.empty()) {
    // First range starting after cp; the one before it may contain cp.
    auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                               [](uint32_t v, const std::pair<uint32_t, uint32_t>& r) { return v < r.first; });
    in = it != ranges.begin() && std::prev(it)->second >= cp;
  }
  return in != negated;
}

void CodepointSet::finish() {
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  ranges = std::move(merged);
  ascii[0] = ascii[1] = 0;
  for (uint32_t cp = 0; cp < 128; ++cp) {
    if (contains_slow(cp, unicode::flags(cp))) ascii[cp >> 6] |= uint64_t{1} << (cp & 63);
  }
}

// Parses a pattern into an AST and compiles it into `re`.
class RegexCompiler {
 public:
  RegexCompiler(std::string_view pattern, Regex* re) : pattern_(pattern), re_(re) {
    for (size_t i = 0; i < pattern.size();) {
      uint32_t cp;
      i += unicode::decode_utf8(pattern, i, &cp);
      p_.push_back(cp);
    }
  }

  Status compile() {
    STRATA_ASSIGN_OR_RETURN(NodePtr root, parse_alt());
    if (i_ != p_.size()) return error("unbalanced ')'");
    STRATA_RETURN_IF_ERROR(check(*root));
    std::vector<Regex::Inst> prog;
    STRATA_RETURN_IF_ERROR(emit(*root, &prog));
    prog.push_back({Regex::Op::kMatch});
    re_->programs_.insert(re_->programs_.begin(), std::move(prog));
    // Sub-programs were appended while the main one was being built; their
    // indices in kLook shift by one now that the main program is first.
    for (auto& p : re_->programs_) {
      for (auto& in : p) {
        if (in.op == Regex::Op::kLook) ++in.a;
      }
    }
    for (auto& s : re_->sets_) s.finish();
    std::vector<uint32_t> first;
    re_->empty_start_ = first_sets(*root, &first);
    std::sort(first.begin(), first.end());
    first.erase(std::unique(first.begin(), first.end()), first.end());
    re_->first_sets_ = first;
    const Regex::Inst& lead = re_->programs_[0][0];
    if (lead.op == Regex::Op::kRepeatSet && lead.c == kInf) re_->lead_repeat_set_ = static_cast<int32_t>(lead.a);
    for (uint32_t s : first) {
      re_->first_ascii_[0] |= re_->sets_[s].ascii[0];
      re_->first_ascii_[1] |= re_->sets_[s].ascii[1];
    }
    return Status::ok();
  }

 private:
  Status error(const std::string& what) const {
    return invalid_argument("regex '" + std::string(pattern_) + "': " + what + " at code point " +
                            std::to_string(i_));
  }
  bool at_end() const { return i_ >= p_.size(); }
  uint32_t peek(size_t ahead = 0) const { return i_ + ahead < p_.size() ? p_[i_ + ahead] : 0; }

  uint32_t add_set(CodepointSet s) {
    re_->sets_.push_back(std::move(s));
    return static_cast<uint32_t>(re_->sets_.size() - 1);
  }

  NodePtr set_node(CodepointSet s) {
    auto n = std::make_unique<Node>(Node::kSet);
    n->set = add_set(std::move(s));
    return n;
  }

  // A literal, with its other ASCII case under (?i:...).
  void add_literal(uint32_t cp, CodepointSet* s) const {
    s->ranges.push_back({cp, cp});
    if (icase_ && cp < 128 && std::isalpha(static_cast<int>(cp))) {
      const uint32_t other = cp ^ 0x20;
      s->ranges.push_back({other, other});
    }
  }

  Result<NodePtr> parse_alt() {
    if (++depth_ > kMaxDepth) return error("groups nested too deeply");
    auto alt = std::make_unique<Node>(Node::kAlt);
    for (;;) {
      STRATA_ASSIGN_OR_RETURN(NodePtr seq, parse_seq());
      alt->kids.push_back(std::move(seq));
      if (at_end() || peek() != '|') break;
      ++i_;
    }
    --depth_;
    if (alt->kids.size() == 1) return std::move(alt->kids[0]);
    return alt;
  }

  Result<NodePtr> parse_seq() {
    auto seq = std::make_unique<Node>(Node::kSeq);
    while (!at_end() && peek() != '|' && peek() != ')') {
      STRATA_ASSIGN_OR_RETURN(NodePtr atom, parse_atom());
      STRATA_ASSIGN_OR_RETURN(atom, parse_quantifier(std::move(atom)));
      seq->kids.push_back(std::move(atom));
    }
    return seq;
  }

  Result<NodePtr> parse_quantifier(NodePtr atom) {
    if (at_end()) return atom;
    uint32_t min, max;
    const uint32_t c = peek();
    if (c == '?') {
      min = 0, max = 1;
      ++i_;
    } else if (c == '*') {
      min = 0, max = kInf;
      ++i_;
    } else if (c == '+') {
      min = 1, max = kInf;
      ++i_;
    } else if (c == '{') {
      ++i_;
      STRATA_ASSIGN_OR_RETURN(min, parse_count());
      max = min;
      if (peek() == ',') {
        ++i_;
        if (peek() == '}') {
          max = kInf;
        } else {
          STRATA_ASSIGN_OR_RETURN(max, parse_count());
        }
      }
      if (peek() != '}') return error("expected '}' closing a counted repetition");
      ++i_;
      if (max < min) return error("repetition {n,m} with m < n");
    } else {
      return atom;
    }
    if (!at_end() && (peek() == '?' || peek() == '+')) return error("lazy and possessive quantifiers are not supported");
    if (atom->kind == Node::kBegin || atom->kind == Node::kEnd || atom->kind == Node::kLook ||
        atom->kind == Node::kWordBoundary || atom->kind == Node::kNotWordBoundary) {
      return error("quantifier after an assertion");
    }
    auto rep = std::make_unique<Node>(Node::kRepeat);
    rep->min = min;
    rep->max = max;
    rep->kids.push_back(std::move(atom));
    return rep;
  }

  Result<uint32_t> parse_count() {
    uint32_t v = 0;
    size_t digits = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      ++i_;
      if (++digits > 4 || v > kMaxCount) return error("repetition count above " + std::to_string(kMaxCount));
    }
    if (digits == 0) return error("expected a repetition count");
    return v;
  }

  Result<NodePtr> parse_atom() {
    const uint32_t c = peek();
    switch (c) {
      case '(': return parse_group();
      case '[': {
        ++i_;
        STRATA_ASSIGN_OR_RETURN(CodepointSet s, parse_class());
        return set_node(std::move(s));
      }
      case '.': {
        ++i_;
        CodepointSet s;
        s.negated = true;
        s.ranges.push_back({'\n', '\n'});
        return set_node(std::move(s));
      }
      case '^': ++i_; return std::make_unique<Node>(Node::kBegin);
      case '$': ++i_; return std::make_unique<Node>(Node::kEnd);
      case '\\': {
        ++i_;
        if (peek() == 'b' || peek() == 'B') {
          const bool b = peek() == 'b';
          ++i_;
          return std::make_unique<Node>(b ? Node::kWordBoundary : Node::kNotWordBoundary);
        }
        CodepointSet s;
        STRATA_RETURN_IF_ERROR(parse_escape(&s));
        return set_node(std::move(s));
      }
      case '*': case '+': case '?': case '{': return error("quantifier without an operand");
      default: {
        ++i_;
        CodepointSet s;
        add_literal(c, &s);
        return set_node(std::move(s));
      }
    }
  }

  Result<NodePtr> parse_group() {
    ++i_;  // '('
    const bool saved_icase = icase_;
    NodePtr look;
    if (peek() == '?') {
      const uint32_t k = peek(1);
      if (k == ':') {
        i_ += 2;
      } else if (k == '=' || k == '!') {
        i_ += 2;
        look = std::make_unique<Node>(Node::kLook);
        look->negative = k == '!';
      } else if (k == 'i' && peek(2) == ':') {
        i_ += 3;
        icase_ = true;
      } else {
        return error("unsupported group syntax");
      }
    }
    STRATA_ASSIGN_OR_RETURN(NodePtr inner, parse_alt());
    if (peek() != ')' || at_end()) return error("missing ')'");
    ++i_;
    icase_ = saved_icase;
    if (look) {
      look->kids.push_back(std::move(inner));
      return look;
    }
    return inner;
  }

  // After '[': members up to the closing ']'.
  Result<CodepointSet> parse_class() {
    CodepointSet s;
    if (peek() == '^') {
      s.negated = true;
      ++i_;
    }
    bool first = true;
    for (;;) {
      if (at_end()) return error("missing ']'");
      uint32_t c = peek();
      if (c == ']' && !first) {
        ++i_;
        return s;
      }
      first = false;
      uint32_t lo;
      if (c == '\\') {
        ++i_;
        CodepointSet member;
        STRATA_RETURN_IF_ERROR(parse_escape(&member));
        // A single-code-point escape can start a range; a class escape cannot.
        if (member.category_bits || member.white_space || member.not_white_space || member.ranges.size() != 1 ||
            member.ranges[0].first != member.ranges[0].second) {
          merge(member, &s);
          continue;
        }
        lo = member.ranges[0].first;
      } else {
        lo = c;
        ++i_;
      }
      if (peek() == '-' && peek(1) != ']' && i_ + 1 < p_.size()) {
        ++i_;
        uint32_t hi = peek();
        if (hi == '\\') {
          ++i_;
          CodepointSet member;
          STRATA_RETURN_IF_ERROR(parse_escape(&member));
          if (member.ranges.size() != 1 || member.ranges[0].first != member.ranges[0].second || member.category_bits) {
            return error("class escape as a range bound");
          }
          hi = member.ranges[0].first;
        } else {
          ++i_;
        }
        if (hi < lo) return error("range out of order");
        s.ranges.push_back({lo, hi});
        if (icase_) add_case_variants(lo, hi, &s);
      } else {
        add_literal(lo, &s);
      }
    }
  }

  static void add_case_variants(uint32_t lo, uint32_t hi, CodepointSet* s) {
    for (uint32_t c = std::max<uint32_t>(lo, 'A'); c <= std::min<uint32_t>(hi, 'z'); ++c) {
      if (std::isalpha(static_cast<int>(c))) s->ranges.push_back({c ^ 0x20, c ^ 0x20});
    }
  }

  static void merge(const CodepointSet& m, CodepointSet* s) {
    s->category_bits |= m.category_bits;
    s->white_space |= m.white_space;
    s->not_white_space |= m.not_white_space;
    s->ranges.insert(s->ranges.end(), m.ranges.begin(), m.ranges.end());
  }

  // After '\': fills `s` (not negated) with what the escape stands for.
  Status parse_escape(CodepointSet* s) {
    if (at_end()) return error("pattern ends with '\\'");
    const uint32_t c = peek();
    ++i_;
    switch (c) {
      case 's': s->white_space = true; return Status::ok();
      case 'S': s->not_white_space = true; return Status::ok();
      case 'd': s->category_bits |= unicode::cat_bit(unicode::kNd); return Status::ok();
      case 'D': s->category_bits |= kAllCategories & ~unicode::cat_bit(unicode::kNd); return Status::ok();
      case 'w':
      case 'W': {
        const uint32_t w = unicode::kLetterBits | unicode::kMarkBits | unicode::cat_bit(unicode::kNd) |
                           unicode::cat_bit(unicode::kPc);
        s->category_bits |= c == 'w' ? w : kAllCategories & ~w;
        return Status::ok();
      }
      case 'p':
      case 'P': {
        STRATA_ASSIGN_OR_RETURN(uint32_t bits, parse_property());
        s->category_bits |= c == 'p' ? bits : kAllCategories & ~bits;
        return Status::ok();
      }
      case 'r': add_literal('\r', s); return Status::ok();
      case 'n': add_literal('\n', s); return Status::ok();
      case 't': add_literal('\t', s); return Status::ok();
      case 'f': add_literal('\f', s); return Status::ok();
      case 'v': add_literal('\v', s); return Status::ok();
      case 'x':
      case 'u': {
        uint32_t v = 0;
        size_t digits = 0;
        const bool braced = c == 'x' && peek() == '{';
        if (braced) ++i_;
        const size_t want = braced ? 6 : c == 'x' ? 2 : 4;
        while (!at_end() && digits < want && std::isxdigit(static_cast<int>(peek() < 128 ? peek() : 0))) {
          const uint32_t h = peek();
          v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
          ++i_;
          ++digits;
        }
        if (braced) {
          if (peek() != '}') return error("expected '}' after \\x{...");
          ++i_;
        }
        if (digits == 0 || (!braced && digits != want) || v > unicode::kMaxCodepoint) {
          return error("bad hexadecimal escape");
        }
        add_literal(v, s);
        return Status::ok();
      }
      default:
        if (c < 128 && std::isalnum(static_cast<int>(c))) return error("unsupported escape");
        add_literal(c, s);  // an escaped punctuation character stands for itself
        return Status::ok();
    }
  }

  // After \p or \P: {Name} or a one-letter name; returns the category bits.
  Result<uint32_t> parse_property() {
    std::string name;
    if (peek() == '{') {
      ++i_;
      while (!at_end() && peek() != '}' && name.size() < 16) name.push_back(static_cast<char>(peek() & 0x7F)), ++i_;
      if (peek() != '}') return error("expected '}' after \\p{...");
      ++i_;
    } else if (!at_end()) {
      name.push_back(static_cast<char>(peek() & 0x7F));
      ++i_;
    }
    using namespace unicode;
    struct Entry {
      const char* name;
      uint32_t bits;
    };
    static const Entry kProps[] = {
        {"L", kLetterBits},      {"Lu", cat_bit(kLu)}, {"Ll", cat_bit(kLl)}, {"Lt", cat_bit(kLt)},
        {"Lm", cat_bit(kLm)},    {"Lo", cat_bit(kLo)}, {"M", kMarkBits},     {"Mn", cat_bit(kMn)},
        {"Mc", cat_bit(kMc)},    {"Me", cat_bit(kMe)}, {"N", kNumberBits},   {"Nd", cat_bit(kNd)},
        {"Nl", cat_bit(kNl)},    {"No", cat_bit(kNo)}, {"P", kPunctBits},    {"Pc", cat_bit(kPc)},
        {"Pd", cat_bit(kPd)},    {"Ps", cat_bit(kPs)}, {"Pe", cat_bit(kPe)}, {"Pi", cat_bit(kPi)},
        {"Pf", cat_bit(kPf)},    {"Po", cat_bit(kPo)}, {"S", kSymbolBits},   {"Sm", cat_bit(kSm)},
        {"Sc", cat_bit(kSc)},    {"Sk", cat_bit(kSk)}, {"So", cat_bit(kSo)}, {"Z", kSeparatorBits},
        {"Zs", cat_bit(kZs)},    {"Zl", cat_bit(kZl)}, {"Zp", cat_bit(kZp)}, {"C", kOtherBits},
        {"Cc", cat_bit(kCc)},    {"Cf", cat_bit(kCf)}, {"Cs", cat_bit(kCs)}, {"Co", cat_bit(kCo)},
        {"Cn", cat_bit(kCn)},
    };
    for (const auto& e : kProps) {
      if (name == e.name) return e.bits;
    }
    return error("unsupported property \\p{" + name + "}");
  }

  // Loops whose body can match empty would spin forever in a backtracking
  // matcher; no tokenizer pattern needs one, so they are rejected.
  Status check(const Node& n) {
    if (n.kind == Node::kRepeat && n.max == kInf && n.kids[0]->kind != Node::kSet && nullable(*n.kids[0])) {
      return invalid_argument("regex '" + std::string(pattern_) + "': unbounded repetition of a group that can match empty");
    }
    for (const auto& k : n.kids) STRATA_RETURN_IF_ERROR(check(*k));
    return Status::ok();
  }

  Status emit(const Node& n, std::vector<Regex::Inst>* prog) {
    using Op = Regex::Op;
    if (prog->size() > kMaxInstructions) return invalid_argument("regex '" + std::string(pattern_) + "': too large");
    switch (n.kind) {
      case Node::kSet: prog->push_back({Op::kSet, n.set}); break;
      case Node::kSeq:
        for (const auto& k : n.kids) STRATA_RETURN_IF_ERROR(emit(*k, prog));
        break;
      case Node::kAlt: {
        // split L1, next; L1: kid; jmp end; next: split L2, next2; ...
        std::vector<size_t> jumps;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          size_t split = 0;
          const bool last = i + 1 == n.kids.size();
          if (!last) {
            split = prog->size();
            prog->push_back({Op::kSplit, static_cast<uint32_t>(prog->size() + 1), 0});
          }
          STRATA_RETURN_IF_ERROR(emit(*n.kids[i], prog));
          if (!last) {
            jumps.push_back(prog->size());
            prog->push_back({Op::kJmp});
            (*prog)[split].b = static_cast<uint32_t>(prog->size());
          }
        }
        for (size_t j : jumps) (*prog)[j].a = static_cast<uint32_t>(prog->size());
        break;
      }
      case Node::kRepeat: {
        const Node& kid = *n.kids[0];
        if (kid.kind == Node::kSet) {
          prog->push_back({Op::kRepeatSet, kid.set, n.min, n.max});
          break;
        }
        for (uint32_t i = 0; i < n.min; ++i) STRATA_RETURN_IF_ERROR(emit(kid, prog));
        if (n.max == kInf) {
          // loop: split body, out; body: kid; jmp loop
          const size_t loop = prog->size();
          prog->push_back({Op::kSplit, static_cast<uint32_t>(loop + 1), 0});
          STRATA_RETURN_IF_ERROR(emit(kid, prog));
          prog->push_back({Op::kJmp, static_cast<uint32_t>(loop)});
          (*prog)[loop].b = static_cast<uint32_t>(prog->size());
        } else {
          // each optional copy: split body, out (all skips leave the repeat)
          std::vector<size_t> splits;
          for (uint32_t i = n.min; i < n.max; ++i) {
            splits.push_back(prog->size());
            prog->push_back({Op::kSplit, static_cast<uint32_t>(prog->size() + 1), 0});
            STRATA_RETURN_IF_ERROR(emit(kid, prog));
          }
          for (size_t s : splits) (*prog)[s].b = static_cast<uint32_t>(prog->size());
        }
        break;
      }
      case Node::kLook: {
        std::vector<Regex::Inst> sub;
        STRATA_RETURN_IF_ERROR(emit(*n.kids[0], &sub));
        sub.push_back({Op::kMatch});
        re_->programs_.push_back(std::move(sub));
        // Index among the sub-programs; compile() shifts it by one.
        prog->push_back({Op::kLook, static_cast<uint32_t>(re_->programs_.size() - 1), n.negative ? 1u : 0u});
        break;
      }
      case Node::kBegin: prog->push_back({Op::kBegin}); break;
      case Node::kEnd: prog->push_back({Op::kEnd}); break;
      case Node::kWordBoundary: prog->push_back({Op::kWordBoundary}); break;
      case Node::kNotWordBoundary: prog->push_back({Op::kNotWordBoundary}); break;
    }
    return Status::ok();
  }

  std::string_view pattern_;
  Regex* re_;
  std::vector<uint32_t> p_;
  size_t i_ = 0;
  bool icase_ = false;
  int depth_ = 0;
};

Result<Regex> Regex::compile(std::string_view pattern) {
  Regex re;
  re.pattern_ = std::string(pattern);
  RegexCompiler c(re.pattern_, &re);
  STRATA_RETURN_IF_ERROR(c.compile());
  return re;
}

bool Regex::search(const uint32_t* s, size_t n, size_t from, RegexScratch* scratch, size_t* match_begin,
                   size_t* match_end) const {
  const uint8_t* ft = unicode::flags_table();
  for (size_t start = from; start < n; ++start) {
    if (!empty_start_) {
      const uint32_t cp = s[start];
      if (cp < 128) {
        if (((first_ascii_[cp >> 6] >> (cp & 63)) & 1) == 0) continue;
      } else {
        bool possible = false;
        for (uint32_t set : first_sets_) {
          if (sets_[set].contains(cp, ft[cp])) {
            possible = true;
            break;
          }
        }
        if (!possible) continue;
      }
    }
    size_t end;
    if (run(0, s, n, start, scratch, &end)) {
      *match_begin = start;
      *match_end = end;
      return true;
    }
    if (lead_repeat_set_ >= 0) {
      // The attempt from `start` let the leading repeat run to q (the end
      // of the run of its set) and tried the rest of the pattern at every
      // position up to q. An attempt from inside the run would try a subset
      // of those positions, and what follows the repeat depends only on the
      // position, so those attempts fail as well; q itself fails or was
      // tried. Without this, "\s+$" on a long run of spaces before a letter
      // would take quadratic time.
      const CodepointSet& set = sets_[lead_repeat_set_];
      size_t q = start;
      while (q < n && set.contains(s[q], ft[s[q]])) ++q;
      if (q > start) start = q;
    }
  }
  return false;
}

bool Regex::run(uint32_t prog_index, const uint32_t* s, size_t n, size_t pos, RegexScratch* scratch,
                size_t* end) const {
  const Inst* prog = programs_[prog_index].data();
  auto& stack = scratch->stack;
  const size_t base = stack.size();
  const uint8_t* ft = unicode::flags_table();
  uint32_t pc = 0;
  for (;;) {
    const Inst& in = prog[pc];
    bool ok = true;
    switch (in.op) {
      case Op::kSet:
        if (pos < n && sets_[in.a].contains(s[pos], ft[s[pos]])) {
          ++pos;
          ++pc;
        } else {
          ok = false;
        }
        break;
      case Op::kRepeatSet: {
        const CodepointSet& set = sets_[in.a];
        const size_t limit = std::min<size_t>(in.c, n - pos);
        size_t k = 0;
        while (k < limit && set.contains(s[pos + k], ft[s[pos + k]])) ++k;
        if (k < in.b) {
          ok = false;
          break;
        }
        // Backtracking gives back one repetition at a time down to the minimum.
        if (k > in.b) {
          stack.push_back({pc + 1, static_cast<uint32_t>(pos + in.b), static_cast<uint32_t>(k - in.b)});
        }
        pos += k;
        ++pc;
        break;
      }
      case Op::kSplit: {
        // When the preferred branch starts by consuming a code point the
        // current one cannot be, go straight to the other: alternations like
        // 's|'t|'re|... then cost one test per alternative, not a push and
        // a failed match each.
        const Inst& first = prog[in.a];
        if ((first.op == Op::kSet || (first.op == Op::kRepeatSet && first.b > 0)) &&
            (pos >= n || !sets_[first.a].contains(s[pos], ft[s[pos]]))) {
          pc = in.b;
          break;
        }
        stack.push_back({in.b, static_cast<uint32_t>(pos), kNoCount});
        pc = in.a;
        break;
      }
      case Op::kJmp: pc = in.a; break;
      case Op::kLook: {
        size_t look_end;
        const bool matched = run(in.a, s, n, pos, scratch, &look_end);
        if (matched == (in.b != 0)) {
          ok = false;
        } else {
          ++pc;
        }
        break;
      }
      case Op::kBegin: ok = pos == 0; ++pc; break;
      case Op::kEnd: ok = pos == n; ++pc; break;
      case Op::kWordBoundary:
      case Op::kNotWordBoundary: {
        const bool before = pos > 0 && is_word(s[pos - 1]);
        const bool after = pos < n && is_word(s[pos]);
        ok = (before != after) == (in.op == Op::kWordBoundary);
        ++pc;
        break;
      }
      case Op::kMatch:
        *end = pos;
        stack.resize(base);
        return true;
    }
    if (ok) continue;
    if (stack.size() == base) return false;
    RegexScratch::Frame f = stack.back();
    if (f.count == kNoCount) {
      stack.pop_back();
      pc = f.pc;
      pos = f.pos;
    } else {
      --f.count;
      if (f.count == 0) {
        stack.pop_back();
      } else {
        stack.back().count = f.count;
      }
      pc = f.pc;
      pos = f.pos + f.count;
    }
  }
}

}  // namespace strata
