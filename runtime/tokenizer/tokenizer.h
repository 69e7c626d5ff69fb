// Tokenizers built from a GGUF file's `tokenizer.*` metadata: byte-level BPE
// (`tokenizer.ggml.model = gpt2`, merges plus a pre-tokenizer named by
// `tokenizer.ggml.pre`) and SentencePiece-style BPE (`llama`: scores, byte
// fallback, the U+2581 space). Text -> ids, ids -> bytes, and a streaming
// detokenizer that never emits a broken UTF-8 sequence.
//
// Behaviour follows llama.cpp's vocabulary code, for which GGUF files are
// made, so ids match what the model was trained on: the vectors in
// ../shared/data/vocab are the check.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/gguf/gguf_reader.h"

namespace strata {

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

// tokenizer.ggml.token_type values.
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};
const char* token_type_name(TokenType t);

enum class VocabKind : uint8_t {
  kBpe,  // tokenizer.ggml.model = gpt2: byte-level BPE with merges
  kSpm,  // tokenizer.ggml.model = llama: SentencePiece BPE with scores
};

struct TokenizeOptions {
  // Add BOS / EOS as tokenizer.ggml.add_bos_token / add_eos_token say.
  bool add_special = true;
  // Turn the text of control tokens (<|im_end|>, <s>, ...) into those
  // tokens. Off, such text is tokenized like any other text. User-defined
  // tokens (added words) are always matched, as the model's own tokenizer
  // does.
  bool parse_special = false;
};

struct DetokenizeOptions {
  // Drop a leading BOS and a trailing EOS that add_special would add.
  bool remove_special = false;
  // Render control and unknown tokens as their text; off, they produce nothing.
  bool render_special = false;
  // Apply the vocabulary's clean-up (GPT-2 style " ," -> "," and friends,
  // for vocabularies whose pre-tokenizer asks for it). Off gives the exact
  // concatenation of the pieces.
  bool clean_up_spaces = true;
};

class Tokenizer {
 public:
  // Reads tokenizer.* from the model's metadata. Errors name the key.
  static Result<Tokenizer> from_gguf(const gguf::GgufModel& model);
  static Result<Tokenizer> from_gguf(const gguf::GgufFile& file);

  // Any bytes are accepted: invalid UTF-8 keeps its bytes (byte-level BPE)
  // or falls back to byte tokens (SentencePiece). Thread-safe. Text over
  // 2 GiB is tokenized in parts cut after a newline.
  std::vector<TokenId> tokenize(std::string_view text, const TokenizeOptions& options = {}) const;

  // The bytes a token stands for. Control and unknown tokens give their text
  // only with `special`, else nothing; unused tokens give nothing. Ids out of
  // range give nothing.
  std::string_view piece(TokenId id, bool special = false) const;
  std::string detokenize(std::span<const TokenId> ids, const DetokenizeOptions& options = {}) const;

  // Vocabulary.
  VocabKind kind() const;
  const std::string& model_name() const;      // tokenizer.ggml.model
  const std::string& pre_name() const;        // tokenizer.ggml.pre ("" for SPM)
  size_t n_tokens() const;
  bool valid(TokenId id) const { return id >= 0 && static_cast<size_t>(id) < n_tokens(); }
  // The token's text as stored in the vocabulary (byte-level or U+2581 form).
  std::string_view token_text(TokenId id) const;
  TokenType token_type(TokenId id) const;
  float token_score(TokenId id) const;
  std::optional<TokenId> find_token(std::string_view text) const;

  // Special tokens (kNoToken when the vocabulary has none).
  TokenId bos() const;
  TokenId eos() const;
  TokenId eot() const;  // end of turn: tokenizer.ggml.eot_token_id, or found by its text
  TokenId eom() const;
  TokenId unk() const;
  TokenId pad() const;
  TokenId sep() const;
  TokenId newline() const;
  bool add_bos() const;
  bool add_eos() const;
  bool add_space_prefix() const;  // SPM: a space is put before the text
  // Whether generation stops at this token (EOS, EOT, EOM and the usual
  // end-of-turn control tokens).
  bool is_eog(TokenId id) const;

  // Problems that did not stop loading (an out-of-range padding id, which
  // llama.cpp also ignores; a missing pre-tokenizer name).
  const std::vector<std::string>& warnings() const;

  // The loaded vocabulary (runtime/tokenizer/vocab.h, internal).
  struct Vocab;

 private:
  explicit Tokenizer(std::shared_ptr<const Vocab> v) : v_(std::move(v)) {}
  std::shared_ptr<const Vocab> v_;  // immutable after loading; copies share it
};

// Turns a stream of generated tokens into text that is always whole UTF-8
// characters: bytes of a character split across tokens are held back until it
// is complete, and bytes that cannot start or continue a character become
// U+FFFD. No clean-up and no leading-space removal (those apply to whole
// texts, see Tokenizer::detokenize).
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(Tokenizer tokenizer, bool render_special = false)
      : tok_(std::move(tokenizer)), render_special_(render_special) {}

  // The text that is complete after this token (often empty or one piece).
  std::string push(TokenId id);
  // Whatever is held back, each incomplete sequence as U+FFFD; resets.
  std::string flush();
  size_t pending_bytes() const { return pending_.size(); }

 private:
  Tokenizer tok_;
  bool render_special_;
  std::string pending_;
};

// Bytes as valid UTF-8: complete sequences are kept, every maximal invalid
// or truncated part becomes one U+FFFD. Exposed for the streaming
// detokenizer's tests and for printing.
std::string sanitize_utf8(std::string_view bytes);

}  // namespace strata
