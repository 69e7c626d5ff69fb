// json_schema_tool: the response_format constraint from the command line, for
// python/test_json_schema.py, which checks its outputs with Python's json and
// jsonschema.
//   json_schema_tool compile SCHEMA.json        "ok", or the error (exit 1)
//   json_schema_tool check SCHEMA.json          stdin: JSON array of texts;
//                                               stdout: [[prefix_ok, complete], ...]
//   json_schema_tool walk SCHEMA.json N SEED    N random documents, byte by byte
//   json_schema_tool walk-tokens SCHEMA.json VOCAB.gguf N SEED
//                                               N random documents, token by token
//                                               through the allowed-token mask
// SCHEMA.json is a bare schema, or {"response_format": {...}} for the request
// field as a whole.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "runtime/base/rng.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/serve/json_schema.h"

using namespace strata;
using namespace strata::serve;
using json = nlohmann::json;

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "json_schema_tool: %s\n", msg.c_str());
  return 1;
}

Result<JsonConstraint> load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return invalid_argument(path + ": not JSON");
  if (j.is_object() && j.contains("response_format")) {
    STRATA_ASSIGN_OR_RETURN(std::optional<JsonConstraint> c, compile_response_format(j["response_format"]));
    if (!c) return invalid_argument("response_format without a constraint");
    return *c;
  }
  return compile_json_schema(j);
}

// Bytes that lead toward the end of a document: closing quotes and brackets
// first, then the shortest values. Used once a walk is long enough.
int closing_rank(uint8_t b) {
  static const std::string kOrder = "\"}]0nft1:,";
  const size_t at = kOrder.find(static_cast<char>(b));
  return at == std::string::npos ? 100 : static_cast<int>(at);
}

// Past the soft budget: the byte the first thread needs to finish soonest
// (a required key's next byte, the quote or comma that leads to one), else
// the best closing byte. Returns -1 when it has no preference.
int steer(const JsonMatcher& m, const std::vector<uint8_t>& allowed) {
  auto ok = [&](int b) { return std::find(allowed.begin(), allowed.end(), b) != allowed.end(); };
  const JsonMatcher::State& s = m.state();
  if (s.ends.empty()) return -1;
  const uint32_t n = s.ends[0];
  const Frame& top = s.frames[n - 1];
  const JsonGrammar& g = m.constraint().grammar();
  if (top.type == FrameType::kKey && n >= 2) {
    const Node& nd = g.nodes[top.node];
    const uint64_t missing = nd.required & ~s.frames[n - 2].mask & top.mask;
    for (size_t i = 0; i < nd.props.size(); ++i) {
      if (!(missing >> i & 1)) continue;
      const std::string& key = nd.props[i].key;
      const int want = top.count == key.size() ? '"' : static_cast<uint8_t>(key[top.count]);
      if (ok(want)) return want;
    }
  }
  if (top.type == FrameType::kObject) {
    const Node& nd = g.nodes[top.node];
    const bool missing = (nd.required & ~top.mask) != 0;
    if ((top.phase == kObjFirst || top.phase == kObjAfterComma) && missing && ok('"')) return '"';
    if (top.phase == kObjAfterValue) return missing ? (ok(',') ? ',' : -1) : (ok('}') ? '}' : -1);
  }
  return -1;
}

// A random document: uniform over allowed bytes, ending when complete with
// probability 1/4 per step; past `soft` bytes the closing-rank order steers
// it to an end.
Result<std::string> walk_bytes(const JsonConstraint& c, Xoshiro256& rng, size_t soft, size_t hard) {
  JsonMatcher m(c);
  while (m.text().size() < hard) {
    if (m.complete() && (rng.uniform() < 0.25 || m.text().size() > soft)) return m.text();
    std::vector<uint8_t> bytes = m.allowed_bytes();
    if (bytes.empty()) {
      if (m.complete()) return m.text();
      return internal_error("dead state after " + m.text());
    }
    uint8_t pick = bytes[static_cast<size_t>(rng.uniform() * bytes.size())];
    if (m.text().size() > soft) {
      for (uint8_t b : bytes) {
        if (closing_rank(b) < closing_rank(pick)) pick = b;
      }
      if (const int s = steer(m, bytes); s >= 0) pick = static_cast<uint8_t>(s);
    }
    if (!m.accept_bytes(std::string(1, static_cast<char>(pick)))) return internal_error("allowed byte refused");
  }
  return internal_error("no end after " + std::to_string(hard) + " bytes: " + m.text().substr(0, 200));
}

Result<std::string> walk_tokens(const JsonConstraint& c, const TokenTrie& trie, Xoshiro256& rng, size_t soft,
                                size_t hard) {
  JsonMatcher m(c);
  std::vector<uint8_t> mask;
  std::vector<TokenId> allowed;
  while (m.text().size() < hard) {
    m.allowed_tokens(trie, mask);
    allowed.clear();
    bool eog = false;
    for (size_t i = 0; i < mask.size(); ++i) {
      if (!mask[i]) continue;
      if (trie.is_eog(static_cast<TokenId>(i))) {
        eog = true;
      } else {
        allowed.push_back(static_cast<TokenId>(i));
      }
    }
    if (eog != m.complete()) return internal_error("end-of-generation allowed != complete at " + m.text());
    if (eog && (allowed.empty() || rng.uniform() < 0.25 || m.text().size() > soft)) return m.text();
    if (allowed.empty()) return internal_error("no token allowed after " + m.text());
    TokenId pick = allowed[static_cast<size_t>(rng.uniform() * allowed.size())];
    if (m.text().size() > soft) {
      // Steer: a single-byte token for the steering byte, else the
      // best-ranked single-byte token that is allowed.
      const int want = steer(m, m.allowed_bytes());
      int best = trie.token_bytes(pick).size() == 1 ? closing_rank(static_cast<uint8_t>(trie.token_bytes(pick)[0])) : 1000;
      for (TokenId id : allowed) {
        const std::string_view b = trie.token_bytes(id);
        if (b.size() != 1) continue;
        const int rank = static_cast<uint8_t>(b[0]) == want ? -1 : closing_rank(static_cast<uint8_t>(b[0]));
        if (rank < best) {
          best = rank;
          pick = id;
        }
      }
    }
    if (!m.accept_token(trie, pick)) return internal_error("allowed token refused: " + std::to_string(pick));
  }
  return internal_error("no end after " + std::to_string(hard) + " bytes: " + m.text().substr(0, 200));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return fail("usage: json_schema_tool compile|check|walk|walk-tokens SCHEMA.json ...");
  const std::string cmd = argv[1];
  auto c = load(argv[2]);
  if (cmd == "compile") {
    if (!c.is_ok()) {
      std::printf("%s\n", c.status().message().c_str());
      return 1;
    }
    std::printf("ok\n");
    return 0;
  }
  if (!c.is_ok()) return fail(c.status().to_string());
  if (cmd == "check") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    json texts = json::parse(ss.str(), nullptr, false);
    if (!texts.is_array()) return fail("check: stdin must be a JSON array of strings");
    json out = json::array();
    for (const json& t : texts) {
      JsonMatcher m(*c);
      const bool ok = m.accept_bytes(t.get<std::string>());
      out.push_back({ok, ok && m.complete()});
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  if (cmd == "walk" && argc == 5) {
    Xoshiro256 rng(std::stoull(argv[4]));
    json out = json::array();
    for (int i = 0; i < std::stoi(argv[3]); ++i) {
      auto doc = walk_bytes(*c, rng, 200, 20000);
      if (!doc.is_ok()) return fail(doc.status().to_string());
      out.push_back(*doc);
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  if (cmd == "walk-tokens" && argc == 6) {
    auto model = gguf::GgufModel::open(argv[3]);
    if (!model.is_ok()) return fail(model.status().to_string());
    auto tok = Tokenizer::from_gguf(*model);
    if (!tok.is_ok()) return fail(tok.status().to_string());
    const TokenTrie trie = build_token_trie(*tok);
    Xoshiro256 rng(std::stoull(argv[5]));
    json out = json::array();
    for (int i = 0; i < std::stoi(argv[4]); ++i) {
      auto doc = walk_tokens(*c, trie, rng, 300, 20000);
      if (!doc.is_ok()) return fail(doc.status().to_string());
      out.push_back(*doc);
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  return fail("unknown command or wrong arguments: " + cmd);
}
