// The allowed-token mask of response_format constraints, per decode step, on
// every real vocabulary in ../shared/data/vocab: time to build the token trie
// once, and min / median time of JsonMatcher::allowed_tokens in typical
// states (inside a free string, where most of the vocabulary is allowed, at a
// key, before a value, inside a number), with the share of tokens allowed.
//   bench_json_mask [--json] [--reps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/gguf/gguf_reader.h"
#include "runtime/serve/json_schema.h"

using namespace strata;
using namespace strata::serve;
namespace fs = std::filesystem;
using clk = std::chrono::steady_clock;

namespace {

double ms_since(clk::time_point t) { return std::chrono::duration<double, std::milli>(clk::now() - t).count(); }

struct Case {
  const char* name;
  const char* schema;  // nullptr: json_object
  const char* prefix;
};

const Case kCases[] = {
    {"json_object start", nullptr, ""},
    {"json_object in string value", nullptr, R"({"answer": "The capital of France is)"},
    {"json_object in key", nullptr, R"({"answ)"},
    {"schema at key", R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
       "email":{"type":["string","null"]}},"required":["name","age"],"additionalProperties":false})",
     R"({"name": "Ann", )"},
    {"schema before value", R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
       "email":{"type":["string","null"]}},"required":["name","age"],"additionalProperties":false})",
     R"({"name": "Ann", "email":)"},
    {"schema in number", R"({"type":"object","properties":{"v":{"type":"number"}},"required":["v"]})", R"({"v": 12.5)"},
    {"schema in bounded string", R"({"type":"object","properties":{"s":{"type":"string","maxLength":40}}})",
     R"({"s": "abc)"},
};

}  // namespace

int main(int argc, char** argv) {
  bool as_json = false;
  int reps = 9;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json")) {
      as_json = true;
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bench_json_mask [--json] [--reps N]\n");
      return 2;
    }
  }
  const fs::path dir = fs::path(STRATA_SHARED_DIR) / "data" / "vocab";
  std::vector<fs::path> vocabs;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".gguf") vocabs.push_back(e.path());
  }
  std::sort(vocabs.begin(), vocabs.end());
  nlohmann::json out = nlohmann::json::array();
  for (const fs::path& path : vocabs) {
    auto model = gguf::GgufModel::open(path.string());
    if (!model.is_ok()) continue;
    auto tok = Tokenizer::from_gguf(*model);
    if (!tok.is_ok()) continue;
    const auto t0 = clk::now();
    const TokenTrie trie = build_token_trie(*tok);
    const double build_ms = ms_since(t0);
    if (!as_json) {
      std::printf("%s: %zu tokens, trie %zu nodes built in %.1f ms\n", path.filename().c_str(), trie.n_vocab(),
                  trie.n_nodes(), build_ms);
    }
    for (const Case& c : kCases) {
      auto constraint = c.schema ? compile_json_schema(nlohmann::json::parse(c.schema)) : json_object_constraint();
      if (!constraint.is_ok()) return 1;
      JsonMatcher m(*constraint);
      if (!m.accept_bytes(c.prefix)) return 1;
      std::vector<uint8_t> mask;
      std::vector<double> times;
      for (int r = 0; r < reps; ++r) {
        const auto t = clk::now();
        m.allowed_tokens(trie, mask);
        times.push_back(ms_since(t));
      }
      std::sort(times.begin(), times.end());
      size_t n_allowed = 0;
      for (uint8_t x : mask) n_allowed += x;
      const double med = times[times.size() / 2];
      if (as_json) {
        out.push_back({{"vocab", path.filename().string()}, {"n_vocab", trie.n_vocab()}, {"trie_build_ms", build_ms},
                       {"state", c.name}, {"min_ms", times.front()}, {"median_ms", med}, {"allowed", n_allowed}});
      } else {
        std::printf("  %-30s min %7.3f ms  median %7.3f ms  allowed %6zu (%.1f%%)\n", c.name, times.front(), med,
                    n_allowed, 100.0 * double(n_allowed) / double(trie.n_vocab()));
      }
    }
  }
  if (as_json) std::printf("%s\n", out.dump(1).c_str());
  return 0;
}
