// LineEditor: the terminal is in raw mode only inside read_line, so Ctrl-C
// raises SIGINT as usual while an answer streams. Cursor positions count
// UTF-8 characters, assuming one column each.
#include "tools/line_editor.h"

#include <termios.h>
#include <unistd.h>

#include <cerrno>

namespace strata::tools {
namespace {

bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t prev_char(const std::string& s, size_t i) {
  if (i == 0) return 0;
  --i;
  while (i > 0 && is_cont(static_cast<unsigned char>(s[i]))) --i;
  return i;
}

size_t next_char(const std::string& s, size_t i) {
  if (i >= s.size()) return s.size();
  ++i;
  while (i < s.size() && is_cont(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

size_t n_chars(const std::string& s, size_t from, size_t to) {
  size_t n = 0;
  for (size_t i = from; i < to; ++i) n += is_cont(static_cast<unsigned char>(s[i])) ? 0 : 1;
  return n;
}

struct RawMode {
  explicit RawMode(int fd) : fd_(fd) {
    if (tcgetattr(fd, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_iflag &= ~tcflag_t(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
    raw.c_lflag &= ~tcflag_t(ECHO | ICANON | IEXTEN | ISIG);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    ok_ = tcsetattr(fd, TCSADRAIN, &raw) == 0;
  }
  ~RawMode() {
    if (ok_) tcsetattr(fd_, TCSADRAIN, &saved_);
  }
  int fd_;
  termios saved_{};
  bool ok_ = false;
};

}  // namespace

void LineEditor::write(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(out_, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += size_t(n);
  }
}

void LineEditor::refresh(const std::string& prompt, const std::string& buf, size_t cursor) {
  std::string s = "\r" + prompt + buf + "\x1b[K";
  const size_t back = n_chars(buf, cursor, buf.size());
  if (back > 0) s += "\x1b[" + std::to_string(back) + "D";
  write(s);
}

void LineEditor::add_history(const std::string& line) {
  if (line.empty() || (!history_.empty() && history_.back() == line)) return;
  history_.push_back(line);
  if (history_.size() > 1000) history_.erase(history_.begin());
}

ReadResult LineEditor::read_line(const std::string& prompt, std::string* line) {
  RawMode raw(in_);
  std::string buf;
  size_t cursor = 0;
  size_t hist = history_.size();  // == size: the line being edited
  std::string editing;
  write(prompt);
  auto read_byte = [&](unsigned char* c) {
    for (;;) {
      const ssize_t n = ::read(in_, c, 1);
      if (n == 1) return true;
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
  };
  auto recall = [&](size_t h) {
    if (hist == history_.size()) editing = buf;
    hist = h;
    buf = hist == history_.size() ? editing : history_[hist];
    cursor = buf.size();
  };
  for (;;) {
    unsigned char c;
    if (!read_byte(&c)) {
      write("\r\n");
      return buf.empty() ? ReadResult::kEof : (*line = buf, ReadResult::kLine);
    }
    switch (c) {
      case '\r':
      case '\n':
        write("\r\n");
        *line = buf;
        return ReadResult::kLine;
      case 3:  // Ctrl-C
        write("^C\r\n");
        if (hint_.empty()) return ReadResult::kInterrupt;
        write(hint_ + "\r\n");
        buf.clear();
        cursor = 0;
        hist = history_.size();
        break;
      case 4:  // Ctrl-D
        if (buf.empty()) {
          write("\r\n");
          return ReadResult::kEof;
        }
        if (cursor < buf.size()) buf.erase(cursor, next_char(buf, cursor) - cursor);
        break;
      case 127:
      case 8:
        if (cursor > 0) {
          const size_t p = prev_char(buf, cursor);
          buf.erase(p, cursor - p);
          cursor = p;
        }
        break;
      case 1: cursor = 0; break;            // Ctrl-A
      case 5: cursor = buf.size(); break;   // Ctrl-E
      case 11: buf.erase(cursor); break;    // Ctrl-K
      case 21: buf.erase(0, cursor), cursor = 0; break;  // Ctrl-U
      case 23: {                            // Ctrl-W: the word before the cursor
        size_t p = cursor;
        while (p > 0 && buf[p - 1] == ' ') --p;
        while (p > 0 && buf[p - 1] != ' ') --p;
        buf.erase(p, cursor - p);
        cursor = p;
        break;
      }
      case 27: {  // escape sequences: arrows, Home/End, Delete
        unsigned char a, b;
        if (!read_byte(&a) || !read_byte(&b)) break;
        if (a != '[' && a != 'O') break;
        if (b >= '0' && b <= '9') {
          unsigned char t;
          if (!read_byte(&t) || t != '~') break;
          if (b == '3' && cursor < buf.size()) buf.erase(cursor, next_char(buf, cursor) - cursor);
          if (b == '1' || b == '7') cursor = 0;
          if (b == '4' || b == '8') cursor = buf.size();
          break;
        }
        if (b == 'A' && hist > 0) recall(hist - 1);
        if (b == 'B' && hist < history_.size()) recall(hist + 1);
        if (b == 'C') cursor = next_char(buf, cursor);
        if (b == 'D') cursor = prev_char(buf, cursor);
        if (b == 'H') cursor = 0;
        if (b == 'F') cursor = buf.size();
        break;
      }
      default:
        if (c >= 32 || c == '\t') {
          buf.insert(cursor, 1, char(c));
          ++cursor;
          // Keep a multi-byte character whole before redrawing.
          if (c >= 0xC0) {
            const int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
            for (int i = 0; i < more; ++i) {
              unsigned char d;
              if (!read_byte(&d)) break;
              buf.insert(cursor, 1, char(d));
              ++cursor;
            }
          }
        }
        break;
    }
    refresh(prompt, buf, cursor);
  }
}

}  // namespace strata::tools
