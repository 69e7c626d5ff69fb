// Tokenizers: every vector pair in ../shared/data/vocab whose vocabulary GGUF
// is present must match exactly (the ids the models' own tokenizers give);
// detokenize(tokenize(x)) == x on those inputs; special tokens parsed only on
// request; the streaming detokenizer on split multi-byte characters; the
// regex engine and Unicode helpers; and malformed tokenizer metadata, which
// must come back as a Status naming the key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "runtime/gguf/gguf_reader.h"
#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/regex.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/unicode.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

const fs::path kVocabDir = fs::path(STRATA_SHARED_DIR) / "data" / "vocab";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct VectorCase {
  std::string text;
  std::vector<TokenId> ids;
};

// The vector format: inputs separated by "\n__ggml_vocab_test__\n" (the
// newline before the marker belongs to the separator, so an input never
// ends with it); outputs one line per input of space-separated ids.
std::vector<VectorCase> read_vectors(const std::string& vocab) {
  const std::string inp = read_file(kVocabDir / ("ggml-vocab-" + vocab + ".gguf.inp"));
  const std::string outp = read_file(kVocabDir / ("ggml-vocab-" + vocab + ".gguf.out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(inp.substr(pos));
      break;
    }
    inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<std::vector<TokenId>> outputs;
  std::istringstream lines(outp);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream ids(line);
    std::vector<TokenId> v;
    for (TokenId id; ids >> id;) v.push_back(id);
    outputs.push_back(std::move(v));
  }
  std::vector<VectorCase> cases;
  EXPECT_EQ(inputs.size(), outputs.size()) << vocab << ": .inp and .out disagree on the number of cases";
  for (size_t i = 0; i < std::min(inputs.size(), outputs.size()); ++i) cases.push_back({inputs[i], outputs[i]});
  return cases;
}

// One load per vocabulary per process (the larger ones have 100k tokens).
const Tokenizer& vocab_tokenizer(const std::string& vocab) {
  static std::mutex mu;
  static std::map<std::string, Tokenizer> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(vocab);
  if (it == cache.end()) {
    const std::string path = (kVocabDir / ("ggml-vocab-" + vocab + ".gguf")).string();
    auto model = gguf::GgufModel::open(path);
    if (!model.is_ok()) {
      ADD_FAILURE() << model.status().to_string();
      std::abort();
    }
    auto tok = Tokenizer::from_gguf(*model);
    if (!tok.is_ok()) {
      ADD_FAILURE() << vocab << ": " << tok.status().to_string();
      std::abort();
    }
    it = cache.emplace(vocab, std::move(tok).value()).first;
  }
  return it->second;
}

std::string ids_string(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += " " + std::to_string(id);
  return s;
}

bool has_gguf(const std::string& vocab) { return fs::exists(kVocabDir / ("ggml-vocab-" + vocab + ".gguf")); }

// Vocabularies with vectors. The last three have no vocabulary GGUF in
// ../shared/data/vocab yet: they need a real model's file and are skipped,
// with that reason, until one is there.
const std::string kVocabs[] = {"deepseek-coder", "deepseek-llm", "gpt-2",     "llama-spm",       "phi-3",
                         "starcoder",      "qwen2",        "llama-bpe", "deepseek-r1-qwen"};

class VocabVectors : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!has_gguf(GetParam())) {
      GTEST_SKIP() << "ggml-vocab-" << GetParam() << ".gguf is not in " << kVocabDir.string()
                   << "; these vectors need a real model's vocabulary";
    }
  }
};

TEST_P(VocabVectors, MatchExactly) {
  const Tokenizer& tok = vocab_tokenizer(GetParam());
  const auto cases = read_vectors(GetParam());
  ASSERT_GT(cases.size(), 40u);
  size_t matched = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto got = tok.tokenize(cases[i].text, {.add_special = false, .parse_special = false});
    EXPECT_EQ(got, cases[i].ids) << GetParam() << " case " << i << " '" << cases[i].text << "'\n  expected"
                                 << ids_string(cases[i].ids) << "\n  got     " << ids_string(got);
    matched += got == cases[i].ids;
  }
  std::printf("[ vectors  ] %s: %zu/%zu match\n", GetParam().c_str(), matched, cases.size());
}

TEST_P(VocabVectors, DetokenizeRoundTrip) {
  const Tokenizer& tok = vocab_tokenizer(GetParam());
  for (const auto& c : read_vectors(GetParam())) {
    const auto ids = tok.tokenize(c.text, {.add_special = false});
    // The exact concatenation of pieces gives the text back; the GPT-2
    // clean-up (on by default for some vocabularies) is lossy by design.
    EXPECT_EQ(tok.detokenize(ids, {.clean_up_spaces = false}), c.text) << GetParam();
    // With BOS/EOS added and removed again the same.
    const auto with_special = tok.tokenize(c.text, {.add_special = true});
    EXPECT_EQ(tok.detokenize(with_special, {.remove_special = true, .clean_up_spaces = false}), c.text)
        << GetParam();
  }
}

TEST_P(VocabVectors, StreamingEqualsWhole) {
  const Tokenizer& tok = vocab_tokenizer(GetParam());
  for (const auto& c : read_vectors(GetParam())) {
    const auto ids = tok.tokenize(c.text, {.add_special = false});
    StreamingDetokenizer stream(tok);
    std::string out;
    for (TokenId id : ids) {
      const std::string part = stream.push(id);
      EXPECT_EQ(sanitize_utf8(part), part) << "a pushed part is not valid UTF-8";
      out += part;
    }
    out += stream.flush();
    std::string whole = tok.detokenize(ids, {.clean_up_spaces = false});
    // The stream keeps SentencePiece's leading space (it cannot know which
    // token is first in a conversation); the whole-text decode drops it.
    if (tok.add_space_prefix() && !c.text.empty()) whole = " " + whole;
    EXPECT_EQ(out, whole) << GetParam() << " '" << c.text << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(Vocab, VocabVectors, ::testing::ValuesIn(kVocabs),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

// --- special tokens, BOS/EOS, metadata of the real vocabularies

TEST(TokenizerSpecial, ControlTokensParsedOnlyOnRequest) {
  const Tokenizer& tok = vocab_tokenizer("gpt-2");
  const std::string text = "Hello<|endoftext|>world";
  const auto plain = tok.tokenize(text, {.add_special = false, .parse_special = false});
  const auto parsed = tok.tokenize(text, {.add_special = false, .parse_special = true});
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0) << "control text must be plain text by default";
  ASSERT_EQ(std::count(parsed.begin(), parsed.end(), 50256), 1);
  EXPECT_EQ(tok.detokenize(plain), text);
  // A control token renders as nothing unless asked for.
  EXPECT_EQ(tok.detokenize(parsed), "Helloworld");
  EXPECT_EQ(tok.detokenize(parsed, {.render_special = true}), text);
  EXPECT_EQ(tok.piece(50256), "");
  EXPECT_EQ(tok.piece(50256, true), "<|endoftext|>");
  EXPECT_TRUE(tok.is_eog(50256));
  EXPECT_EQ(tok.token_type(50256), TokenType::kControl);
}

TEST(TokenizerSpecial, SentencePieceBosAndPrefix) {
  const Tokenizer& tok = vocab_tokenizer("llama-spm");
  EXPECT_EQ(tok.kind(), VocabKind::kSpm);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_EQ(tok.unk(), 0);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.add_eos());
  EXPECT_TRUE(tok.add_space_prefix());
  const auto ids = tok.tokenize("Hello world");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(tok.tokenize("Hello world", {.add_special = false}), std::vector<TokenId>(ids.begin() + 1, ids.end()));
  // "<s>" in text: plain text unless parse_special, then BOS, and the text
  // after a special token gets its own space prefix.
  const auto plain = tok.tokenize("<s>Hi", {.add_special = false});
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  const auto parsed = tok.tokenize("<s>Hi", {.add_special = false, .parse_special = true});
  ASSERT_GE(parsed.size(), 2u);
  EXPECT_EQ(parsed[0], 1);
  EXPECT_EQ(std::vector<TokenId>(parsed.begin() + 1, parsed.end()), tok.tokenize("Hi", {.add_special = false}));
  EXPECT_EQ(tok.newline(), *tok.find_token("<0x0A>"));
  // Byte fallback: U+1F999 is not a token; its four bytes are.
  const auto bytes = tok.tokenize("\xF0\x9F\xA6\x99", {.add_special = false});
  EXPECT_EQ(tok.detokenize(bytes), "\xF0\x9F\xA6\x99");
}

TEST(TokenizerSpecial, Phi3EndOfTurnAndStrip) {
  const Tokenizer& tok = vocab_tokenizer("phi-3");
  const TokenId end = *tok.find_token("<|end|>");
  const TokenId user = *tok.find_token("<|user|>");
  EXPECT_EQ(tok.eot(), end);  // found by its text
  EXPECT_TRUE(tok.is_eog(end));
  EXPECT_TRUE(tok.is_eog(tok.eos()));
  const auto ids = tok.tokenize("<|user|>\nHi<|end|>  \nok", {.add_special = false, .parse_special = true});
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], user);
  // Phi-3's special tokens swallow the whitespace after them.
  const auto after_user = tok.tokenize("Hi", {.add_special = false});
  EXPECT_EQ(std::vector<TokenId>(ids.begin() + 1, ids.begin() + 1 + after_user.size()), after_user);
  const auto end_at = std::find(ids.begin(), ids.end(), end);
  ASSERT_NE(end_at, ids.end());
  EXPECT_EQ(std::vector<TokenId>(end_at + 1, ids.end()), tok.tokenize("ok", {.add_special = false}));
  // Without parse_special the markers are text.
  const auto plain = tok.tokenize("<|user|>", {.add_special = false});
  EXPECT_EQ(std::count(plain.begin(), plain.end(), user), 0);
  EXPECT_EQ(tok.detokenize(plain), "<|user|>");
}

TEST(TokenizerSpecial, UserDefinedTokensAlwaysMatched) {
  // deepseek-coder lists added words as user-defined tokens; the model's own
  // tokenizer matches them in any text (the vectors rely on it: "Führer").
  const Tokenizer& tok = vocab_tokenizer("deepseek-coder");
  const TokenId u = *tok.find_token("\xC3\xBC");
  EXPECT_EQ(tok.token_type(u), TokenType::kUserDefined);
  const auto ids = tok.tokenize("\xC3\xBC", {.add_special = false});
  EXPECT_EQ(ids, std::vector<TokenId>{u});
  // FIM markers are user-defined in the file but control-looking, so they
  // are only parsed on request.
  const TokenId fim = *tok.find_token("<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>");
  const std::string fim_text(tok.token_text(fim));
  const auto plain = tok.tokenize(fim_text, {.add_special = false});
  EXPECT_EQ(std::count(plain.begin(), plain.end(), fim), 0);
  EXPECT_EQ(tok.tokenize(fim_text, {.add_special = false, .parse_special = true}), std::vector<TokenId>{fim});
  EXPECT_EQ(tok.bos(), 32013);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.tokenize("a")[0], 32013);
}

TEST(TokenizerSpecial, CleanUpSpaces) {
  const Tokenizer& gpt2 = vocab_tokenizer("gpt-2");
  const std::string text = "Hello , world ! It 's me ' you ' know .";
  const auto ids = gpt2.tokenize(text, {.add_special = false});
  EXPECT_EQ(gpt2.detokenize(ids, {.clean_up_spaces = false}), text);
  EXPECT_EQ(gpt2.detokenize(ids), "Hello, world! It's me'you'know.");
  // DeepSeek vocabularies do not clean up.
  const Tokenizer& ds = vocab_tokenizer("deepseek-llm");
  EXPECT_EQ(ds.detokenize(ds.tokenize(text, {.add_special = false})), text);
}

TEST(TokenizerSpecial, InvalidUtf8KeepsItsBytes) {
  // Not for the DeepSeek vocabularies: they list the byte-level characters
  // of the bytes UTF-8 never uses (0xC0, 0xC1, 0xF5..0xFF: 'À', 'ÿ', ...)
  // as user-defined tokens, which decode as those characters. Nor for
  // StarCoder, which has no tokens for those bytes at all (they are dropped,
  // as llama.cpp drops them).
  const std::string bad = "a\xFF\xFE b\xC3 \xE2\x82";
  for (const char* vocab : {"gpt-2", "llama-spm", "phi-3"}) {
    const Tokenizer& tok = vocab_tokenizer(vocab);
    const auto ids = tok.tokenize(bad, {.add_special = false});
    EXPECT_EQ(tok.detokenize(ids, {.clean_up_spaces = false}), bad) << vocab;
  }
}

TEST(TokenizerSpecial, OutOfRangeIdsDecodeToNothing) {
  const Tokenizer& tok = vocab_tokenizer("gpt-2");
  EXPECT_EQ(tok.piece(-1), "");
  EXPECT_EQ(tok.piece(static_cast<TokenId>(tok.n_tokens())), "");
  const std::vector<TokenId> ids = {-5, 15496, 1 << 30};
  EXPECT_EQ(tok.detokenize(ids), "Hello");
}

TEST(TokenizerSpecial, SharedBetweenThreads) {
  // A Tokenizer is immutable after loading: threads tokenizing at once get
  // what one thread gets.
  const Tokenizer& tok = vocab_tokenizer("deepseek-llm");
  std::string text;
  for (const auto& c : read_vectors("deepseek-llm")) text += c.text + "\n";
  const auto expected = tok.tokenize(text);
  std::vector<std::vector<TokenId>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) got[t] = tok.tokenize(text);
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

// --- streaming detokenizer

TEST(StreamingDetokenizer, HoldsSplitCharactersBack) {
  const Tokenizer& tok = vocab_tokenizer("llama-spm");
  // U+1F999 as four byte-fallback tokens.
  std::vector<TokenId> bytes;
  for (const char* b : {"<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"}) bytes.push_back(*tok.find_token(b));
  StreamingDetokenizer s(tok);
  EXPECT_EQ(s.push(*tok.find_token("\xE2\x96\x81" "a")), " a");
  EXPECT_EQ(s.push(bytes[0]), "");
  EXPECT_EQ(s.push(bytes[1]), "");
  EXPECT_EQ(s.pending_bytes(), 2u);
  EXPECT_EQ(s.push(bytes[2]), "");
  EXPECT_EQ(s.push(bytes[3]), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(s.pending_bytes(), 0u);
  // A broken sequence becomes U+FFFD, as soon as it is known to be broken.
  EXPECT_EQ(s.push(bytes[0]), "");
  EXPECT_EQ(s.push(*tok.find_token("<0x41>")), "\xEF\xBF\xBD" "A");
  // An incomplete tail is flushed as U+FFFD.
  EXPECT_EQ(s.push(bytes[0]), "");
  EXPECT_EQ(s.push(bytes[1]), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(s.flush(), "");
  // A stray continuation byte or 0xFF never waits.
  EXPECT_EQ(s.push(bytes[3]), "\xEF\xBF\xBD");
  EXPECT_EQ(s.push(*tok.find_token("<0xFF>")), "\xEF\xBF\xBD");
}

TEST(StreamingDetokenizer, ByteLevelTokensSplittingACharacter) {
  const Tokenizer& tok = vocab_tokenizer("gpt-2");
  // "🦙" is split by GPT-2 into tokens that end inside the character.
  const auto ids = tok.tokenize("\xF0\x9F\xA6\x99!", {.add_special = false});
  ASSERT_GE(ids.size(), 2u);
  StreamingDetokenizer s(tok);
  std::vector<std::string> parts;
  for (TokenId id : ids) parts.push_back(s.push(id));
  EXPECT_EQ(parts.front(), "") << "the first token holds only part of the character";
  std::string all;
  for (const auto& p : parts) all += p;
  EXPECT_EQ(all + s.flush(), "\xF0\x9F\xA6\x99!");
}

TEST(Utf8, Sanitize) {
  EXPECT_EQ(sanitize_utf8("abc"), "abc");
  EXPECT_EQ(sanitize_utf8("\xC3\xBC"), "\xC3\xBC");
  EXPECT_EQ(sanitize_utf8("\xC3"), "\xEF\xBF\xBD");
  EXPECT_EQ(sanitize_utf8("\xE2\x82" "A"), "\xEF\xBF\xBD" "A");  // one U+FFFD for the truncated sequence
  EXPECT_EQ(sanitize_utf8("\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  EXPECT_EQ(sanitize_utf8("\xEF\xBF\xBD"), "\xEF\xBF\xBD");
}

TEST(Utf8, CompletePrefix) {
  EXPECT_EQ(unicode::complete_utf8_prefix(""), 0u);
  EXPECT_EQ(unicode::complete_utf8_prefix("ab"), 2u);
  EXPECT_EQ(unicode::complete_utf8_prefix("a\xF0\x9F"), 1u);
  EXPECT_EQ(unicode::complete_utf8_prefix("a\xF0\x9F\xA6\x99"), 5u);
  EXPECT_EQ(unicode::complete_utf8_prefix("a\xE0\x80"), 3u) << "E0 80 can never complete";
  EXPECT_EQ(unicode::complete_utf8_prefix("\xC3"), 0u);
  EXPECT_EQ(unicode::complete_utf8_prefix("\xFF"), 1u);
}

TEST(Unicode, CategoriesAndByteAlphabet) {
  EXPECT_EQ(unicode::category('a'), unicode::kLl);
  EXPECT_EQ(unicode::category(0x4E00), unicode::kLo);
  EXPECT_EQ(unicode::category('3'), unicode::kNd);
  EXPECT_EQ(unicode::category(0x00B2), unicode::kNo);  // superscript two
  EXPECT_EQ(unicode::category('$'), unicode::kSc);
  EXPECT_EQ(unicode::category(0x0301), unicode::kMn);
  EXPECT_EQ(unicode::category(0x10FFFF), unicode::kCn);
  for (uint32_t cp : {0x09u, 0x0Au, 0x20u, 0x85u, 0xA0u, 0x2028u, 0x3000u}) EXPECT_TRUE(unicode::is_white_space(cp)) << cp;
  for (uint32_t cp : {0x1Cu, 0x1Fu, 0x200Bu, uint32_t{'a'}}) EXPECT_FALSE(unicode::is_white_space(cp)) << cp;
  EXPECT_EQ(unicode::byte_to_codepoint(' '), 0x120u);  // GPT-2's 'Ġ'
  EXPECT_EQ(unicode::byte_to_codepoint('\n'), 0x10Au);
  EXPECT_EQ(unicode::byte_to_codepoint('A'), uint32_t{'A'});
  for (int b = 0; b < 256; ++b) EXPECT_EQ(unicode::codepoint_to_byte(unicode::byte_to_codepoint(b)), b);
  EXPECT_EQ(unicode::codepoint_to_byte(' '), -1);
  uint32_t cp;
  EXPECT_EQ(unicode::decode_utf8("\xF0\x9F\xA6\x99", 0, &cp), 4u);
  EXPECT_EQ(cp, 0x1F999u);
  EXPECT_EQ(unicode::decode_utf8("\xF0\x9F\xA6", 0, &cp), 1u);
  EXPECT_EQ(cp, unicode::kReplacement);
}

// --- the regex engine and pre-tokenizers

std::vector<std::string> regex_split(std::string_view pattern, std::string_view text) {
  auto re = Regex::compile(pattern);
  EXPECT_TRUE(re.is_ok()) << re.status().to_string();
  if (!re.is_ok()) return {};
  std::vector<uint32_t> cps;
  std::vector<size_t> offs;
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    offs.push_back(i);
    i += unicode::decode_utf8(text, i, &cp);
    cps.push_back(cp);
  }
  offs.push_back(text.size());
  std::vector<std::string> out;
  RegexScratch scratch;
  size_t pos = 0, mb, me;
  while (pos < cps.size() && re->search(cps.data(), cps.size(), pos, &scratch, &mb, &me) && me > mb) {
    if (mb > pos) out.push_back("~" + std::string(text.substr(offs[pos], offs[mb] - offs[pos])));
    out.push_back(std::string(text.substr(offs[mb], offs[me] - offs[mb])));
    pos = me;
  }
  if (pos < cps.size()) out.push_back("~" + std::string(text.substr(offs[pos])));
  return out;
}

using Strings = std::vector<std::string>;

TEST(Regex, Gpt2PatternBacktracksWhitespace) {
  const std::string gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  EXPECT_EQ(regex_split(gpt2, "   Hello"), (Strings{"  ", " Hello"}));
  EXPECT_EQ(regex_split(gpt2, "it's 42!"), (Strings{"it", "'s", " 42", "!"}));
  EXPECT_EQ(regex_split(gpt2, "a \n\n b"), (Strings{"a", " \n\n", " b"}));
  EXPECT_EQ(regex_split(gpt2, "x  "), (Strings{"x", "  "}));
  EXPECT_EQ(regex_split(gpt2, "\xD0\xBD\xD0\xB5 \xE4\xB8\x80"), (Strings{"\xD0\xBD\xD0\xB5", " \xE4\xB8\x80"}));
}

TEST(Regex, ClassesQuantifiersLookaheadAnchors) {
  EXPECT_EQ(regex_split(R"(\p{N}{1,3})", "12345a6"), (Strings{"123", "45", "~a", "6"}));
  EXPECT_EQ(regex_split(R"((?i:'s|'ll))", "'S 'Ll 's"), (Strings{"'S", "~ ", "'Ll", "~ ", "'s"}));
  EXPECT_EQ(regex_split(R"([^\r\n\p{L}\p{N}]?\p{L}+)", "..ab\ncd"), (Strings{"~.", ".ab", "~\n", "cd"}));
  EXPECT_EQ(regex_split(R"(\s+$)", "a  b  "), (Strings{"~a  b", "  "}));
  EXPECT_EQ(regex_split(R"(a(?=b))", "aab"), (Strings{"~a", "a", "~b"}));
  EXPECT_EQ(regex_split(R"([\x{4E00}-\x{9FA5}]+)", "a\xE4\xB8\x80\xE4\xB8\x81z"),
            (Strings{"~a", "\xE4\xB8\x80\xE4\xB8\x81", "~z"}));
  EXPECT_EQ(regex_split(R"([!-/:-@\[-`{-~]+)", "a!?[b"), (Strings{"~a", "!?[", "~b"}));
  EXPECT_EQ(regex_split(R"(\d+|\w+)", "ab12 c"), (Strings{"ab12", "~ ", "c"}));
  EXPECT_EQ(regex_split(R"((?:ab)+c?)", "ababcab"), (Strings{"ababc", "ab"}));
  EXPECT_EQ(regex_split(R"(\bx)", "xax x"), (Strings{"x", "~ax ", "x"}));
}

TEST(Regex, LeadingRepeatSkipsInsideFailedRuns) {
  // Searches that skip the starts inside a run the leading repeat already
  // covered must still find the same leftmost matches...
  EXPECT_EQ(regex_split(R"(a+b)", "aaacaab"), (Strings{"~aaac", "aab"}));
  EXPECT_EQ(regex_split(R"(a*b)", "aacb"), (Strings{"~aac", "b"}));
  EXPECT_EQ(regex_split(R"(\s+$)", "  x  y "), (Strings{"~  x  y", " "}));
  // ...and a long run before a mismatch costs linear time, not quadratic
  // (this took minutes before; deepseek-llm applies \s+$ to every piece).
  const std::string spaces(200000, ' ');
  EXPECT_EQ(regex_split(R"(\s+$)", spaces + "1"), (Strings{"~" + spaces + "1"}));
}

TEST(Regex, RejectsWhatItDoesNotSupport) {
  for (const char* bad : {"(", "a)", "[a", "a{2", "a{3,1}", "a*?", "a++", "\\p{Han}", "\\q", "(?<n>a)", "*a",
                          "(a*)*", "\\x{110000}", "a{1001}"}) {
    auto re = Regex::compile(bad);
    EXPECT_FALSE(re.is_ok()) << bad;
    if (!re.is_ok()) {
      EXPECT_EQ(re.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(PreTokenizer, EveryTableEntryCompiles) {
  for (auto name : pre_tokenizer_names()) {
    const PreTokenizerInfo* info = find_pre_tokenizer(name);
    ASSERT_NE(info, nullptr);
    auto p = PreTokenizer::create(*info);
    EXPECT_TRUE(p.is_ok()) << name << ": " << p.status().to_string();
  }
  for (auto name : {"default", "llama3", "llama-bpe", "deepseek-llm", "deepseek-coder", "deepseek-v3", "qwen2",
                    "deepseek-r1-qwen", "gpt-2", "starcoder", "smollm"}) {
    EXPECT_NE(find_pre_tokenizer(name), nullptr) << name;
  }
  EXPECT_EQ(find_pre_tokenizer("no-such-pre"), nullptr);
}

std::vector<std::string> pre_split(const std::string& name, std::string_view text) {
  auto p = PreTokenizer::create(*find_pre_tokenizer(name));
  EXPECT_TRUE(p.is_ok());
  PreTokenizeScratch scratch;
  std::vector<Piece> pieces;
  p->split(text, &scratch, &pieces);
  std::vector<std::string> out;
  for (auto [b, e] : pieces) out.emplace_back(text.substr(b, e - b));
  return out;
}

// Pre-tokenizers without vocabulary files here: their patterns' semantics on
// small inputs (digit grouping, contractions, newlines).
TEST(PreTokenizer, SplitsWithoutVocabularies) {
  EXPECT_EQ(pre_split("llama3", "3333333 it's\n\n x"), (Strings{"333", "333", "3", " it", "'s", "\n\n", " x"}));
  EXPECT_EQ(pre_split("qwen2", "1234 I'LL"), (Strings{"1", "2", "3", "4", " I", "'LL"}));
  EXPECT_EQ(pre_split("deepseek-v3", "12345 \xE4\xB8\x80\xE4\xB8\x81" "abc,!x"),
            (Strings{"123", "45", " ", "\xE4\xB8\x80\xE4\xB8\x81", "abc", ",!", "x"}));
  EXPECT_EQ(pre_split("starcoder", "x=12"), (Strings{"x", "=", "1", "2"}));
  EXPECT_EQ(pre_split("gpt-4o", "HelloWorld's"), (Strings{"Hello", "World's"}));
  // Invalid UTF-8 keeps its bytes; each bad byte counts as U+FFFD (a symbol).
  EXPECT_EQ(pre_split("gpt-2", "a\xFF\xFE b"), (Strings{"a", "\xFF\xFE", " b"}));
}

// --- tokenizers from synthetic metadata, and malformed metadata

class Meta {
 public:
  Meta& set(const std::string& key, gguf::Value v) {
    auto it = file_.kv_index.find(key);
    if (it != file_.kv_index.end()) {
      file_.kv[it->second].second = std::move(v);
    } else {
      file_.kv_index[key] = file_.kv.size();
      file_.kv.emplace_back(key, std::move(v));
    }
    return *this;
  }
  Meta& erase(const std::string& key) {
    gguf::GgufFile f;
    for (auto& [k, v] : file_.kv) {
      if (k == key) continue;
      f.kv_index[k] = f.kv.size();
      f.kv.emplace_back(k, v);
    }
    file_ = std::move(f);
    return *this;
  }
  const gguf::GgufFile& file() const { return file_; }

 private:
  gguf::GgufFile file_;
};

std::string byte_char(uint8_t b) {
  std::string s;
  unicode::append_utf8(unicode::byte_to_codepoint(b), &s);
  return s;
}

// A byte-level BPE vocabulary: the 256 byte tokens, then "ab", "abc", "Ġa"
// and a control token.
Meta tiny_bpe() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_char(static_cast<uint8_t>(b)));
  tokens.push_back("ab");        // 256
  tokens.push_back("abc");       // 257
  tokens.push_back("\xC4\xA0" "a");  // 258: " a"
  tokens.push_back("<|end|>");   // 259
  std::vector<int32_t> types(tokens.size(), 1);
  types[259] = 3;
  Meta m;
  m.set("tokenizer.ggml.model", gguf::Value::string("gpt2"))
      .set("tokenizer.ggml.pre", gguf::Value::string("gpt-2"))
      .set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens))
      .set("tokenizer.ggml.token_type", gguf::Value::i32_array(types))
      .set("tokenizer.ggml.merges", gguf::Value::string_array({"a b", "ab c", "\xC4\xA0 a"}))
      .set("tokenizer.ggml.eos_token_id", gguf::Value::u32(259));
  return m;
}

TEST(TokenizerSynthetic, BpeMergesByRank) {
  auto tok = Tokenizer::from_gguf(tiny_bpe().file());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->tokenize("abc"), (std::vector<TokenId>{257}));
  EXPECT_EQ(tok->tokenize("abcab"), (std::vector<TokenId>{257, 256}));
  // " abx": "a b" (rank 0) goes before "Ġ a" (rank 2), and then "Ġ ab" is
  // no merge; " ac": "Ġ a" applies.
  EXPECT_EQ(tok->tokenize("a abx"), (std::vector<TokenId>{'a', ' ', 256, 'x'}));
  EXPECT_EQ(tok->tokenize(" ac"), (std::vector<TokenId>{258, 'c'}));
  EXPECT_EQ(tok->detokenize(tok->tokenize("a abx")), "a abx");
  EXPECT_EQ(tok->eot(), 259);  // found by its text
  EXPECT_EQ(tok->bos(), kNoToken);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->tokenize("x<|end|>", {.parse_special = true}), (std::vector<TokenId>{'x', 259}));
  EXPECT_TRUE(tok->warnings().empty());
}

void expect_error(const Meta& m, StatusCode code, const std::string& needle) {
  auto tok = Tokenizer::from_gguf(m.file());
  ASSERT_FALSE(tok.is_ok()) << "expected an error mentioning " << needle;
  EXPECT_EQ(tok.status().code(), code) << tok.status().to_string();
  EXPECT_NE(tok.status().message().find(needle), std::string::npos) << tok.status().message();
}

TEST(TokenizerErrors, MissingOrWrongKeys) {
  expect_error(Meta(), StatusCode::kNotFound, "tokenizer.ggml.model");
  expect_error(tiny_bpe().set("tokenizer.ggml.model", gguf::Value::u32(2)), StatusCode::kInvalidFormat,
               "tokenizer.ggml.model: expected a string");
  expect_error(tiny_bpe().set("tokenizer.ggml.model", gguf::Value::string("bert")), StatusCode::kUnsupported,
               "'bert'");
  expect_error(tiny_bpe().erase("tokenizer.ggml.tokens"), StatusCode::kNotFound, "tokenizer.ggml.tokens");
  expect_error(tiny_bpe().set("tokenizer.ggml.tokens", gguf::Value::u32_array({1, 2})), StatusCode::kInvalidFormat,
               "tokenizer.ggml.tokens: expected an array of strings");
  expect_error(tiny_bpe().set("tokenizer.ggml.tokens", gguf::Value::string_array({})), StatusCode::kInvalidFormat,
               "tokenizer.ggml.tokens");
  expect_error(tiny_bpe().erase("tokenizer.ggml.merges"), StatusCode::kNotFound, "tokenizer.ggml.merges");
  expect_error(tiny_bpe().set("tokenizer.ggml.pre", gguf::Value::string("no-such-pre")), StatusCode::kUnsupported,
               "tokenizer.ggml.pre");
  expect_error(tiny_bpe().set("tokenizer.ggml.token_type", gguf::Value::i32_array({1, 1})),
               StatusCode::kInvalidFormat, "tokenizer.ggml.token_type");
  expect_error(tiny_bpe().set("tokenizer.ggml.scores", gguf::Value::f32_array({0.0f})), StatusCode::kInvalidFormat,
               "tokenizer.ggml.scores");
  expect_error(tiny_bpe().set("tokenizer.ggml.add_bos_token", gguf::Value::u32(1)), StatusCode::kInvalidFormat,
               "tokenizer.ggml.add_bos_token: expected a bool");
}

TEST(TokenizerErrors, BadMerges) {
  expect_error(tiny_bpe().set("tokenizer.ggml.merges", gguf::Value::string_array({"a b", "a q"})),
               StatusCode::kInvalidFormat, "tokenizer.ggml.merges[1]");
  // The joined text must be a token too.
  expect_error(tiny_bpe().set("tokenizer.ggml.merges", gguf::Value::string_array({"b a"})),
               StatusCode::kInvalidFormat, "'ba', which is not in tokenizer.ggml.tokens");
  expect_error(tiny_bpe().set("tokenizer.ggml.merges", gguf::Value::string_array({"ab"})), StatusCode::kInvalidFormat,
               "expected 'LEFT RIGHT'");
  expect_error(tiny_bpe().set("tokenizer.ggml.merges", gguf::Value::string_array({"a "})), StatusCode::kInvalidFormat,
               "tokenizer.ggml.merges[0]");
}

TEST(TokenizerErrors, BadIdsAndTokens) {
  expect_error(tiny_bpe().set("tokenizer.ggml.bos_token_id", gguf::Value::u32(100000)), StatusCode::kInvalidFormat,
               "tokenizer.ggml.bos_token_id: expected an id below 260, got 100000");
  expect_error(tiny_bpe().set("tokenizer.ggml.eos_token_id", gguf::Value::string("x")), StatusCode::kInvalidFormat,
               "tokenizer.ggml.eos_token_id: expected an integer");
  expect_error(tiny_bpe().set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(true)),
               StatusCode::kInvalidFormat, "tokenizer.ggml.bos_token_id is not set");
  // An out-of-range padding id is ignored with a warning, as llama.cpp does.
  auto tok = Tokenizer::from_gguf(tiny_bpe().set("tokenizer.ggml.padding_token_id", gguf::Value::u32(999)).file());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->pad(), kNoToken);
  ASSERT_EQ(tok->warnings().size(), 1u);
  EXPECT_NE(tok->warnings()[0].find("tokenizer.ggml.padding_token_id"), std::string::npos);

  Meta dup = tiny_bpe();
  std::vector<std::string> tokens = dup.file().find("tokenizer.ggml.tokens")->strings();
  tokens[258] = "ab";
  expect_error(dup.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens)), StatusCode::kInvalidFormat,
               "duplicate token 'ab' at ids 256 and 258");

  Meta spm;
  spm.set("tokenizer.ggml.model", gguf::Value::string("llama"))
      .set("tokenizer.ggml.tokens", gguf::Value::string_array({"<unk>", "<s>", "</s>", "<0xZZ>"}))
      .set("tokenizer.ggml.token_type", gguf::Value::i32_array({2, 3, 3, 6}));
  expect_error(spm, StatusCode::kInvalidFormat, "tokenizer.ggml.tokens[3]: token_type is byte");
}

TEST(TokenizerSynthetic, SentencePieceScoresAndByteFallback) {
  // Scores decide: "▁ab" (score -1) beats "▁a"+"b"; "c" has no token and
  // falls back to <0x63>.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.push_back(buf);
    scores.push_back(0);
    types.push_back(6);
  }
  const TokenId base = static_cast<TokenId>(tokens.size());
  for (const char* t : {"\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "\xE2\x96\x81" "ab"}) {
    tokens.push_back(t);
    types.push_back(1);
  }
  scores.insert(scores.end(), {-5.0f, -5.0f, -5.0f, -2.0f, -1.0f});
  Meta m;
  m.set("tokenizer.ggml.model", gguf::Value::string("llama"))
      .set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens))
      .set("tokenizer.ggml.scores", gguf::Value::f32_array(scores))
      .set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
  auto tok = Tokenizer::from_gguf(m.file());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->tokenize("abc"), (std::vector<TokenId>{1, base + 4, 3 + 'c'}));
  EXPECT_EQ(tok->detokenize(tok->tokenize("abc")), "abc");
  EXPECT_EQ(tok->detokenize(tok->tokenize("abc"), {.remove_special = true}), "abc");
  // No space prefix when the file says so.
  m.set("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(false));
  auto no_prefix = Tokenizer::from_gguf(m.file());
  ASSERT_TRUE(no_prefix.is_ok());
  EXPECT_EQ(no_prefix->tokenize("ab", {.add_special = false}), (std::vector<TokenId>{base + 1, base + 2}));
}

}  // namespace
}  // namespace strata
