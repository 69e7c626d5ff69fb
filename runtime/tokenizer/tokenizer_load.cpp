// Building a Tokenizer's vocabulary from GGUF metadata: validation of every
// tokenizer.* key (errors name the key and the offending index), the merge
// table, special-token ids and attributes, and the per-token byte pieces.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>

#include "runtime/tokenizer/unicode.h"
#include "runtime/tokenizer/vocab.h"

namespace strata {

namespace {

using gguf::Value;
using gguf::ValueType;

constexpr const char* kModelKey = "tokenizer.ggml.model";
constexpr const char* kPreKey = "tokenizer.ggml.pre";
constexpr const char* kTokensKey = "tokenizer.ggml.tokens";
constexpr const char* kScoresKey = "tokenizer.ggml.scores";
constexpr const char* kTypesKey = "tokenizer.ggml.token_type";
constexpr const char* kMergesKey = "tokenizer.ggml.merges";

// The escaped space of SentencePiece vocabularies, U+2581.
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

std::string type_string(const Value& v) {
  if (!v.is_array()) return gguf::value_type_name(v.type());
  return std::string("array of ") + gguf::value_type_name(v.array_type());
}

std::string quoted(std::string_view s) { return "'" + gguf::printable(s, 60) + "'"; }

Result<const Value*> find_array(const gguf::GgufFile& f, const char* key, bool strings) {
  const Value* v = f.find(key);
  if (!v) return static_cast<const Value*>(nullptr);
  const bool ok = v->is_array() && (strings ? v->array_type() == ValueType::kString
                                            : v->array_type() != ValueType::kString &&
                                                  v->array_type() != ValueType::kArray);
  if (!ok) {
    return invalid_format(std::string(key) + ": expected an array of " + (strings ? "strings" : "numbers") +
                          ", got " + type_string(*v));
  }
  return v;
}

Result<std::optional<bool>> find_bool(const gguf::GgufFile& f, const char* key) {
  const Value* v = f.find(key);
  if (!v) return std::optional<bool>();
  auto b = v->as_bool();
  if (!b || v->type() != ValueType::kBool) {
    return invalid_format(std::string(key) + ": expected a bool, got " + type_string(*v));
  }
  return std::optional<bool>(*b);
}

// A token id key: absent -> nullopt; -1 (some converters' "none") -> kNoToken.
Result<std::optional<TokenId>> find_id(const gguf::GgufFile& f, const std::string& key) {
  const Value* v = f.find(key);
  if (!v) return std::optional<TokenId>();
  if (v->is_array() || !gguf::value_type_is_integer(v->type())) {
    return invalid_format(key + ": expected an integer token id, got " + type_string(*v));
  }
  auto i = v->as_i64();
  if (i && *i == -1) return std::optional<TokenId>(kNoToken);
  auto u = v->as_u64();
  if (!u || *u > 0x7FFFFFFF) {
    return invalid_format(key + ": expected a token id, got " + (i ? std::to_string(*i) : std::string("a huge value")));
  }
  return std::optional<TokenId>(static_cast<TokenId>(*u));
}

uint8_t attr_of(TokenType t) {
  switch (t) {
    case TokenType::kNormal: return kAttrNormal;
    case TokenType::kUnknown: return kAttrUnknown;
    case TokenType::kControl: return kAttrControl;
    case TokenType::kUserDefined: return kAttrUserDefined;
    case TokenType::kUnused: return kAttrUnused;
    case TokenType::kByte: return kAttrByte;
    default: return 0;
  }
}

// "<0x0A>" -> 10; -1 when the text is not in that form.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return -1;
    v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

// Texts that mark a token as control even when the file says otherwise, so
// that it is only parsed on request: end of turn and fill-in-the-middle
// markers of the common model families (as llama.cpp's loader does).
constexpr const char* kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "<end_of_utterance>",
};
constexpr const char* kControlLooking[] = {
    "<|eom_id|>",
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>",
    "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>", "<SUF>",
    "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
    "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>",
};
// Generation also stops at these when present.
constexpr const char* kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
    "[EOT]", "<|end_of_text|>", "<end_of_utterance>", "<|return|>", "<|call|>",
};

Status load_tokens(const gguf::GgufFile& f, Tokenizer::Vocab* v) {
  STRATA_ASSIGN_OR_RETURN(const Value* tokens, find_array(f, kTokensKey, true));
  if (!tokens) return not_found(std::string(kTokensKey) + ": missing; the file has no vocabulary");
  const size_t n = tokens->strings().size();
  if (n == 0) return invalid_format(std::string(kTokensKey) + ": expected at least one token, got an empty array");
  if (n > 0x7FFFFFFF) return invalid_format(std::string(kTokensKey) + ": too many tokens");
  v->texts = tokens->strings();

  STRATA_ASSIGN_OR_RETURN(const Value* scores, find_array(f, kScoresKey, false));
  if (scores && scores->array_size() < n) {
    return invalid_format(std::string(kScoresKey) + ": expected " + std::to_string(n) + " scores, got " +
                          std::to_string(scores->array_size()));
  }
  STRATA_ASSIGN_OR_RETURN(const Value* types, find_array(f, kTypesKey, false));
  if (types && types->array_size() < n) {
    return invalid_format(std::string(kTypesKey) + ": expected " + std::to_string(n) + " types, got " +
                          std::to_string(types->array_size()));
  }
  v->scores.resize(n, 0.0f);
  v->types.resize(n, TokenType::kNormal);
  v->attrs.resize(n, kAttrNormal);
  v->by_text.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    if (scores) v->scores[i] = static_cast<float>(scores->number_at(i));
    if (types) {
      const int64_t t = types->int_at(i);
      v->types[i] = t >= 1 && t <= 6 ? static_cast<TokenType>(t) : TokenType::kUndefined;
      v->attrs[i] = attr_of(v->types[i]);
    }
    const std::string& text = v->texts[i];
    if (text.empty()) continue;  // unreachable by text; its piece is empty
    auto [it, inserted] = v->by_text.emplace(std::string_view(text), static_cast<TokenId>(i));
    if (!inserted) {
      return invalid_format(std::string(kTokensKey) + ": duplicate token " + quoted(text) + " at ids " +
                            std::to_string(it->second) + " and " + std::to_string(i));
    }
    if (v->types[i] == TokenType::kByte && parse_byte_token(text) < 0) {
      return invalid_format(std::string(kTokensKey) + "[" + std::to_string(i) + "]: token_type is byte, so " +
                            "expected text like <0x0A>, got " + quoted(text));
    }
  }
  return Status::ok();
}

Status load_merges(const gguf::GgufFile& f, Tokenizer::Vocab* v) {
  STRATA_ASSIGN_OR_RETURN(const Value* merges, find_array(f, kMergesKey, true));
  if (!merges) {
    return not_found(std::string(kMergesKey) + ": missing; tokenizer.ggml.model 'gpt2' needs merges");
  }
  const auto& list = merges->strings();
  v->merges.reserve(list.size());
  std::string joined;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string& m = list[i];
    // "LEFT RIGHT"; the split is at the first space after the first byte,
    // since a left part may itself start with a space character.
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos || sp + 1 >= m.size()) {
      return invalid_format(std::string(kMergesKey) + "[" + std::to_string(i) + "]: expected 'LEFT RIGHT', got " +
                            quoted(m));
    }
    const std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
    joined.assign(left);
    joined.append(right);
    const auto l = v->find(left), r = v->find(right), j = v->find(joined);
    if (!l || !r || !j) {
      const std::string_view missing = !l ? left : !r ? right : std::string_view(joined);
      return invalid_format(std::string(kMergesKey) + "[" + std::to_string(i) + "]: merge " + quoted(m) +
                            " refers to " + quoted(missing) + ", which is not in " + kTokensKey);
    }
    v->merges.insert(*l, *r, static_cast<uint32_t>(i), *j);
  }
  return Status::ok();
}

// Bytes of every token: the form piece() returns with special = true.
void build_pieces(Tokenizer::Vocab* v) {
  const size_t n = v->texts.size();
  v->pieces.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = v->texts[i];
    const uint8_t a = v->attrs[i];
    std::string& out = v->pieces[i];
    if (a & (kAttrUnknown | kAttrControl | kAttrUserDefined)) {
      out = text;
    } else if (a & kAttrNormal) {
      if (v->kind == VocabKind::kSpm) {
        for (size_t p = 0; p < text.size();) {
          if (text.compare(p, kSpmSpace.size(), kSpmSpace) == 0) {
            out.push_back(' ');
            p += kSpmSpace.size();
          } else {
            out.push_back(text[p++]);
          }
        }
      } else {
        // Byte-level: each character of the alphabet is one byte; a character
        // outside it (not produced by real converters) is kept as UTF-8.
        for (size_t p = 0; p < text.size();) {
          uint32_t cp;
          const size_t len = unicode::decode_utf8(text, p, &cp);
          const int b = len > 1 || cp < 0x80 ? unicode::codepoint_to_byte(cp) : -1;
          if (b >= 0) {
            out.push_back(static_cast<char>(b));
          } else {
            out.append(text, p, len);
          }
          p += len;
        }
      }
    } else if (a & kAttrByte) {
      out.push_back(static_cast<char>(parse_byte_token(text)));
    }
    // unused and undefined tokens decode to nothing
  }
}

Status load_special_ids(const gguf::GgufFile& f, Tokenizer::Vocab* v) {
  const auto n = static_cast<TokenId>(v->texts.size());
  auto in_range = [n](TokenId id) { return id >= 0 && id < n; };
  struct IdKey {
    const char* key;
    TokenId* id;
    bool required_in_range;  // out of range is an error; else a warning and "none"
  };
  const IdKey keys[] = {
      {"tokenizer.ggml.bos_token_id", &v->bos, true},     {"tokenizer.ggml.eos_token_id", &v->eos, true},
      {"tokenizer.ggml.eot_token_id", &v->eot, true},     {"tokenizer.ggml.eom_token_id", &v->eom, true},
      {"tokenizer.ggml.unknown_token_id", &v->unk, true}, {"tokenizer.ggml.padding_token_id", &v->pad, false},
      {"tokenizer.ggml.seperator_token_id", &v->sep, false},
  };
  for (const auto& k : keys) {
    if (*k.id != kNoToken && !in_range(*k.id)) *k.id = kNoToken;  // a default the vocabulary is too small for
    STRATA_ASSIGN_OR_RETURN(auto id, find_id(f, k.key));
    if (!id) continue;
    if (*id != kNoToken && !in_range(*id)) {
      const std::string msg = std::string(k.key) + ": expected an id below " + std::to_string(n) + ", got " +
                              std::to_string(*id);
      if (k.required_in_range) return invalid_format(msg);
      v->warnings.push_back(msg + " (ignored)");
      *k.id = kNoToken;
      continue;
    }
    *k.id = *id;
  }

  STRATA_ASSIGN_OR_RETURN(auto add_bos, find_bool(f, "tokenizer.ggml.add_bos_token"));
  STRATA_ASSIGN_OR_RETURN(auto add_eos, find_bool(f, "tokenizer.ggml.add_eos_token"));
  if (add_bos) v->add_bos = *add_bos;
  if (add_eos) v->add_eos = *add_eos;
  if (v->add_bos && v->bos == kNoToken) {
    if (add_bos) {
      return invalid_format("tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
    }
    // Only the pre-tokenizer's default asked for BOS.
    v->warnings.push_back("tokenizer.ggml.bos_token_id is not set; no BOS is added");
    v->add_bos = false;
  }
  if (v->add_eos && v->eos == kNoToken) {
    return invalid_format("tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");
  }

  // End of turn by its text when the file does not say, and control-looking
  // tokens made control.
  auto force_control = [v](TokenId id) {
    v->attrs[id] = static_cast<uint8_t>(v->attrs[id] | kAttrControl);
  };
  if (v->eot == kNoToken) {
    for (const char* t : kEotTexts) {
      if (auto id = v->find(t)) {
        v->eot = *id;
        force_control(*id);
        break;
      }
    }
  }
  for (const char* t : kControlLooking) {
    if (auto id = v->find(t)) force_control(*id);
  }
  for (TokenId id : {v->eos, v->eot, v->eom}) {
    if (id != kNoToken) v->eog.push_back(id);
  }
  for (const char* t : kEogTexts) {
    if (auto id = v->find(t)) v->eog.push_back(*id);
  }
  std::sort(v->eog.begin(), v->eog.end());
  v->eog.erase(std::unique(v->eog.begin(), v->eog.end()), v->eog.end());
  return Status::ok();
}

// Which special tokens split text, in llama.cpp's order (longest first; ids
// break ties so the order is deterministic), and Phi-3's strip flags.
void build_special_matchers(const gguf::GgufFile& f, Tokenizer::Vocab* v) {
  std::vector<TokenId> special;
  for (size_t i = 0; i < v->texts.size(); ++i) {
    if ((v->attrs[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) && !v->texts[i].empty()) {
      special.push_back(static_cast<TokenId>(i));
    }
  }
  std::stable_sort(special.begin(), special.end(),
                   [v](TokenId a, TokenId b) { return v->texts[a].size() > v->texts[b].size(); });

  // Phi-3's added tokens strip the whitespace after them (rstrip in its
  // tokenizer.json), except these; GGUF has no per-token flag for it, so it
  // goes by the model name.
  std::string name;
  if (const Value* nv = f.find("general.name"); nv && nv->as_string()) name = *nv->as_string();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (TokenId id : special) v->attrs[id] = static_cast<uint8_t>(v->attrs[id] | kAttrRstrip);
    if (auto id = v->find("</s>")) v->attrs[*id] = static_cast<uint8_t>(v->attrs[*id] | kAttrRstrip);
    for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (auto id = v->find(t)) v->attrs[*id] = static_cast<uint8_t>(v->attrs[*id] & ~kAttrRstrip);
    }
  }

  for (uint32_t p = 0; p < special.size(); ++p) {
    const TokenId id = special[p];
    v->special_priority[id] = p;
    v->special_all.insert(v->texts[id], id);
    if (!(v->attrs[id] & (kAttrControl | kAttrUnknown))) v->special_user_defined.insert(v->texts[id], id);
  }
}

}  // namespace

Result<std::shared_ptr<const Tokenizer::Vocab>> load_vocab(const gguf::GgufFile& f) {
  auto v = std::make_shared<Tokenizer::Vocab>();
  const Value* model = f.find(kModelKey);
  if (!model) return not_found(std::string(kModelKey) + ": missing; the file has no tokenizer");
  if (!model->as_string()) {
    return invalid_format(std::string(kModelKey) + ": expected a string, got " + type_string(*model));
  }
  v->model_name = *model->as_string();
  if (v->model_name == "gpt2") {
    v->kind = VocabKind::kBpe;
  } else if (v->model_name == "llama") {
    v->kind = VocabKind::kSpm;
  } else {
    return unsupported(std::string(kModelKey) + ": expected 'gpt2' (byte-level BPE) or 'llama' (SentencePiece), got " +
                       quoted(v->model_name));
  }

  STRATA_RETURN_IF_ERROR(load_tokens(f, v.get()));

  if (v->kind == VocabKind::kBpe) {
    const Value* pre = f.find(kPreKey);
    if (pre && !pre->as_string()) {
      return invalid_format(std::string(kPreKey) + ": expected a string, got " + type_string(*pre));
    }
    v->pre_name = pre ? *pre->as_string() : "default";
    if (!pre) v->warnings.push_back(std::string(kPreKey) + ": missing, using 'default' (text may split differently from the original model)");
    const PreTokenizerInfo* info = find_pre_tokenizer(v->pre_name);
    if (!info) {
      std::string known;
      for (auto n : pre_tokenizer_names()) known += (known.empty() ? "" : ", ") + std::string(n);
      return unsupported(std::string(kPreKey) + ": expected one of " + known + "; got " + quoted(v->pre_name));
    }
    STRATA_ASSIGN_OR_RETURN(PreTokenizer p, PreTokenizer::create(*info));
    v->pre = std::move(p);
    v->clean_spaces = info->clean_spaces;
    v->ignore_merges = info->ignore_merges;
    v->add_bos = info->add_bos;
    STRATA_RETURN_IF_ERROR(load_merges(f, v.get()));
    std::string ch;
    for (int b = 0; b < 256; ++b) {
      ch.clear();
      unicode::append_utf8(unicode::byte_to_codepoint(static_cast<uint8_t>(b)), &ch);
      v->byte_token[b] = v->find(ch).value_or(kNoToken);
    }
  } else {
    // SentencePiece defaults, as llama.cpp has them.
    v->bos = 1;
    v->eos = 2;
    v->unk = 0;
    v->add_bos = true;
    v->add_space_prefix = true;
    STRATA_ASSIGN_OR_RETURN(auto prefix, find_bool(f, "tokenizer.ggml.add_space_prefix"));
    if (prefix) v->add_space_prefix = *prefix;
    v->spm_words_independent = true;
    for (const std::string& t : v->texts) {
      // U+2581 anywhere after a leading run of U+2581.
      size_t lead = 0;
      while (t.compare(lead, kSpmSpace.size(), kSpmSpace) == 0) lead += kSpmSpace.size();
      if (t.find(kSpmSpace, lead) != std::string::npos) {
        v->spm_words_independent = false;
        break;
      }
    }
    char hex[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      auto id = v->find(hex);
      if (!id) id = v->find(std::string(1, static_cast<char>(b)));
      v->spm_byte_token[b] = id.value_or(kNoToken);
    }
  }

  STRATA_RETURN_IF_ERROR(load_special_ids(f, v.get()));
  build_special_matchers(f, v.get());
  build_pieces(v.get());

  // Newline token: SentencePiece's <0x0A>; for BPE whatever "\n" becomes.
  if (v->kind == VocabKind::kSpm) {
    v->nl = v->spm_byte_token['\n'];
  } else {
    const TokenId nl = v->byte_token['\n'];
    v->nl = nl;
  }
  return std::shared_ptr<const Tokenizer::Vocab>(std::move(v));
}

}  // namespace strata
