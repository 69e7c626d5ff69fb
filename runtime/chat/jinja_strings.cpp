// Python str semantics over UTF-8. ASCII strings take byte paths; others are
// decoded to code points first.
#include "runtime/chat/jinja_strings.h"

#include <locale.h>
#include <wctype.h>

#include "runtime/chat/jinja_value.h"

namespace strata::chat::jinja {

namespace {

// The C.UTF-8 locale's character tables, for Unicode case mapping without
// touching the process locale. Null where the C library lacks it: ASCII only.
locale_t unicode_locale() {
  static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return loc;
}

}  // namespace

bool cp_is_upper(char32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z';
  locale_t loc = unicode_locale();
  return loc && iswupper_l(static_cast<wint_t>(c), loc);
}
bool cp_is_lower(char32_t c) {
  if (c < 0x80) return c >= 'a' && c <= 'z';
  locale_t loc = unicode_locale();
  return loc && iswlower_l(static_cast<wint_t>(c), loc);
}
bool cp_is_alpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  locale_t loc = unicode_locale();
  return loc && iswalpha_l(static_cast<wint_t>(c), loc);
}
bool cp_is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool cp_is_cased(char32_t c) { return cp_is_upper(c) || cp_is_lower(c); }

static char32_t cp_upper(char32_t c) {
  if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 32 : c;
  locale_t loc = unicode_locale();
  return loc ? static_cast<char32_t>(towupper_l(static_cast<wint_t>(c), loc)) : c;
}
static char32_t cp_lower(char32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
  locale_t loc = unicode_locale();
  return loc ? static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), loc)) : c;
}

static void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {  // ß has no single upper-case letter; Python gives "SS"
    out += "SS";
  } else {
    utf8_append(out, cp_upper(c));
  }
}

std::string py_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
    return out;
  }
  for (char32_t c : utf8_decode(s)) append_upper(out, c);
  return out;
}

std::string py_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    return out;
  }
  for (char32_t c : utf8_decode(s)) utf8_append(out, cp_lower(c));
  return out;
}

std::string py_title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (char32_t c : utf8_decode(s)) {
    if (prev_cased) {
      utf8_append(out, cp_lower(c));
    } else {
      append_upper(out, c);
    }
    prev_cased = cp_is_cased(c);
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (char32_t c : utf8_decode(s)) {
    if (first) {
      append_upper(out, c);
    } else {
      utf8_append(out, cp_lower(c));
    }
    first = false;
  }
  return out;
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string cps = utf8_decode(s);
  const std::u32string set = chars ? utf8_decode(*chars) : std::u32string();
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  size_t b = 0;
  size_t e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  return utf8_encode(std::u32string_view(cps).substr(b, e - b));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, long maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<long>(out.size()) < maxsplit) {
      const size_t at = s.find(*sep, pos);
      if (at == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, at - pos));
      pos = at + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  const std::u32string cps = utf8_decode(s);
  size_t i = 0;
  const size_t n = cps.size();
  while (true) {
    while (i < n && py_isspace(cps[i])) ++i;
    if (i >= n) break;
    if (maxsplit >= 0 && static_cast<long>(out.size()) >= maxsplit) {
      // The remainder, with its trailing whitespace kept as Python does.
      out.push_back(utf8_encode(std::u32string_view(cps).substr(i)));
      break;
    }
    size_t j = i;
    while (j < n && !py_isspace(cps[j])) ++j;
    out.push_back(utf8_encode(std::u32string_view(cps).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep, long maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<long>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t at = s.rfind(*sep, end - sep->size());
      if (at == std::string_view::npos) break;
      out.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
      end = at;
    }
    out.emplace_back(s.substr(0, end));
  } else {
    const std::u32string cps = utf8_decode(s);
    size_t j = cps.size();
    while (true) {
      while (j > 0 && py_isspace(cps[j - 1])) --j;
      if (j == 0) break;
      if (maxsplit >= 0 && static_cast<long>(out.size()) >= maxsplit) {
        out.push_back(utf8_encode(std::u32string_view(cps).substr(0, j)));
        break;
      }
      size_t i = j;
      while (i > 0 && !py_isspace(cps[i - 1])) --i;
      out.push_back(utf8_encode(std::u32string_view(cps).substr(i, j - i)));
      j = i;
    }
  }
  return {out.rbegin(), out.rend()};
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> out;
  const std::u32string cps = utf8_decode(s);
  size_t start = 0;
  size_t i = 0;
  auto is_break = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
  };
  while (i < cps.size()) {
    if (!is_break(cps[i])) {
      ++i;
      continue;
    }
    size_t eol = i + 1;
    if (cps[i] == '\r' && eol < cps.size() && cps[eol] == '\n') ++eol;
    out.push_back(utf8_encode(std::u32string_view(cps).substr(start, (keepends ? eol : i) - start)));
    start = eol;
    i = eol;
  }
  if (start < cps.size()) out.push_back(utf8_encode(std::u32string_view(cps).substr(start)));
  return out;
}

std::string py_replace(std::string_view s, std::string_view old_s, std::string_view new_s, long count) {
  std::string out;
  if (old_s.empty()) {
    // Python inserts `new` before every code point and at the end.
    long done = 0;
    for (char32_t c : utf8_decode(s)) {
      if (count < 0 || done < count) {
        out += new_s;
        ++done;
      }
      utf8_append(out, c);
    }
    if (count < 0 || done < count) out += new_s;
    return out;
  }
  size_t pos = 0;
  long done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(old_s, pos);
    if (at == std::string_view::npos) break;
    out += s.substr(pos, at - pos);
    out += new_s;
    pos = at + old_s.size();
    ++done;
  }
  out += s.substr(pos);
  return out;
}

size_t py_count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return utf8_length(s) + 1;
  size_t n = 0;
  size_t pos = 0;
  while ((pos = s.find(sub, pos)) != std::string_view::npos) {
    ++n;
    pos += sub.size();
  }
  return n;
}

long py_find(std::string_view s, std::string_view sub, bool reverse) {
  const size_t at = reverse ? s.rfind(sub) : s.find(sub);
  if (at == std::string_view::npos) return -1;
  return static_cast<long>(utf8_length(s.substr(0, at)));
}

}  // namespace strata::chat::jinja
