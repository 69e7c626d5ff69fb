// Pre-tokenizers of byte-level BPE vocabularies: the split patterns each
// `tokenizer.ggml.pre` name stands for, and splitting text into the pieces
// BPE merges within. Pieces are byte ranges of the input, so text that is not
// valid UTF-8 keeps its bytes (an invalid byte is classified as U+FFFD).
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/tokenizer/regex.h"

namespace strata {

// What a `tokenizer.ggml.pre` name implies besides its patterns.
struct PreTokenizerInfo {
  std::string_view name;
  std::vector<std::string_view> patterns;  // applied in order, each splitting every piece further
  bool clean_spaces = true;                // detokenize removes " ," " ." " 's" ... (GPT-2 clean-up)
  bool ignore_merges = false;              // a piece that is itself a token is not merged
  bool add_bos = false;                    // default of tokenizer.ggml.add_bos_token
};

// The table entry for `name`, or nullptr when strata does not know it.
const PreTokenizerInfo* find_pre_tokenizer(std::string_view name);
// Every known name, for error messages and tests.
std::vector<std::string_view> pre_tokenizer_names();

// Byte range [begin, end) of the input.
using Piece = std::pair<uint32_t, uint32_t>;

struct PreTokenizeScratch {
  std::vector<uint32_t> cps;       // code points of the text
  std::vector<uint32_t> offsets;   // byte offset of each code point, plus the end
  std::vector<Piece> spans, next;  // code point ranges while splitting
  RegexScratch regex;
};

class PreTokenizer {
 public:
  static Result<PreTokenizer> create(const PreTokenizerInfo& info);

  // Splits `text` into consecutive pieces covering all of it: each pattern
  // turns every piece into its matches and the stretches between them
  // (Hugging Face's "Isolated" split behaviour).
  void split(std::string_view text, PreTokenizeScratch* scratch, std::vector<Piece>* pieces) const;

 private:
  std::vector<Regex> regexes_;
};

}  // namespace strata
