// API keys: given on the command line or read from a file of `name:key`
// lines, matched in constant time (the comparison reads every byte of every
// key whatever the presented token is), so response timing does not reveal
// how much of a key a guess got right.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/status.h"

namespace strata::serve {

class KeyStore {
 public:
  static constexpr size_t kMaxKeyBytes = 512;

  // `name:key` per line; blank lines and lines starting with '#' are
  // skipped. Errors name the file and line (without echoing the key).
  static Result<KeyStore> from_file(const std::string& path);
  Status add(std::string name, std::string key);

  bool empty() const { return keys_.empty(); }
  size_t size() const { return keys_.size(); }
  // The name of the key equal to `presented`, if any.
  std::optional<std::string> match(std::string_view presented) const;

 private:
  struct Key {
    std::string name, key;
  };
  std::vector<Key> keys_;
};

// The token of an "Authorization: Bearer TOKEN" header value.
std::optional<std::string> bearer_token(std::string_view header);
// The key an Authorization header presents: a Bearer token (API clients), or
// the password of "Basic base64(user:password)" (a browser opening the web
// page asks for it once and sends it with the page's own requests).
std::optional<std::string> presented_key(std::string_view header);

}  // namespace strata::serve
