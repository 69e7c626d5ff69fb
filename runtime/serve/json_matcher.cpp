// The JSON automaton: byte steps over a set of pushdown threads, the token
// trie, and the allowed-token mask (a trie walk that prunes dead prefixes and
// takes whole subtrees of plain string bytes at once).
#include <algorithm>
#include <cstring>

#include "runtime/serve/json_schema.h"

namespace strata::serve {
namespace {

constexpr size_t kMaxThreads = 64;
constexpr uint32_t kMaxFrames = 64 + 3;  // root + max_depth containers + a key or scalar
constexpr uint32_t kExtraKey = kNoNode;  // object aux: the key is not a declared property
constexpr uint32_t kExponentDigits = 2;  // keeps every number finite as a double

// String byte states (Frame::sub): escapes and UTF-8 continuation bytes.
enum : uint8_t {
  kStrNormal,
  kStrEscape,
  kStrU4,   // \u, four hex digits to go
  kStrU3D,  // \uD, the next digit must keep it out of D800-DFFF
  kStrU3,
  kStrU2,
  kStrU1,
  kStrCont1,  // 1, 2, 3 continuation bytes to go
  kStrCont2,
  kStrCont3,
  kStrE0,  // lead E0: next in A0-BF (no overlong forms)
  kStrED,  // lead ED: next in 80-9F (no surrogates)
  kStrF0,  // lead F0: next in 90-BF
  kStrF4,  // lead F4: next in 80-8F (up to U+10FFFF)
};

bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_hex(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool in(uint8_t c, uint8_t lo, uint8_t hi) { return c >= lo && c <= hi; }
// Bytes that stand for themselves inside a string and are a whole character.
bool is_plain(uint8_t c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

// One byte inside a string (not the closing quote in kStrNormal). Returns
// the next state or -1; *starts_char says a new code point begins here.
int string_step(uint8_t sub, uint8_t c, bool* starts_char) {
  *starts_char = false;
  switch (sub) {
    case kStrNormal:
      *starts_char = true;
      if (c < 0x20) return -1;
      if (c == '\\') return kStrEscape;
      if (c < 0x80) return kStrNormal;
      if (in(c, 0xC2, 0xDF)) return kStrCont1;
      if (c == 0xE0) return kStrE0;
      if (c == 0xED) return kStrED;
      if (in(c, 0xE1, 0xEF)) return kStrCont2;
      if (c == 0xF0) return kStrF0;
      if (in(c, 0xF1, 0xF3)) return kStrCont3;
      if (c == 0xF4) return kStrF4;
      return -1;
    case kStrEscape:
      if (c == 'u') return kStrU4;
      if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
        return kStrNormal;
      }
      return -1;
    case kStrU4: return is_hex(c) ? (c == 'd' || c == 'D' ? kStrU3D : kStrU3) : -1;
    case kStrU3D: return in(c, '0', '7') ? kStrU2 : -1;
    case kStrU3: return is_hex(c) ? kStrU2 : -1;
    case kStrU2: return is_hex(c) ? kStrU1 : -1;
    case kStrU1: return is_hex(c) ? kStrNormal : -1;
    case kStrCont1: return in(c, 0x80, 0xBF) ? kStrNormal : -1;
    case kStrCont2: return in(c, 0x80, 0xBF) ? kStrCont1 : -1;
    case kStrCont3: return in(c, 0x80, 0xBF) ? kStrCont2 : -1;
    case kStrE0: return in(c, 0xA0, 0xBF) ? kStrCont1 : -1;
    case kStrED: return in(c, 0x80, 0x9F) ? kStrCont1 : -1;
    case kStrF0: return in(c, 0x90, 0xBF) ? kStrCont2 : -1;
    case kStrF4: return in(c, 0x80, 0x8F) ? kStrCont2 : -1;
    default: return -1;
  }
}

uint64_t all_props(const Node& n) {
  return n.props.size() >= 64 ? ~uint64_t{0} : (uint64_t{1} << n.props.size()) - 1;
}

bool key_possible(const Node& n, uint64_t seen) { return n.additional != kNoNode || (all_props(n) & ~seen) != 0; }

// A stack of frames on the C++ stack. The storage is left uninitialized (a
// thread is copied often in the mask walk); only frames [0, n) are live.
struct Thread {
  uint32_t n = 0;
  alignas(Frame) unsigned char raw[kMaxFrames * sizeof(Frame)];
  Frame* f() { return reinterpret_cast<Frame*>(raw); }
  const Frame* f() const { return reinterpret_cast<const Frame*>(raw); }
  Frame& top() { return f()[n - 1]; }
  void assign(const Frame* src, uint32_t count) {
    std::memcpy(raw, src, count * sizeof(Frame));
    n = count;
  }
  void copy_from(const Thread& o) { assign(o.f(), o.n); }
};

// Feeds one byte to threads, appending the survivors (deduplicated) to `out`.
class Stepper {
 public:
  Stepper(const JsonGrammar& g, JsonMatcher::State& out) : g_(g), out_(out) {}

  void feed(Thread& t, uint8_t c) {
    Frame& f = t.top();
    switch (f.type) {
      case FrameType::kRoot:
        if (f.phase != kRootBefore) return;
        if (is_ws(c)) return whitespace(t);
        return start_value(t, g_.root, c);
      case FrameType::kObject: return feed_object(t, c);
      case FrameType::kKey: return feed_key(t, c);
      case FrameType::kArray: return feed_array(t, c);
      case FrameType::kString: return feed_string(t, c);
      case FrameType::kNumber: return feed_number(t, c, true);
      case FrameType::kLiteral: return feed_literal(t, c, true);
    }
  }

 private:
  void emit(const Thread& t) {
    if (out_.ends.size() >= kMaxThreads) return;
    uint32_t begin = 0;
    for (uint32_t end : out_.ends) {
      if (end - begin == t.n && std::memcmp(out_.frames.data() + begin, t.f(), t.n * sizeof(Frame)) == 0) return;
      begin = end;
    }
    out_.frames.insert(out_.frames.end(), t.f(), t.f() + t.n);
    out_.ends.push_back(static_cast<uint32_t>(out_.frames.size()));
  }

  void whitespace(Thread& t) {
    Frame& f = t.top();
    if (f.ws >= g_.max_ws) return;
    ++f.ws;
    emit(t);
  }

  bool push(Thread& t, const Frame& f) {
    if (t.n >= kMaxFrames) return false;
    t.f()[t.n++] = f;
    return true;
  }

  // The top frame's value is finished: pop it and move its parent on.
  void pop_value(Thread& t) {
    --t.n;
    Frame& p = t.top();
    p.ws = 0;
    switch (p.type) {
      case FrameType::kRoot: p.phase = kRootDone; break;
      case FrameType::kObject:
        p.phase = kObjAfterValue;
        if (p.aux != kExtraKey) p.mask |= uint64_t{1} << p.aux;
        break;
      case FrameType::kArray:
        p.phase = kArrAfterValue;
        ++p.count;
        break;
      default: break;
    }
  }

  void start_value(Thread& t, uint32_t node, uint8_t c) {
    const Node& nd = g_.nodes[node];
    Frame f;
    f.node = node;
    switch (nd.kind) {
      case NodeKind::kAnyOf:
        for (size_t i = 0; i < nd.alts.size(); ++i) {
          if (i + 1 == nd.alts.size()) return start_value(t, nd.alts[i], c);
          Thread alt;
          alt.copy_from(t);
          start_value(alt, nd.alts[i], c);
        }
        return;
      case NodeKind::kObject:
      case NodeKind::kArray: {
        if (c != (nd.kind == NodeKind::kObject ? '{' : '[')) return;
        uint32_t depth = 0;
        for (uint32_t i = 0; i < t.n; ++i) depth += t.f()[i].type == FrameType::kObject || t.f()[i].type == FrameType::kArray;
        if (depth >= g_.max_depth) return;
        f.type = nd.kind == NodeKind::kObject ? FrameType::kObject : FrameType::kArray;
        f.phase = nd.kind == NodeKind::kObject ? uint8_t{kObjFirst} : uint8_t{kArrFirst};
        if (push(t, f)) emit(t);
        return;
      }
      case NodeKind::kString:
        if (c != '"') return;
        f.type = FrameType::kString;
        if (push(t, f)) emit(t);
        return;
      case NodeKind::kNumber:
      case NodeKind::kInteger:
        f.type = FrameType::kNumber;
        f.phase = kNumStart;
        if (push(t, f)) feed_number(t, c, false);
        return;
      case NodeKind::kLiteral:
        f.type = FrameType::kLiteral;
        f.count = nd.lit_root;
        if (push(t, f)) feed_literal(t, c, false);
        return;
    }
  }

  void feed_object(Thread& t, uint8_t c) {
    Frame& f = t.top();
    const Node& nd = g_.nodes[f.node];
    if (is_ws(c)) return whitespace(t);
    switch (f.phase) {
      case kObjFirst:
      case kObjAfterComma:
        if (c == '"' && key_possible(nd, f.mask)) {
          Frame k;
          k.node = f.node;
          k.type = FrameType::kKey;
          k.phase = nd.additional != kNoNode ? kKeyExtraOk : 0;
          k.mask = all_props(nd);
          if (push(t, k)) emit(t);
        } else if (c == '}' && f.phase == kObjFirst && (nd.required & ~f.mask) == 0) {
          pop_value(t);
          emit(t);
        }
        return;
      case kObjAfterKey:
        if (c == ':') {
          f.phase = kObjAfterColon;
          f.ws = 0;
          emit(t);
        }
        return;
      case kObjAfterColon:
        return start_value(t, f.aux == kExtraKey ? nd.additional : nd.props[f.aux].node, c);
      case kObjAfterValue:
        if (c == ',' && key_possible(nd, f.mask)) {
          f.phase = kObjAfterComma;
          f.ws = 0;
          emit(t);
        } else if (c == '}' && (nd.required & ~f.mask) == 0) {
          pop_value(t);
          emit(t);
        }
        return;
      default: return;
    }
  }

  void feed_key(Thread& t, uint8_t c) {
    const Frame k = t.top();
    const Node& nd = g_.nodes[k.node];
    const uint64_t seen = t.f()[t.n - 2].mask;
    const bool extra_ok = k.phase & kKeyExtraOk;
    // Close: the key is a declared property's name, or (if allowed) another one.
    if (c == '"' && (!extra_ok || k.sub == kStrNormal)) {
      uint32_t prop = kExtraKey;
      bool ok = extra_ok;
      for (uint64_t m = k.mask; m; m &= m - 1) {
        const auto i = static_cast<uint32_t>(__builtin_ctzll(m));
        if (nd.props[i].key.size() == k.count) {
          prop = i;
          ok = !(seen >> i & 1);  // a declared key appears once
        }
      }
      if (ok) {
        Thread closed;
        closed.copy_from(t);
        --closed.n;
        Frame& obj = closed.top();
        obj.phase = kObjAfterKey;
        obj.ws = 0;
        obj.aux = prop;
        emit(closed);
      }
    }
    // Continue: candidates whose name has c next, and the free-form path.
    uint64_t cands = 0;
    for (uint64_t m = k.mask; m; m &= m - 1) {
      const auto i = static_cast<uint32_t>(__builtin_ctzll(m));
      const std::string& key = nd.props[i].key;
      if (key.size() > k.count && static_cast<uint8_t>(key[k.count]) == c) cands |= uint64_t{1} << i;
    }
    bool extra = false;
    int sub = kStrNormal;
    if (extra_ok && !(c == '"' && k.sub == kStrNormal)) {
      bool starts = false;
      sub = string_step(k.sub, c, &starts);
      // With declared names, an escape could spell one of them in disguise.
      extra = sub >= 0 && !(c == '\\' && k.sub == kStrNormal && !nd.props.empty());
    }
    if ((cands & ~seen) == 0 && !extra) return;
    Frame& top = t.top();
    top.mask = cands;
    top.count = k.count + 1;
    top.phase = extra ? kKeyExtraOk : 0;
    top.sub = extra ? static_cast<uint8_t>(sub) : 0;
    emit(t);
  }

  void feed_array(Thread& t, uint8_t c) {
    Frame& f = t.top();
    const Node& nd = g_.nodes[f.node];
    if (is_ws(c)) return whitespace(t);
    switch (f.phase) {
      case kArrFirst:
        if (c == ']') {
          if (nd.min == 0) {
            pop_value(t);
            emit(t);
          }
          return;
        }
        if (nd.max == 0) return;
        return start_value(t, nd.items, c);
      case kArrAfterComma: return start_value(t, nd.items, c);
      case kArrAfterValue:
        if (c == ',' && f.count < nd.max) {
          f.phase = kArrAfterComma;
          f.ws = 0;
          emit(t);
        } else if (c == ']' && f.count >= nd.min) {
          pop_value(t);
          emit(t);
        }
        return;
      default: return;
    }
  }

  void feed_string(Thread& t, uint8_t c) {
    Frame& f = t.top();
    const Node& nd = g_.nodes[f.node];
    if (f.sub == kStrNormal && c == '"') {
      if (f.count >= nd.min) {
        pop_value(t);
        emit(t);
      }
      return;
    }
    bool starts = false;
    const int sub = string_step(f.sub, c, &starts);
    if (sub < 0) return;
    if (starts) {
      if (f.count >= nd.max) return;
      ++f.count;
    }
    f.sub = static_cast<uint8_t>(sub);
    emit(t);
  }

  // A number or literal that may end here also hands the byte to its parent.
  void finish_then_feed(const Thread& t, uint8_t c) {
    Thread done;
    done.copy_from(t);
    pop_value(done);
    feed(done, c);
  }

  void feed_number(Thread& t, uint8_t c, bool may_finish) {
    Frame& f = t.top();
    const bool integer = g_.nodes[f.node].kind == NodeKind::kInteger;
    const uint8_t ph = f.phase;
    if (may_finish && (ph == kNumZero || ph == kNumInt || ph == kNumFrac || ph == kNumExp)) finish_then_feed(t, c);
    int next = -1;
    uint32_t count = 1;
    const bool digit = is_digit(c), exp = c == 'e' || c == 'E';
    switch (ph) {
      case kNumStart:
        if (c == '-') next = kNumMinus;
        else if (c == '0') next = kNumZero;
        else if (digit) next = kNumInt;
        break;
      case kNumMinus:
        if (c == '0') next = kNumZero;
        else if (digit) next = kNumInt;
        break;
      case kNumZero:
        if (c == '.' && !integer) next = kNumDot;
        else if (exp && !integer) next = kNumE;
        break;
      case kNumInt:
        if (digit && f.count < g_.max_number_digits) next = kNumInt, count = f.count + 1;
        else if (c == '.' && !integer) next = kNumDot;
        else if (exp && !integer) next = kNumE;
        break;
      case kNumDot:
        if (digit) next = kNumFrac;
        break;
      case kNumFrac:
        if (digit && f.count < g_.max_number_digits) next = kNumFrac, count = f.count + 1;
        else if (exp) next = kNumE;
        break;
      case kNumE:
        if (c == '+' || c == '-') next = kNumESign;
        else if (digit) next = kNumExp;
        break;
      case kNumESign:
        if (digit) next = kNumExp;
        break;
      case kNumExp:
        if (digit && f.count < kExponentDigits) next = kNumExp, count = f.count + 1;
        break;
      default: break;
    }
    if (next < 0) return;
    f.phase = static_cast<uint8_t>(next);
    f.count = count;
    emit(t);
  }

  void feed_literal(Thread& t, uint8_t c, bool may_finish) {
    Frame& f = t.top();
    const LitNode& ln = g_.lit[f.count];
    if (may_finish && ln.terminal) finish_then_feed(t, c);
    auto it = std::lower_bound(ln.kids.begin(), ln.kids.end(), c,
                               [](const std::pair<uint8_t, uint32_t>& a, uint8_t b) { return a.first < b; });
    if (it == ln.kids.end() || it->first != c) return;
    f.count = it->second;
    emit(t);
  }

  const JsonGrammar& g_;
  JsonMatcher::State& out_;
};

void advance(const JsonGrammar& g, const JsonMatcher::State& in, uint8_t c, JsonMatcher::State& out) {
  out.clear();
  Stepper step(g, out);
  Thread t;
  uint32_t begin = 0;
  for (uint32_t end : in.ends) {
    t.assign(in.frames.data() + begin, end - begin);
    step.feed(t, c);
    begin = end;
  }
}

// Whether a thread is a whole document: numbers and literals that may end
// do, then the root must be done.
bool thread_complete(const JsonGrammar& g, const Frame* frames, uint32_t n) {
  for (uint32_t i = n; i-- > 0;) {
    const Frame& f = frames[i];
    switch (f.type) {
      case FrameType::kRoot: return f.phase == kRootDone || i + 1 < n;
      case FrameType::kNumber:
        if (f.phase != kNumZero && f.phase != kNumInt && f.phase != kNumFrac && f.phase != kNumExp) return false;
        // Finishing the value makes its parent complete only if that is the root.
        if (i != 1 || frames[0].type != FrameType::kRoot) return false;
        break;
      case FrameType::kLiteral:
        if (!g.lit[f.count].terminal) return false;
        if (i != 1 || frames[0].type != FrameType::kRoot) return false;
        break;
      default: return false;
    }
  }
  return false;
}

}  // namespace

JsonMatcher::JsonMatcher(JsonConstraint c) : c_(std::move(c)) { reset(); }

void JsonMatcher::reset() {
  state_.clear();
  Frame root;
  root.type = FrameType::kRoot;
  root.phase = kRootBefore;
  state_.frames.push_back(root);
  state_.ends.push_back(1);
  text_.clear();
}

bool JsonMatcher::accept_bytes(std::string_view bytes) {
  State cur = state_, next;
  for (char ch : bytes) {
    advance(c_.grammar(), cur, static_cast<uint8_t>(ch), next);
    if (next.empty()) return false;
    std::swap(cur, next);
  }
  state_ = std::move(cur);
  text_.append(bytes);
  return true;
}

bool JsonMatcher::accept_token(const TokenTrie& trie, TokenId id) {
  if (trie.is_eog(id)) return complete();
  const std::string_view bytes = trie.token_bytes(id);
  if (bytes.empty()) return false;
  return accept_bytes(bytes);
}

bool JsonMatcher::complete() const {
  uint32_t begin = 0;
  for (uint32_t end : state_.ends) {
    if (thread_complete(c_.grammar(), state_.frames.data() + begin, end - begin)) return true;
    begin = end;
  }
  return false;
}

std::vector<uint8_t> JsonMatcher::allowed_bytes() const {
  std::vector<uint8_t> out;
  State next;
  for (int b = 0; b < 256; ++b) {
    advance(c_.grammar(), state_, static_cast<uint8_t>(b), next);
    if (!next.empty()) out.push_back(static_cast<uint8_t>(b));
  }
  return out;
}

bool JsonMatcher::can_continue() const { return !allowed_bytes().empty(); }

namespace {

// Code points a thread can still add to the string (or free-form key) it is
// in, when between characters; 0 when no thread is.
uint64_t plain_budget(const JsonGrammar& g, const JsonMatcher::State& s) {
  uint64_t best = 0;
  for (uint32_t end : s.ends) {
    const Frame& f = s.frames[end - 1];
    if (f.type == FrameType::kString && f.sub == kStrNormal) {
      const uint32_t max = g.nodes[f.node].max;
      best = std::max<uint64_t>(best, max == kUnbounded ? ~uint64_t{0} : uint64_t{max} - f.count);
    } else if (f.type == FrameType::kKey && (f.phase & kKeyExtraOk) && f.sub == kStrNormal) {
      best = ~uint64_t{0};
    }
  }
  return best;
}

}  // namespace

void JsonMatcher::walk(const TokenTrie& trie, uint32_t node, uint32_t level, std::vector<uint8_t>& mask) const {
  // levels_ was sized for the deepest path by allowed_tokens (no
  // reallocation here: callers up the recursion index into it).
  const uint64_t budget = plain_budget(c_.grammar(), levels_[level]);
  auto mark = [&](uint32_t a, uint32_t b) {
    for (uint32_t k = a; k < b; ++k) mask[trie.order_[k]] = 1;
  };
  const uint32_t stop = trie.end_[node];
  for (uint32_t child = node + 1; child < stop; child = trie.end_[child]) {
    const uint8_t b = trie.byte_[child];
    // Every token below is plain ASCII text that fits: all allowed, and the
    // state they lead to need not be computed.
    if (budget && is_plain(b) && trie.plain_below_[child] && uint64_t{trie.depth_[child]} + 1 <= budget) {
      mark(trie.tok_at_[child], trie.tok_end_[child]);
      continue;
    }
    advance(c_.grammar(), levels_[level], b, levels_[level + 1]);
    if (levels_[level + 1].empty()) continue;
    mark(trie.tok_at_[child], trie.tok_below_[child]);
    if (trie.end_[child] > child + 1) walk(trie, child, level + 1, mask);
  }
}

void JsonMatcher::allowed_tokens(const TokenTrie& trie, std::vector<uint8_t>& mask) const {
  mask.assign(trie.n_vocab(), 0);
  if (levels_.size() < size_t{trie.depth_.empty() ? 0u : trie.depth_[0]} + 2) levels_.resize(trie.depth_[0] + 2);
  levels_[0] = state_;
  if (!trie.byte_.empty()) walk(trie, 0, 0, mask);
  if (complete()) {
    for (TokenId e : trie.eog_tokens()) mask[static_cast<size_t>(e)] = 1;
  }
}

std::string_view TokenTrie::token_bytes(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= n_vocab_) return {};
  return std::string_view(blob_).substr(bytes_begin_[id], bytes_begin_[id + 1] - bytes_begin_[id]);
}

bool TokenTrie::is_eog(TokenId id) const { return std::binary_search(eog_.begin(), eog_.end(), id); }

TokenTrie build_token_trie(const Tokenizer& tok) {
  TokenTrie t;
  t.n_vocab_ = tok.n_tokens();
  t.bytes_begin_.reserve(t.n_vocab_ + 1);
  std::vector<TokenId> ids;
  for (size_t i = 0; i < t.n_vocab_; ++i) {
    const auto id = static_cast<TokenId>(i);
    t.bytes_begin_.push_back(static_cast<uint32_t>(t.blob_.size()));
    if (tok.is_eog(id)) {
      t.eog_.push_back(id);
      continue;
    }
    const TokenType type = tok.token_type(id);
    if (type != TokenType::kNormal && type != TokenType::kByte && type != TokenType::kUndefined) continue;
    const std::string_view p = tok.piece(id);
    if (p.empty()) continue;
    t.blob_.append(p);
    ids.push_back(id);
  }
  t.bytes_begin_.push_back(static_cast<uint32_t>(t.blob_.size()));
  auto bytes = [&](TokenId id) { return t.token_bytes(id); };
  std::sort(ids.begin(), ids.end(), [&](TokenId a, TokenId b) {
    const std::string_view x = bytes(a), y = bytes(b);
    return x != y ? x < y : a < b;
  });

  // Sorted strings give the trie in preorder: each string shares a prefix
  // with the path of the previous one and adds nodes below it.
  std::vector<uint32_t> at_count;  // tokens ending at each node
  t.byte_.push_back(0);
  t.end_.push_back(0);
  at_count.push_back(0);
  std::vector<uint32_t> path = {0};
  std::string_view prev;
  for (size_t k = 0; k < ids.size(); ++k) {
    const std::string_view s = bytes(ids[k]);
    size_t lcp = 0;
    while (lcp < prev.size() && lcp < s.size() && prev[lcp] == s[lcp]) ++lcp;
    while (path.size() > lcp + 1) {
      t.end_[path.back()] = static_cast<uint32_t>(t.byte_.size());
      path.pop_back();
    }
    for (size_t i = lcp; i < s.size(); ++i) {
      path.push_back(static_cast<uint32_t>(t.byte_.size()));
      t.byte_.push_back(static_cast<uint8_t>(s[i]));
      t.end_.push_back(0);
      at_count.push_back(0);
    }
    ++at_count[path.back()];
    prev = s;
  }
  const auto n_nodes = static_cast<uint32_t>(t.byte_.size());
  for (uint32_t n : path) t.end_[n] = n_nodes;

  t.tok_at_.resize(n_nodes);
  t.tok_below_.resize(n_nodes);
  t.tok_end_.resize(n_nodes);
  uint32_t running = 0;
  for (uint32_t n = 0; n < n_nodes; ++n) {
    t.tok_at_[n] = running;
    running += at_count[n];
    t.tok_below_[n] = running;
  }
  for (uint32_t n = 0; n < n_nodes; ++n) t.tok_end_[n] = t.end_[n] < n_nodes ? t.tok_at_[t.end_[n]] : running;
  // ids are sorted by bytes, so their nodes come in preorder: order_ = ids.
  t.order_ = ids;

  t.plain_below_.assign(n_nodes, 1);
  t.depth_.assign(n_nodes, 0);
  for (uint32_t n = n_nodes; n-- > 0;) {
    uint32_t depth = 0;
    uint8_t plain = 1;
    for (uint32_t c = n + 1; c < t.end_[n]; c = t.end_[c]) {
      depth = std::max<uint32_t>(depth, 1u + t.depth_[c]);
      plain &= static_cast<uint8_t>(is_plain(t.byte_[c]) && t.plain_below_[c]);
    }
    t.depth_[n] = static_cast<uint16_t>(std::min<uint32_t>(depth, 65535));
    t.plain_below_[n] = plain;
  }
  std::sort(t.eog_.begin(), t.eog_.end());
  return t;
}

}  // namespace strata::serve
