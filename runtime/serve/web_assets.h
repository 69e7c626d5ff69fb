// The web chat page's files (runtime/serve/web/), embedded into the binary
// at build time by web/embed.cmake, so the server needs no files at run time.
#pragma once

#include <string_view>
#include <vector>

namespace strata::serve {

struct WebAsset {
  std::string_view path;  // URL path: "/", "/app.js", ...
  std::string_view type;  // Content-Type
  std::string_view body;
};

const std::vector<WebAsset>& web_assets();
// The asset served at `path`; null if none.
const WebAsset* find_web_asset(std::string_view path);

}  // namespace strata::serve
