// The two merge algorithms and their lookup structures. Byte-level BPE
// merges the adjacent pair of lowest merge rank first (leftmost on ties);
// SentencePiece merges the adjacent pair whose joined text is the token of
// highest score (leftmost on ties), then falls back to <0xXX> byte tokens for
// what formed no token. Both use a heap of candidate pairs and drop stale
// candidates when they surface, so a word of n bytes costs O(n log n).
#include <algorithm>

#include "runtime/tokenizer/unicode.h"
#include "runtime/tokenizer/vocab.h"

namespace strata {

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  int bits = 4;
  while (cap < n * 2) {
    cap <<= 1;
    ++bits;
  }
  slots_.assign(cap, Entry{});
  mask_ = cap - 1;
  shift_ = 64 - bits;
  size_ = 0;
}

void MergeTable::insert(TokenId left, TokenId right, uint32_t rank, TokenId merged) {
  if ((size_ + 1) * 2 > slots_.size()) {
    std::vector<Entry> old = std::move(slots_);
    reserve(std::max<size_t>(16, old.size()));
    for (const Entry& e : old) {
      if (e.key != kEmpty) insert(static_cast<TokenId>(e.key >> 32), static_cast<TokenId>(e.key & 0xFFFFFFFF), e.rank, e.merged);
    }
  }
  const uint64_t key = pack(left, right);
  for (size_t i = slot(key);; i = (i + 1) & mask_) {
    Entry& e = slots_[i];
    if (e.key == key) return;
    if (e.key == kEmpty) {
      e = {key, rank, merged};
      ++size_;
      return;
    }
  }
}

void SpecialTrie::insert(std::string_view text, TokenId id) {
  if (text.empty()) return;
  auto b0 = static_cast<uint8_t>(text[0]);
  if (root_[b0] == 0) {
    root_[b0] = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  uint32_t node = root_[b0];
  for (size_t i = 1; i < text.size(); ++i) {
    const auto b = static_cast<uint8_t>(text[i]);
    uint32_t next = child(node, b);
    if (next == 0) {
      next = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& kids = nodes_[node].kids;
      kids.insert(std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, uint32_t{0})),
                  std::make_pair(b, next));
    }
    node = next;
  }
  if (nodes_[node].id == kNoToken) nodes_[node].id = id;
}

uint32_t SpecialTrie::child(uint32_t node, uint8_t b) const {
  const auto& kids = nodes_[node].kids;
  auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, uint32_t{0}));
  return it != kids.end() && it->first == b ? it->second : 0;
}

namespace {
constexpr TokenId kDead = -2;  // a symbol merged into its left neighbour
}

struct MergeScratch {
  struct Sym {
    TokenId id;
    int32_t prev, next;
  };
  struct Pair {
    uint32_t rank;
    uint32_t left;
    TokenId left_id, right_id;
  };
  struct SpmSym {
    uint32_t begin, len;
    int32_t prev, next;
  };
  struct SpmPair {
    float score;
    uint32_t left, right, size;
  };
  std::vector<Sym> syms;
  std::vector<Pair> heap;
  std::vector<SpmSym> spm;
  std::vector<SpmPair> spm_heap;
  std::string encoded;
};

void MergeScratchDeleter::operator()(MergeScratch* s) const { delete s; }
MergeScratchPtr make_merge_scratch() { return MergeScratchPtr(new MergeScratch()); }

void bpe_merge_piece(const Tokenizer::Vocab& v, std::string_view piece, MergeScratch* sc,
                     std::vector<TokenId>* out) {
  const size_t n = piece.size();
  if (n == 0) return;
  const auto* bytes = reinterpret_cast<const uint8_t*>(piece.data());
  if (v.ignore_merges && n > 1) {
    sc->encoded.clear();
    for (size_t i = 0; i < n; ++i) unicode::append_utf8(unicode::byte_to_codepoint(bytes[i]), &sc->encoded);
    if (auto id = v.find(sc->encoded)) {
      out->push_back(*id);
      return;
    }
  }
  if (n == 1) {
    if (v.byte_token[bytes[0]] != kNoToken) out->push_back(v.byte_token[bytes[0]]);
    return;
  }

  auto& syms = sc->syms;
  auto& heap = sc->heap;
  syms.resize(n);
  for (size_t i = 0; i < n; ++i) {
    syms[i] = {v.byte_token[bytes[i]], static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
  }
  // Min-heap on (rank, left position).
  auto worse = [](const MergeScratch::Pair& a, const MergeScratch::Pair& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  heap.clear();
  auto add_pair = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = syms[left].next;
    if (right < 0) return;
    const MergeTable::Entry* e = v.merges.find(syms[left].id, syms[right].id);
    if (!e) return;
    heap.push_back({e->rank, static_cast<uint32_t>(left), syms[left].id, syms[right].id});
    std::push_heap(heap.begin(), heap.end(), worse);
  };
  for (size_t i = 0; i + 1 < n; ++i) add_pair(static_cast<int32_t>(i));

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), worse);
    const MergeScratch::Pair p = heap.back();
    heap.pop_back();
    auto& left = syms[p.left];
    // Stale when either side changed since the pair was queued.
    if (left.id != p.left_id || left.next < 0 || syms[left.next].id != p.right_id) continue;
    auto& right = syms[left.next];
    left.id = v.merges.find(p.left_id, p.right_id)->merged;
    right.id = kDead;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = static_cast<int32_t>(p.left);
    add_pair(left.prev);
    add_pair(static_cast<int32_t>(p.left));
  }
  // Symbol 0 is never merged away (merges go into the left symbol).
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    if (syms[i].id >= 0) out->push_back(syms[i].id);
  }
}

namespace {

// A SentencePiece symbol: one UTF-8 character, or one byte where the text is
// not valid UTF-8. (llama.cpp sizes a symbol by its lead byte alone, so a
// truncated sequence swallows the bytes after it, U+2581 included; on valid
// text both agree, on invalid text this keeps every byte recoverable.)
size_t symbol_len(std::string_view text, size_t off) {
  uint32_t cp;
  return unicode::decode_utf8(text, off, &cp);
}

// SentencePiece merging of one word (or a whole fragment).
void spm_merge_word(const Tokenizer::Vocab& v, std::string_view text, MergeScratch* sc, std::vector<TokenId>* out) {
  auto& syms = sc->spm;
  auto& heap = sc->spm_heap;
  syms.clear();
  for (size_t off = 0; off < text.size();) {
    const size_t len = symbol_len(text, off);
    const auto i = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), i - 1, -1});
    off += len;
    if (off < text.size()) syms.back().next = i + 1;
  }
  // Max-heap on score, leftmost first on ties.
  auto less = [](const MergeScratch::SpmPair& a, const MergeScratch::SpmPair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  heap.clear();
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t size = syms[left].len + syms[right].len;
    auto id = v.find(text.substr(syms[left].begin, size));
    if (!id) return;
    heap.push_back({v.scores[*id], static_cast<uint32_t>(left), static_cast<uint32_t>(right), size});
    std::push_heap(heap.begin(), heap.end(), less);
  };
  for (size_t i = 1; i < syms.size(); ++i) try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), less);
    const MergeScratch::SpmPair p = heap.back();
    heap.pop_back();
    auto& left = syms[p.left];
    auto& right = syms[p.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != p.size) continue;  // stale
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = static_cast<int32_t>(p.left);
    try_add(left.prev, static_cast<int32_t>(p.left));
    try_add(static_cast<int32_t>(p.left), left.next);
  }

  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    const auto& s = syms[i];
    const std::string_view piece = text.substr(s.begin, s.len);
    if (auto id = v.find(piece)) {
      out->push_back(*id);
      continue;
    }
    // Byte fallback: a character no token covers becomes its UTF-8 bytes.
    for (char c : piece) {
      const TokenId b = v.spm_byte_token[static_cast<uint8_t>(c)];
      if (b != kNoToken) {
        out->push_back(b);
      } else if (v.unk != kNoToken) {
        out->push_back(v.unk);
      }
    }
  }
}

constexpr std::string_view kSpace = "\xE2\x96\x81";

}  // namespace

void spm_merge_fragment(const Tokenizer::Vocab& v, std::string_view text, MergeScratch* sc, PieceCache* cache,
                        std::vector<TokenId>* out) {
  if (text.empty()) return;
  auto merge = [&](std::string_view word) {
    cache->tokens(word, out, [&](std::vector<TokenId>* o) { spm_merge_word(v, word, sc, o); });
  };
  if (!v.spm_words_independent) return spm_merge_word(v, text, sc, out);
  // Cut before every U+2581 that follows another character, walking whole
  // symbols as the merge does, so a cut never falls inside one.
  size_t word = 0;
  bool prev_space = false;
  for (size_t off = 0; off < text.size();) {
    const size_t len = symbol_len(text, off);
    const bool space = text.compare(off, len, kSpace) == 0;
    if (space && !prev_space && off > word) {
      merge(text.substr(word, off - word));
      word = off;
    }
    prev_space = space;
    off += len;
  }
  merge(text.substr(word));
}

}  // namespace strata
