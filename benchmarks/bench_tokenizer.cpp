// Tokenizer throughput on every vocabulary GGUF in ../shared/data/vocab:
// tokenize and detokenize a few MB of mixed text (English prose, code,
// numbers, Cyrillic, CJK, emoji, whitespace runs), median of N runs.
//
//   bench_tokenizer [--vocab-dir DIR] [--vocab NAME]... [--mb N] [--reps N] [--json]
//
// Figures are input bytes per second (MB = 10^6 bytes) and tokens per second,
// single thread. For scale the same run times one pass of UTF-8 decoding and
// Unicode classification over the text, the floor any tokenizer pays.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "runtime/gguf/gguf_reader.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/unicode.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

volatile uint64_t g_sink;

const char* const kWords[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
    "who", "so", "no", "memory", "bandwidth", "expert", "routing", "tokenizer", "throughput", "latency",
    "Mixture", "Experts", "DeepSeek", "transformer", "attention", "quantization", "workstation", "it's",
    "don't", "they're", "we've", "I'll", "HELLO", "World", "naïve", "café", "Führer", "résumé",
};
const char* const kCode[] = {
    "for (int i = 0; i < n; ++i) {\n    sum += a[i] * b[i];\n}\n",
    "def forward(self, x):\n    return self.proj(torch.relu(x)) + x\n",
    "    if (!status.is_ok()) return status;  // propagate\n",
    "const auto [begin, end] = std::equal_range(v.begin(), v.end(), key);\n",
    "\tprintf(\"%d tokens in %.3f s\\n\", n, dt);\n",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01';\n",
};
const char* const kOther[] = {
    "Привет, как дела? ", "Это тест токенизатора. ", "我想在apple工作。", "今天天气很好！", "日本語のテキスト、",
    "한국어 문장입니다. ", "🦙🚀 ", "😶‍🌫️ ", "✅ done ", "Γειά σου κόσμε ", "مرحبا بالعالم ",
};

std::string make_text(size_t bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&rng](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  std::string s;
  s.reserve(bytes + 256);
  while (s.size() < bytes) {
    const size_t kind = pick(100);
    if (kind < 70) {  // a sentence of prose
      const size_t n = 5 + pick(15);
      for (size_t i = 0; i < n; ++i) {
        std::string w = kWords[pick(std::size(kWords))];
        if (i == 0) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
        s += w;
        s += pick(12) == 0 ? ", " : " ";
      }
      s.back() = '.';
      s += pick(4) == 0 ? "\n\n" : " ";
    } else if (kind < 85) {
      s += kCode[pick(std::size(kCode))];
    } else if (kind < 92) {
      s += std::to_string(rng() % 1000000) + "." + std::to_string(rng() % 100) + " ";
    } else if (kind < 98) {
      s += kOther[pick(std::size(kOther))];
    } else {
      s += std::string(1 + pick(12), ' ') + "\n";
    }
  }
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename Fn>
double time_s(Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Row {
  std::string vocab;
  size_t n_tokens = 0;
  double load_s = 0, encode_s = 0, decode_s = 0;
};

int run(int argc, char** argv) {
  fs::path dir = fs::path(STRATA_SHARED_DIR) / "data" / "vocab";
  std::vector<std::string> only;
  double mb = 4;
  int reps = 5;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_tokenizer: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--vocab-dir") {
      dir = next();
    } else if (a == "--vocab") {
      only.push_back(next());
    } else if (a == "--mb") {
      mb = std::stod(next());
    } else if (a == "--reps") {
      reps = std::max(1, std::stoi(next()));
    } else if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "usage: bench_tokenizer [--vocab-dir DIR] [--vocab NAME]... [--mb N] [--reps N] [--json]\n");
      return 2;
    }
  }

  std::vector<std::pair<std::string, fs::path>> vocabs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    if (f.rfind("ggml-vocab-", 0) != 0 || e.path().extension() != ".gguf") continue;
    const std::string name = f.substr(11, f.size() - 11 - 5);
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    vocabs.push_back({name, e.path()});
  }
  std::sort(vocabs.begin(), vocabs.end());
  if (vocabs.empty()) {
    std::fprintf(stderr, "bench_tokenizer: no ggml-vocab-*.gguf in %s\n", dir.string().c_str());
    return 1;
  }

  const std::string text = make_text(static_cast<size_t>(mb * 1e6), 1234);
  const double text_mb = text.size() / 1e6;

  // The floor: decode and classify every code point once.
  std::vector<double> floor_t;
  uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    floor_t.push_back(time_s([&] {
      const uint8_t* ft = unicode::flags_table();
      for (size_t i = 0; i < text.size();) {
        uint32_t cp;
        i += unicode::decode_utf8(text, i, &cp);
        sink += ft[cp];
      }
    }));
  }
  const double floor_s = median(floor_t);

  std::vector<Row> rows;
  for (const auto& [name, path] : vocabs) {
    Row row;
    row.vocab = name;
    Result<Tokenizer> tok = Status(StatusCode::kInternal, "not loaded");
    row.load_s = time_s([&] {
      auto model = gguf::GgufModel::open(path.string());
      tok = model.is_ok() ? Tokenizer::from_gguf(*model) : Result<Tokenizer>(model.status());
    });
    if (!tok.is_ok()) {
      std::fprintf(stderr, "bench_tokenizer: %s: %s\n", name.c_str(), tok.status().to_string().c_str());
      return 1;
    }
    std::vector<double> enc, dec;
    std::vector<TokenId> ids;
    for (int r = 0; r < reps; ++r) {
      enc.push_back(time_s([&] { ids = tok->tokenize(text, {.add_special = false}); }));
      std::string back;
      dec.push_back(time_s([&] { back = tok->detokenize(ids, {.clean_up_spaces = false}); }));
      if (back != text) {
        std::fprintf(stderr, "bench_tokenizer: %s: detokenize(tokenize(text)) != text\n", name.c_str());
        return 1;
      }
    }
    row.n_tokens = ids.size();
    row.encode_s = median(enc);
    row.decode_s = median(dec);
    rows.push_back(row);
  }

  if (json) {
    std::printf("{\"text_bytes\": %zu, \"reps\": %d, \"classify_floor_mb_s\": %.1f, \"vocabs\": [", text.size(), reps,
                text_mb / floor_s);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("%s{\"vocab\": \"%s\", \"tokens\": %zu, \"load_s\": %.4f, \"encode_mb_s\": %.2f, "
                  "\"encode_tokens_s\": %.0f, \"decode_mb_s\": %.1f}",
                  i ? ", " : "", r.vocab.c_str(), r.n_tokens, r.load_s, text_mb / r.encode_s,
                  r.n_tokens / r.encode_s, text_mb / r.decode_s);
    }
    std::printf("]}\n");
  } else {
    std::printf("text: %.2f MB of mixed prose/code/numbers/CJK/emoji, median of %d runs, 1 thread\n", text_mb, reps);
    std::printf("floor (UTF-8 decode + classify): %.0f MB/s\n\n", text_mb / floor_s);
    std::printf("%-16s %9s %7s %8s %12s %12s %10s\n", "vocab", "tokens", "B/tok", "load s", "encode MB/s",
                "Mtok/s", "decode MB/s");
    for (const Row& r : rows) {
      std::printf("%-16s %9zu %7.2f %8.3f %12.2f %12.2f %10.0f\n", r.vocab.c_str(), r.n_tokens,
                  static_cast<double>(text.size()) / r.n_tokens, r.load_s, text_mb / r.encode_s,
                  r.n_tokens / r.encode_s / 1e6, text_mb / r.decode_s);
    }
  }
  g_sink = sink;  // keeps the floor loop from being optimized away
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) { return strata::run(argc, argv); }
