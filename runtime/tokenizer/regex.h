// A small backtracking regex engine over Unicode code points, for the
// pre-tokenizer split patterns that tokenizer.json files define. It has the
// leftmost-first semantics of the engines those patterns were written for
// (Oniguruma, fancy-regex, PCRE): alternatives are tried in order, quantifiers
// are greedy and backtrack.
//
// Supported: literals, `.`, classes `[...]` / `[^...]` with ranges,
// \p{X} / \P{X} for general categories and their groups (L, Lu, ..., N, P, S,
// M, Z, C), \s \S (White_Space), \d \D (Nd), \w \W; escapes \r \n \t \f \v,
// \xHH, \x{H...}, \uHHHH; groups (...), (?:...), (?i:...) (ASCII case folding
// only); lookahead (?=...), (?!...); quantifiers ? * + {n} {n,} {n,m} (greedy);
// anchors ^ $ (start / end of the subject) and \b \B. Anything else is a
// compile error, never undefined behaviour. Patterns come from strata's own
// table, but they are still parsed defensively.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/base/status.h"

namespace strata {

// One matchable set of code points (a class, a literal or \p{X}).
struct CodepointSet {
  uint32_t category_bits = 0;    // bit c: general category c is in the set
  bool white_space = false;      // \s
  bool not_white_space = false;  // \S
  bool negated = false;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive, sorted, merged
  uint64_t ascii[2] = {0, 0};    // precomputed answer for U+0000..U+007F

  // `flags` is unicode::flags(cp).
  bool contains(uint32_t cp, uint8_t flags) const {
    if (cp < 128) return ((ascii[cp >> 6] >> (cp & 63)) & 1) != 0;
    return contains_slow(cp, flags);
  }
  // Fills `ascii` from the other members; call after building the set.
  void finish();

 private:
  bool contains_slow(uint32_t cp, uint8_t flags) const;
};

// Reusable stacks for Regex::search, so a loop of searches does not allocate.
struct RegexScratch {
  struct Frame {
    uint32_t pc;
    uint32_t pos;
    uint32_t count;  // for a repeat frame: repetitions still to give back; else ~0u
  };
  std::vector<Frame> stack;
};

class Regex {
 public:
  static Result<Regex> compile(std::string_view pattern);

  // Finds the leftmost match in subject[from, n) (lookarounds and anchors see
  // only subject[0, n)). Returns false when there is none; empty matches are
  // reported like any other.
  bool search(const uint32_t* subject, size_t n, size_t from, RegexScratch* scratch, size_t* match_begin,
              size_t* match_end) const;

  std::string_view pattern() const { return pattern_; }

  enum class Op : uint8_t {
    kSet,        // a: set index
    kRepeatSet,  // a: set index, b: min, c: max (greedy, backtracks one at a time)
    kSplit,      // try a first, then b
    kJmp,        // to a
    kLook,       // a: sub-program, b: 1 if negative
    kBegin,      // ^
    kEnd,        // $
    kWordBoundary,
    kNotWordBoundary,
    kMatch,
  };
  struct Inst {
    Op op;
    uint32_t a = 0, b = 0, c = 0;
  };

 private:
  friend class RegexCompiler;
  bool run(uint32_t prog, const uint32_t* s, size_t n, size_t pos, RegexScratch* scratch, size_t* end) const;

  std::string pattern_;
  std::vector<CodepointSet> sets_;
  std::vector<std::vector<Inst>> programs_;  // [0] is the pattern, the rest lookaheads
  // Sets one of which a match's first code point is in (first_ascii_ holds
  // their union below U+0080), so search skips hopeless start positions.
  // empty_start_: the pattern can match without consuming; no filtering.
  std::vector<uint32_t> first_sets_;
  uint64_t first_ascii_[2] = {0, 0};
  bool empty_start_ = true;
  // The pattern starts with an unbounded repeat of this set (like \s+$):
  // after a failed attempt, the starts inside the same run fail too.
  int32_t lead_repeat_set_ = -1;
};

}  // namespace strata
