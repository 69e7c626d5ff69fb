// The loaded vocabulary behind a Tokenizer (internal to runtime/tokenizer):
// token texts and attributes, the merge table, the special-token matcher and
// the two merge algorithms. Immutable after loading, so one instance serves
// any number of threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata {

// Token attributes as llama.cpp keeps them: the type as a bit, plus what the
// loader adds (a text-detected end-of-turn token becomes control; Phi-3's
// special tokens eat the whitespace after them).
enum TokenAttr : uint8_t {
  kAttrNormal = 1 << 0,
  kAttrUnknown = 1 << 1,
  kAttrControl = 1 << 2,
  kAttrUserDefined = 1 << 3,
  kAttrUnused = 1 << 4,
  kAttrByte = 1 << 5,
  kAttrLstrip = 1 << 6,
  kAttrRstrip = 1 << 7,
};

// (left, right) token pair -> merge rank and result, open addressing.
class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    uint32_t rank = 0;
    TokenId merged = kNoToken;
  };

  void reserve(size_t n);
  // Keeps the first rank when a pair is listed twice (as llama.cpp does).
  void insert(TokenId left, TokenId right, uint32_t rank, TokenId merged);
  const Entry* find(TokenId left, TokenId right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t key = pack(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(TokenId l, TokenId r) {
    return (uint64_t{static_cast<uint32_t>(l)} << 32) | static_cast<uint32_t>(r);
  }
  size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::vector<Entry> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

// Finds every occurrence of every special-token text in a text: a byte trie
// whose root is a flat table, so most positions are rejected in one load.
class SpecialTrie {
 public:
  void insert(std::string_view text, TokenId id);
  bool empty() const { return nodes_.size() <= 1; }
  // Calls fn(pos, id) for every token whose text starts at `pos`.
  template <typename Fn>
  void for_each_match(std::string_view text, Fn&& fn) const {
    if (empty()) return;
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    for (size_t pos = 0; pos < text.size(); ++pos) {
      uint32_t node = root_[s[pos]];
      size_t i = pos + 1;
      while (node != 0) {
        if (nodes_[node].id != kNoToken) fn(pos, nodes_[node].id);
        if (i >= text.size()) break;
        node = child(node, s[i++]);
      }
    }
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> kids;  // sorted by byte
    TokenId id = kNoToken;
  };
  uint32_t child(uint32_t node, uint8_t b) const;
  std::array<uint32_t, 256> root_{};  // 0: no child
  std::vector<Node> nodes_ = std::vector<Node>(1);  // [0] is the root (its kids live in root_)
};

struct Tokenizer::Vocab {
  VocabKind kind = VocabKind::kBpe;
  std::string model_name, pre_name;

  std::vector<std::string> texts;
  std::vector<float> scores;
  std::vector<TokenType> types;
  std::vector<uint8_t> attrs;
  std::vector<std::string> pieces;  // bytes of each token, control tokens as their text
  std::unordered_map<std::string_view, TokenId> by_text;  // views into `texts`

  // Byte-level BPE.
  MergeTable merges;
  std::array<TokenId, 256> byte_token{};  // token of each byte's alphabet character
  std::optional<PreTokenizer> pre;
  bool ignore_merges = false;
  bool clean_spaces = false;

  // SentencePiece: the <0xXX> token of each byte (byte fallback).
  std::array<TokenId, 256> spm_byte_token{};
  bool add_space_prefix = false;
  // No token has U+2581 after another character, so no merge crosses the
  // start of a "word" (a U+2581 after a non-U+2581): words merge separately.
  bool spm_words_independent = false;

  TokenId bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken, unk = kNoToken, pad = kNoToken,
          sep = kNoToken, nl = kNoToken;
  bool add_bos = false, add_eos = false;
  std::vector<TokenId> eog;  // sorted

  // Special tokens in the order llama.cpp partitions text by them (longest
  // text first); priority[id] is the position in that order.
  std::unordered_map<TokenId, uint32_t> special_priority;
  SpecialTrie special_all;           // control, user-defined and unknown tokens
  SpecialTrie special_user_defined;  // the ones matched without parse_special

  std::vector<std::string> warnings;

  std::optional<TokenId> find(std::string_view text) const {
    auto it = by_text.find(text);
    if (it == by_text.end()) return std::nullopt;
    return it->second;
  }
};

// Merge results of pieces seen earlier in one tokenize call: natural text
// repeats its words, and merging is most of the cost. Lives for one call, so
// a Tokenizer stays immutable and shareable between threads.
class PieceCache {
 public:
  // Appends the tokens of `piece` to `out`, from the cache or by calling
  // merge(out) and remembering what it appended.
  template <typename Merge>
  void tokens(std::string_view piece, std::vector<TokenId>* out, Merge&& merge) {
    if (piece.size() < 2 || piece.size() > kMaxPieceBytes) return merge(out);
    if (auto it = map_.find(piece); it != map_.end()) {
      out->insert(out->end(), pool_.begin() + it->second.first, pool_.begin() + it->second.second);
      return;
    }
    const size_t before = out->size();
    merge(out);
    if (map_.size() >= kMaxEntries) return;
    const auto begin = static_cast<uint32_t>(pool_.size());
    pool_.insert(pool_.end(), out->begin() + before, out->end());
    map_.emplace(std::string(piece), std::make_pair(begin, static_cast<uint32_t>(pool_.size())));
  }

 private:
  static constexpr size_t kMaxPieceBytes = 64;
  static constexpr size_t kMaxEntries = 1 << 16;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, Hash, std::equal_to<>> map_;
  std::vector<TokenId> pool_;
};

// Merge algorithms (tokenizer_merge.cpp). Both append to `out`.
struct MergeScratch;
struct MergeScratchDeleter {
  void operator()(MergeScratch* s) const;
};
using MergeScratchPtr = std::unique_ptr<MergeScratch, MergeScratchDeleter>;
MergeScratchPtr make_merge_scratch();

// Byte-level BPE over one pre-tokenized piece (raw bytes).
void bpe_merge_piece(const Tokenizer::Vocab& v, std::string_view piece, MergeScratch* scratch,
                     std::vector<TokenId>* out);
// SentencePiece over one fragment, already space-escaped (U+2581).
void spm_merge_fragment(const Tokenizer::Vocab& v, std::string_view text, MergeScratch* scratch, PieceCache* cache,
                        std::vector<TokenId>* out);

// Loading (tokenizer_load.cpp).
Result<std::shared_ptr<const Tokenizer::Vocab>> load_vocab(const gguf::GgufFile& file);

}  // namespace strata
