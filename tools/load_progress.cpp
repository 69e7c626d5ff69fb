// Staged load progress on stderr.
#include "tools/load_progress.h"

#include <cstdio>

#include "runtime/base/bytes.h"

namespace strata::tools {

void LoadProgress::stage(const std::string& what) {
  finish_stage_();
  ++k_;
  what_ = what;
  t0_ = clock::now();
  open_ = true;
  if (enabled_) std::fprintf(stderr, "[%d/%d] %s ...", k_, n_, what_.c_str());
}

void LoadProgress::bytes(uint64_t done, uint64_t total) {
  if (!enabled_ || !open_ || total == 0) return;
  const int width = 24;
  const int fill = static_cast<int>(static_cast<double>(done) / total * width);
  std::string bar(fill, '=');
  bar += std::string(width - fill, ' ');
  std::fprintf(stderr, "\r[%d/%d] %s [%s] %s / %s\033[K", k_, n_, what_.c_str(), bar.c_str(),
               format_bytes(done).c_str(), format_bytes(total).c_str());
}

void LoadProgress::finish_stage_() {
  if (!open_) return;
  open_ = false;
  if (!enabled_) return;
  const double s = std::chrono::duration<double>(clock::now() - t0_).count();
  std::fprintf(stderr, "\r[%d/%d] %s: %.2f s\033[K\n", k_, n_, what_.c_str(), s);
}

}  // namespace strata::tools
