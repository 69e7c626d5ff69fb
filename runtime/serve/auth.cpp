// Key files and the constant-time key match.
#include "runtime/serve/auth.h"

#include <cctype>
#include <fstream>

namespace strata::serve {
namespace {

// 0 when equal. Always reads kMaxKeyBytes positions of both (zero padded),
// with no data-dependent branch, so the time does not depend on where the
// strings differ.
unsigned char differs(std::string_view a, std::string_view b) {
  volatile unsigned char acc = static_cast<unsigned char>(a.size() != b.size());
  for (size_t i = 0; i < KeyStore::kMaxKeyBytes; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    acc = acc | static_cast<unsigned char>(x ^ y);
  }
  return acc;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

}  // namespace

Status KeyStore::add(std::string name, std::string key) {
  if (key.empty()) return invalid_argument("API key '" + name + "': expected a key, got an empty one");
  if (key.size() > kMaxKeyBytes) {
    return invalid_argument("API key '" + name + "': expected at most " + std::to_string(kMaxKeyBytes) + " bytes, got " +
                            std::to_string(key.size()));
  }
  for (char c : key) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return invalid_argument("API key '" + name + "': expected printable characters without spaces");
    }
  }
  keys_.push_back({std::move(name), std::move(key)});
  return Status::ok();
}

Result<KeyStore> KeyStore::from_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return io_error("--api-key-file: cannot open '" + path + "'");
  KeyStore ks;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    const std::string where = path + ":" + std::to_string(n);
    if (colon == std::string::npos || colon == 0) {
      return invalid_argument(where + ": expected 'name:key', got a line without a name");
    }
    const std::string name = trim(line.substr(0, colon));
    if (Status st = ks.add(name, trim(line.substr(colon + 1))); !st.is_ok()) {
      return invalid_argument(where + ": " + st.message());
    }
  }
  if (ks.empty()) return invalid_argument(path + ": expected at least one 'name:key' line, got none");
  return ks;
}

std::optional<std::string> KeyStore::match(std::string_view presented) const {
  if (presented.empty() || presented.size() > kMaxKeyBytes) return std::nullopt;
  const Key* found = nullptr;
  for (const Key& k : keys_) {
    // Every key is compared; the result is picked without an early exit.
    const bool eq = differs(presented, k.key) == 0;
    found = eq && !found ? &k : found;
  }
  if (!found) return std::nullopt;
  return found->name;
}

std::optional<std::string> bearer_token(std::string_view h) {
  constexpr std::string_view kBearer = "Bearer ";
  if (h.size() <= kBearer.size()) return std::nullopt;
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != std::tolower(static_cast<unsigned char>(kBearer[i]))) {
      return std::nullopt;
    }
  }
  std::string_view t = h.substr(kBearer.size());
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\r')) t.remove_suffix(1);
  if (t.empty()) return std::nullopt;
  return std::string(t);
}

namespace {

// RFC 4648 base64 with padding; nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int n = 4;
    for (int j = 0; j < 4; ++j) {
      const char c = in[i + size_t(j)];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        v[j] = 0;
        n = std::min(n, j);
        continue;
      }
      if (n < 4 || (v[j] = value(c)) < 0) return std::nullopt;  // data after '=' or a stray byte
    }
    const uint32_t w = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out.push_back(char(w >> 16));
    if (n > 2) out.push_back(char(w >> 8 & 0xff));
    if (n > 3) out.push_back(char(w & 0xff));
  }
  return out;
}

}  // namespace

std::optional<std::string> presented_key(std::string_view h) {
  constexpr std::string_view kBasic = "Basic ";
  bool basic = h.size() > kBasic.size();
  for (size_t i = 0; basic && i < kBasic.size(); ++i) {
    basic = std::tolower(static_cast<unsigned char>(h[i])) == std::tolower(static_cast<unsigned char>(kBasic[i]));
  }
  if (!basic) return bearer_token(h);
  std::string_view t = h.substr(kBasic.size());
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\r')) t.remove_suffix(1);
  std::optional<std::string> user_pass = base64_decode(t);
  if (!user_pass) return std::nullopt;
  const size_t colon = user_pass->find(':');
  if (colon == std::string::npos || colon + 1 == user_pass->size()) return std::nullopt;
  return user_pass->substr(colon + 1);
}

}  // namespace strata::serve
