// A small terminal line editor with history for `strata chat`: raw-mode
// input with cursor keys, Home/End, Backspace/Delete, Ctrl-A/E/K/U/W and
// Up/Down through earlier lines. No dependency beyond POSIX termios.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace strata::tools {

enum class ReadResult { kLine, kInterrupt, kEof };

class LineEditor {
 public:
  // `fd_in` must be a terminal; output goes to `fd_out`.
  LineEditor(int fd_in, int fd_out) : in_(fd_in), out_(fd_out) {}

  // Reads one line (without the newline) after showing `prompt`. Ctrl-D on
  // an empty line gives kEof. Ctrl-C drops the line and, with a hint set,
  // shows the hint and starts over without leaving raw mode (so keys typed
  // meanwhile are not lost); without one it gives kInterrupt.
  ReadResult read_line(const std::string& prompt, std::string* line);
  void set_interrupt_hint(std::string hint) { hint_ = std::move(hint); }
  void add_history(const std::string& line);

 private:
  void refresh(const std::string& prompt, const std::string& buf, size_t cursor);
  void write(const std::string& s);
  int in_, out_;
  std::vector<std::string> history_;
  std::string hint_;
};

}  // namespace strata::tools
