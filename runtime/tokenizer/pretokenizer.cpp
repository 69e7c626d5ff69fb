// The pre-tokenizer table and the split loop. The patterns are the split
// regexes of each model family's tokenizer.json, written in the syntax of
// regex.h; the flags per name follow how llama.cpp's loader treats that name,
// because GGUF files are made for it.
#include "runtime/tokenizer/pretokenizer.h"

#include <string>

#include "runtime/tokenizer/unicode.h"

namespace strata {

namespace {

// GPT-2's ByteLevel pattern.
constexpr std::string_view kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Llama 3 (and Qwen 2 with single digits).
constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-4o / Llama 4: case-aware words.
constexpr std::string_view kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// DeepSeek LLM (V1/V2): the letter class is the cased letters (Lu, Ll, Lt)
// of the Unicode version the tokenizer was built with, spelled out as ranges
// in its tokenizer.json; it is kept literally, not regenerated, because a
// newer Unicode would add letters the model never saw split this way.
constexpr std::string_view kDeepseekLlmLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
// ASCII punctuation (the ranges take in the ASCII letters too, but the
// pattern before has split those off), fullwidth forms, curly quotes and the
// ideographic space, comma and full stop.
constexpr std::string_view kDeepseekLlmPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
// CJK ideographs, U+0800..U+4E00 and Hangul (the range is as wide as the
// original pattern has it).
constexpr std::string_view kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

constexpr std::string_view kDeepseekV3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+)"
    R"(| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::vector<PreTokenizerInfo>& table() {
  static const std::vector<PreTokenizerInfo> t = [] {
    std::vector<PreTokenizerInfo> v;
    auto add = [&v](std::string_view name, std::vector<std::string_view> patterns, bool clean_spaces,
                    bool ignore_merges = false, bool add_bos = false) {
      v.push_back({name, std::move(patterns), clean_spaces, ignore_merges, add_bos});
    };
    const std::vector<std::string_view> def = {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)",
                                               R"([0-9][0-9][0-9])"};
    add("default", def, true);
    for (auto n : {"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}) add(n, {kLlama3}, true, true, true);
    add("deepseek-llm",
        {R"([\r\n])", kDeepseekLlmLetters, kDeepseekLlmPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"}, false);
    add("deepseek-coder", {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}, false);
    const std::vector<std::string_view> v3 = {R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
                                              kDeepseekV3Main};
    add("deepseek-v3", v3, false);
    for (auto n : {"qwen2", "deepseek-r1-qwen"}) add(n, {kQwen2}, false);
    for (auto n : {"stablelm2", "megrez"}) add(n, {kQwen2}, true);
    for (auto n : {"gpt-2", "phi-2", "mpt", "olmo", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "exaone4"}) {
      add(n, {kGpt2}, true);
    }
    for (auto n : {"starcoder", "refact", "codeshell", "exaone", "minerva-7b"}) add(n, {R"(\p{N})", kGpt2}, true);
    for (auto n : {"smollm", "command-r"}) add(n, {R"(\p{N})", kGpt2}, false);
    add("falcon", {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, R"([0-9][0-9][0-9])"}, true);
    for (auto n : {"gpt-4o", "llama4"}) add(n, {kGpt4o}, false);
    return v;
  }();
  return t;
}

}  // namespace

const PreTokenizerInfo* find_pre_tokenizer(std::string_view name) {
  for (const auto& info : table()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

std::vector<std::string_view> pre_tokenizer_names() {
  std::vector<std::string_view> names;
  for (const auto& info : table()) names.push_back(info.name);
  return names;
}

Result<PreTokenizer> PreTokenizer::create(const PreTokenizerInfo& info) {
  PreTokenizer p;
  for (std::string_view pattern : info.patterns) {
    auto re = Regex::compile(pattern);
    if (!re.is_ok()) {
      return internal_error("pre-tokenizer '" + std::string(info.name) + "': " + re.status().message());
    }
    p.regexes_.push_back(std::move(re).value());
  }
  return p;
}

void PreTokenizer::split(std::string_view text, PreTokenizeScratch* sc, std::vector<Piece>* pieces) const {
  pieces->clear();
  if (text.empty()) return;
  auto& cps = sc->cps;
  auto& offsets = sc->offsets;
  cps.clear();
  offsets.clear();
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    offsets.push_back(static_cast<uint32_t>(i));
    i += unicode::decode_utf8(text, i, &cp);
    cps.push_back(cp);
  }
  offsets.push_back(static_cast<uint32_t>(text.size()));

  auto& spans = sc->spans;
  auto& next = sc->next;
  spans.assign(1, {0, static_cast<uint32_t>(cps.size())});
  for (const Regex& re : regexes_) {
    next.clear();
    for (const auto& [b, e] : spans) {
      const uint32_t* subject = cps.data() + b;
      const size_t n = e - b;
      size_t pos = 0;   // start of the stretch not yet emitted
      size_t from = 0;  // where the next search starts
      size_t mb, me;
      while (from < n && re.search(subject, n, from, &sc->regex, &mb, &me)) {
        if (me == mb) {  // an empty match splits nothing
          from = mb + 1;
          continue;
        }
        if (mb > pos) next.push_back({static_cast<uint32_t>(b + pos), static_cast<uint32_t>(b + mb)});
        next.push_back({static_cast<uint32_t>(b + mb), static_cast<uint32_t>(b + me)});
        pos = from = me;
      }
      if (pos < n) next.push_back({static_cast<uint32_t>(b + pos), e});
    }
    spans.swap(next);
  }
  pieces->reserve(spans.size());
  for (const auto& [b, e] : spans) pieces->push_back({offsets[b], offsets[e]});
}

}  // namespace strata
