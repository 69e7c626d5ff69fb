// Staged progress while a command loads a model: "[2/4] checking tensors",
// with a byte bar for long stages. Shown only on a terminal (stderr), so
// piped output and logs stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace strata::tools {

class LoadProgress {
 public:
  LoadProgress(int n_stages, bool enabled) : n_(n_stages), enabled_(enabled) {}
  ~LoadProgress() { finish_stage_(); }

  // Starts the next stage; the previous one is closed with its duration.
  void stage(const std::string& what);
  // Byte progress within the current stage.
  void bytes(uint64_t done, uint64_t total);
  // Closes the last stage.
  void done() { finish_stage_(); }

 private:
  void finish_stage_();
  using clock = std::chrono::steady_clock;
  int n_, k_ = 0;
  bool enabled_;
  bool open_ = false;
  std::string what_;
  clock::time_point t0_;
};

}  // namespace strata::tools
