// Exit-code plumbing and formatting shared by the subcommands.
#include <cstdio>

#include "tools/commands.h"
#include "tools/format.h"

namespace strata::tools {

namespace {
int g_exit_code = 0;
}

int exit_code() { return g_exit_code; }
void set_exit_code(int code) { g_exit_code = code; }

void fail(const Status& s) {
  std::fprintf(stderr, "strata: error: %s\n", s.message().c_str());
  set_exit_code(1);
}

std::string human_bytes(uint64_t n) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024) return std::to_string(n) + " B";
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace strata::tools
