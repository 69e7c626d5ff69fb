// Tokenizer: splitting text at special tokens, dispatching the stretches in
// between to BPE or SentencePiece, detokenization with the GPT-2 clean-up,
// and the streaming detokenizer.
#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "runtime/tokenizer/unicode.h"
#include "runtime/tokenizer/vocab.h"

namespace strata {

const char* token_type_name(TokenType t) {
  switch (t) {
    case TokenType::kNormal: return "normal";
    case TokenType::kUnknown: return "unknown";
    case TokenType::kControl: return "control";
    case TokenType::kUserDefined: return "user-defined";
    case TokenType::kUnused: return "unused";
    case TokenType::kByte: return "byte";
    default: return "undefined";
  }
}

Result<Tokenizer> Tokenizer::from_gguf(const gguf::GgufModel& model) { return from_gguf(model.first()); }

Result<Tokenizer> Tokenizer::from_gguf(const gguf::GgufFile& file) {
  STRATA_ASSIGN_OR_RETURN(auto vocab, load_vocab(file));
  return Tokenizer(std::move(vocab));
}

namespace {

// A stretch of input text, or a special token found in it.
struct Fragment {
  TokenId token;        // kNoToken for text
  uint32_t begin, end;  // text bytes
};

bool is_c_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Splits text at special tokens the way llama.cpp does: tokens are taken in
// priority order (longest text first), each claiming its leftmost
// non-overlapping occurrences in the text not yet claimed; tokens flagged
// lstrip/rstrip also swallow the whitespace next to them. Instead of
// rescanning the text once per special token (thousands in some
// vocabularies), all occurrences are found in one trie pass and then
// accepted in that same order.
void partition(const Tokenizer::Vocab& v, std::string_view text, bool parse_special, std::vector<Fragment>* out) {
  out->clear();
  struct Occurrence {
    uint32_t priority, pos;
    TokenId id;
  };
  std::vector<Occurrence> found;
  const SpecialTrie& trie = parse_special ? v.special_all : v.special_user_defined;
  trie.for_each_match(text, [&](size_t pos, TokenId id) {
    found.push_back({v.special_priority.at(id), static_cast<uint32_t>(pos), id});
  });
  if (found.empty()) {
    if (!text.empty()) out->push_back({kNoToken, 0, static_cast<uint32_t>(text.size())});
    return;
  }
  std::sort(found.begin(), found.end(), [](const Occurrence& a, const Occurrence& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.pos < b.pos;
  });

  // Claimed byte ranges: begin -> {end, token or kNoToken for stripped space}.
  std::map<uint32_t, std::pair<uint32_t, TokenId>> claimed;
  auto overlaps = [&claimed](uint32_t b, uint32_t e) {
    auto it = claimed.upper_bound(b);
    if (it != claimed.end() && it->first < e) return true;
    return it != claimed.begin() && std::prev(it)->second.first > b;
  };
  auto free_at = [&](uint32_t pos) { return !overlaps(pos, pos + 1); };
  for (const Occurrence& o : found) {
    const auto len = static_cast<uint32_t>(v.texts[o.id].size());
    if (overlaps(o.pos, o.pos + len)) continue;
    claimed[o.pos] = {o.pos + len, o.id};
    const uint8_t attr = v.attrs[o.id];
    if (attr & kAttrLstrip) {
      uint32_t b = o.pos;
      while (b > 0 && is_c_space(text[b - 1]) && free_at(b - 1)) --b;
      if (b < o.pos) claimed[b] = {o.pos, kNoToken};
    }
    if (attr & kAttrRstrip) {
      uint32_t e = o.pos + len;
      while (e < text.size() && is_c_space(text[e]) && free_at(e)) ++e;
      if (e > o.pos + len) claimed[o.pos + len] = {e, kNoToken};
    }
  }
  uint32_t pos = 0;
  for (const auto& [b, rest] : claimed) {
    if (b > pos) out->push_back({kNoToken, pos, b});
    if (rest.second != kNoToken) out->push_back({rest.second, b, rest.first});
    pos = rest.first;
  }
  if (pos < text.size()) out->push_back({kNoToken, pos, static_cast<uint32_t>(text.size())});
}

}  // namespace

std::vector<TokenId> Tokenizer::tokenize(std::string_view text, const TokenizeOptions& options) const {
  const Vocab& v = *v_;
  // Offsets are 32-bit. Text beyond 2 GiB (far past any context window) is
  // tokenized in parts cut after a newline, each part as if it stood alone.
  constexpr size_t kMaxPart = size_t{1} << 31;
  if (text.size() > kMaxPart) {
    size_t cut = text.rfind('\n', kMaxPart - 1);
    cut = cut == std::string_view::npos ? kMaxPart : cut + 1;
    std::vector<TokenId> out;
    if (options.add_special && v.add_bos && v.bos != kNoToken) out.push_back(v.bos);
    for (std::string_view part : {text.substr(0, cut), text.substr(cut)}) {
      const auto ids = tokenize(part, {.add_special = false, .parse_special = options.parse_special});
      out.insert(out.end(), ids.begin(), ids.end());
    }
    if (options.add_special && v.add_eos && v.eos != kNoToken) out.push_back(v.eos);
    return out;
  }
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  std::vector<Fragment> fragments;
  partition(v, text, options.parse_special, &fragments);
  MergeScratchPtr scratch = make_merge_scratch();
  PieceCache cache;

  if (options.add_special && v.add_bos && v.bos != kNoToken) out.push_back(v.bos);
  if (v.kind == VocabKind::kBpe) {
    PreTokenizeScratch pre_scratch;
    std::vector<Piece> pieces;
    for (const Fragment& f : fragments) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
        continue;
      }
      const std::string_view stretch = text.substr(f.begin, f.end - f.begin);
      v.pre->split(stretch, &pre_scratch, &pieces);
      for (const auto& [b, e] : pieces) {
        const std::string_view piece = stretch.substr(b, e - b);
        cache.tokens(piece, &out, [&](std::vector<TokenId>* o) { bpe_merge_piece(v, piece, scratch.get(), o); });
      }
    }
  } else {
    // SentencePiece: spaces become U+2581, and a space goes before the text
    // at the start and after every special token (add_space_prefix).
    std::string escaped;
    bool after_special = true;
    for (const Fragment& f : fragments) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
        after_special = true;
        continue;
      }
      escaped.clear();
      if (v.add_space_prefix && after_special) escaped += "\xE2\x96\x81";
      for (char c : text.substr(f.begin, f.end - f.begin)) {
        if (c == ' ') {
          escaped += "\xE2\x96\x81";
        } else {
          escaped.push_back(c);
        }
      }
      spm_merge_fragment(v, escaped, scratch.get(), &cache, &out);
      after_special = false;
    }
  }
  if (options.add_special && v.add_eos && v.eos != kNoToken) out.push_back(v.eos);
  return out;
}

std::string_view Tokenizer::piece(TokenId id, bool special) const {
  if (!valid(id)) return {};
  if (!special && (v_->attrs[id] & (kAttrControl | kAttrUnknown))) return {};
  return v_->pieces[id];
}

namespace {

// GPT-2's decode clean-up, in three passes over the text as llama.cpp
// applies it: (1) no space before ? ! . , (2) " ' " becomes "'"; (3) no space
// before the contractions 's 'm 're 've.
std::string clean_up_spaces(std::string s) {
  std::string a;
  a.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ' ' && i + 1 < s.size() && (s[i + 1] == '?' || s[i + 1] == '!' || s[i + 1] == '.' || s[i + 1] == ',')) {
      continue;
    }
    a.push_back(c);
  }
  std::string b;
  b.reserve(a.size());
  size_t eaten = std::string::npos;  // a space already removed by pass 2
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = a[i];
    if (i > 0 && x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && i - 1 != eaten && a[i + 1] == ' ') {
      b.pop_back();  // the space before
      eaten = ++i;   // and the one after, which then counts as no space
    }
    b.push_back(x);
  }
  std::string c;
  c.reserve(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    if (i > 0 && b[i - 1] == ' ' && b[i] == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      const char x2 = i + 2 < b.size() ? b[i + 2] : '\0';
      if (x1 == 's' || x1 == 'm' || (i + 2 < b.size() && ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')))) {
        c.pop_back();
      }
    }
    c.push_back(b[i]);
  }
  return c;
}

}  // namespace

std::string Tokenizer::detokenize(std::span<const TokenId> ids, const DetokenizeOptions& options) const {
  const Vocab& v = *v_;
  if (options.remove_special && v.add_eos && !ids.empty() && ids.back() == v.eos) ids = ids.first(ids.size() - 1);
  std::string out;
  // SentencePiece put a space before the text; the first piece after a
  // leading BOS gives it back. (llama.cpp keeps that space when it removes
  // the BOS; dropping it makes detokenize invert tokenize either way.)
  if (!ids.empty() && ids.front() == v.bos && v.bos != kNoToken) {
    if (!(options.remove_special && v.add_bos)) out.append(piece(v.bos, options.render_special));
    ids = ids.subspan(1);
  }
  bool strip_space = v.add_space_prefix;
  for (TokenId id : ids) {
    std::string_view p = piece(id, options.render_special);
    if (strip_space && !p.empty() && p.front() == ' ') p.remove_prefix(1);
    strip_space = false;
    out.append(p);
  }
  if (options.clean_up_spaces && v.clean_spaces) out = clean_up_spaces(std::move(out));
  return out;
}

VocabKind Tokenizer::kind() const { return v_->kind; }
const std::string& Tokenizer::model_name() const { return v_->model_name; }
const std::string& Tokenizer::pre_name() const { return v_->pre_name; }
size_t Tokenizer::n_tokens() const { return v_->texts.size(); }
std::string_view Tokenizer::token_text(TokenId id) const { return valid(id) ? std::string_view(v_->texts[id]) : ""; }
TokenType Tokenizer::token_type(TokenId id) const { return valid(id) ? v_->types[id] : TokenType::kUndefined; }
float Tokenizer::token_score(TokenId id) const { return valid(id) ? v_->scores[id] : 0.0f; }
std::optional<TokenId> Tokenizer::find_token(std::string_view text) const { return v_->find(text); }
TokenId Tokenizer::bos() const { return v_->bos; }
TokenId Tokenizer::eos() const { return v_->eos; }
TokenId Tokenizer::eot() const { return v_->eot; }
TokenId Tokenizer::eom() const { return v_->eom; }
TokenId Tokenizer::unk() const { return v_->unk; }
TokenId Tokenizer::pad() const { return v_->pad; }
TokenId Tokenizer::sep() const { return v_->sep; }
TokenId Tokenizer::newline() const { return v_->nl; }
bool Tokenizer::add_bos() const { return v_->add_bos; }
bool Tokenizer::add_eos() const { return v_->add_eos; }
bool Tokenizer::add_space_prefix() const { return v_->add_space_prefix; }
bool Tokenizer::is_eog(TokenId id) const { return std::binary_search(v_->eog.begin(), v_->eog.end(), id); }
const std::vector<std::string>& Tokenizer::warnings() const { return v_->warnings; }

std::string sanitize_utf8(std::string_view bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    uint32_t cp;
    const size_t n = unicode::decode_utf8(bytes, i, &cp);
    if (!(cp == unicode::kReplacement && n == 1)) {
      out.append(bytes.substr(i, n));
      i += n;
      continue;
    }
    // One U+FFFD for the maximal part that starts like a valid sequence:
    // a lead byte and the continuation bytes that fit it.
    const auto b0 = static_cast<uint8_t>(bytes[i]);
    size_t want = b0 >= 0xC2 && b0 <= 0xDF ? 2 : b0 >= 0xE0 && b0 <= 0xEF ? 3 : b0 >= 0xF0 && b0 <= 0xF4 ? 4 : 1;
    size_t j = i + 1;
    for (size_t k = 1; k < want && j < bytes.size(); ++k, ++j) {
      const auto b = static_cast<uint8_t>(bytes[j]);
      uint8_t lo = 0x80, hi = 0xBF;
      if (k == 1) {
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
      }
      if (b < lo || b > hi) break;
    }
    out.append(kReplacement);
    i = j;
  }
  return out;
}

std::string StreamingDetokenizer::push(TokenId id) {
  pending_.append(tok_.piece(id, render_special_));
  const size_t complete = unicode::complete_utf8_prefix(pending_);
  if (complete == 0) return {};
  std::string out = sanitize_utf8(std::string_view(pending_).substr(0, complete));
  pending_.erase(0, complete);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace strata
