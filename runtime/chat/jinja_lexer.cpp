// The template lexer. Text outside tags becomes data tokens after the
// whitespace rules; inside `{{ }}` and `{% %}` it yields names, literals and
// operators. A tag only ends when its brackets are balanced, so
// `{{ {'a': {'b': 1}} }}` is one expression.
#include "runtime/chat/jinja_lexer.h"

#include <cstdio>
#include <cstring>

#include "runtime/chat/jinja_value.h"

namespace strata::chat::jinja {

std::string normalize_source(std::string_view source, const LexerOptions& opts) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!opts.keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string describe_position(const std::string& source, uint32_t offset) {
  size_t line = 1;
  size_t line_start = 0;
  const size_t end = offset < source.size() ? offset : source.size();
  for (size_t i = 0; i < end; ++i) {
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  const size_t col = utf8_length(std::string_view(source).substr(line_start, end - line_start)) + 1;
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Python's \s at s[i] (Unicode whitespace); returns its byte length or 0.
size_t space_at(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return py_isspace(c) ? 1 : 0;
  size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
  if (i + len > s.size()) return 0;
  const std::u32string cp = utf8_decode(s.substr(i, len));
  return !cp.empty() && py_isspace(cp[0]) ? len : 0;
}

size_t skip_spaces(std::string_view s, size_t i) {
  while (i < s.size()) {
    const size_t n = space_at(s, i);
    if (!n) break;
    i += n;
  }
  return i;
}

// Python str.rstrip() with no argument.
std::string_view rstrip(std::string_view s) {
  const std::u32string cps = utf8_decode(s);
  size_t keep = cps.size();
  while (keep > 0 && py_isspace(cps[keep - 1])) --keep;
  size_t bytes = 0;
  for (size_t i = 0; i < keep; ++i) {
    const char32_t c = cps[i];
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return s.substr(0, bytes);
}

bool all_space(std::string_view s) {
  for (char32_t c : utf8_decode(s)) {
    if (!py_isspace(c)) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(const std::string& src, const LexerOptions& opts) : src_(src), opts_(opts) {}

  Result<std::vector<Token>> run() {
    if (!utf8_valid(src_)) return invalid_argument("expected a template in UTF-8, got invalid bytes");
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        emit_data(std::string_view(src_).substr(pos), pos);
        line_starting_ = src_.back() == '\n';
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = 0;
      if (tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+')) sign = src_[tag + 2];
      std::string_view text = std::string_view(src_).substr(pos, tag - pos);
      text = strip_before(text, sign, kind != '{');
      emit_data(text, pos);
      line_starting_ = false;
      const size_t after = tag + 2 + (sign ? 1 : 0);
      size_t raw_body = 0;
      if (kind == '%' && is_raw_begin(tag, &raw_body)) {
        STRATA_ASSIGN_OR_RETURN(pos, lex_raw(raw_body));
      } else if (kind == '#') {
        STRATA_ASSIGN_OR_RETURN(pos, lex_comment(tag, after));
      } else {
        STRATA_ASSIGN_OR_RETURN(pos, lex_tag(tag, after, kind == '{'));
      }
    }
    Token eof;
    eof.type = Tok::kEof;
    eof.offset = static_cast<uint32_t>(src_.size());
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  Status error(size_t offset, const std::string& msg) const {
    return invalid_argument("template " + describe_position(src_, static_cast<uint32_t>(offset)) + ": " + msg);
  }

  size_t find_tag(size_t pos) const {
    while (true) {
      const size_t at = src_.find('{', pos);
      if (at == std::string::npos || at + 1 >= src_.size()) return std::string::npos;
      const char c = src_[at + 1];
      if (c == '{' || c == '%' || c == '#') return at;
      pos = at + 1;
    }
  }

  // Whitespace control on the text before a tag: "-" strips all trailing
  // whitespace; otherwise lstrip_blocks drops spaces between the line start
  // and a block or comment tag when nothing else is on that line.
  std::string_view strip_before(std::string_view text, char sign, bool is_block) const {
    if (sign == '-') return rstrip(text);
    if (sign == '+' || !opts_.lstrip_blocks || !is_block) return text;
    const size_t nl = text.rfind('\n');
    const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting_) && all_space(text.substr(l_pos))) return text.substr(0, l_pos);
    return text;
  }

  void emit_data(std::string_view text, size_t offset) {
    if (text.empty()) return;
    Token t;
    t.type = Tok::kData;
    t.text = std::string(text);
    t.offset = static_cast<uint32_t>(offset);
    tokens_.push_back(std::move(t));
  }

  // After a block end "%}": "-" eats all following whitespace, "+" nothing,
  // plain ends eat one newline under trim_blocks. Returns the next position.
  size_t after_block_end(size_t end_pos, char sign) {
    size_t p = end_pos;
    if (sign == '-') {
      p = skip_spaces(src_, p);
    } else if (sign != '+' && opts_.trim_blocks && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    line_starting_ = p > 0 && src_[p - 1] == '\n';
    return p;
  }

  // "{%" [-+] \s* "raw" \s* ("-%}" \s* | "%}") at `tag`; no trim_blocks here.
  bool is_raw_begin(size_t tag, size_t* body) {
    size_t p = tag + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = skip_spaces(src_, p);
    if (src_.compare(p, 3, "raw") != 0) return false;
    p = skip_spaces(src_, p + 3);
    if (src_.compare(p, 3, "-%}") == 0) {
      *body = skip_spaces(src_, p + 3);
    } else if (src_.compare(p, 2, "%}") == 0) {
      *body = p + 2;
    } else {
      return false;
    }
    line_starting_ = *body > 0 && src_[*body - 1] == '\n';
    return true;
  }

  Result<size_t> lex_raw(size_t body) {
    size_t search = body;
    while (true) {
      const size_t at = src_.find("{%", search);
      if (at == std::string::npos) return error(body, "missing end of raw directive");
      size_t p = at + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = skip_spaces(src_, p);
      if (src_.compare(p, 6, "endraw") == 0) {
        p = skip_spaces(src_, p + 6);
        char end_sign = 0;
        if (src_.compare(p, 3, "+%}") == 0 || src_.compare(p, 3, "-%}") == 0) {
          end_sign = src_[p];
          p += 3;
        } else if (src_.compare(p, 2, "%}") == 0) {
          p += 2;
        } else {
          search = at + 2;
          continue;
        }
        std::string_view text = std::string_view(src_).substr(body, at - body);
        emit_data(strip_before(text, sign, true), body);
        return after_block_end(p, end_sign);
      }
      search = at + 2;
    }
  }

  Result<size_t> lex_comment(size_t tag, size_t after) {
    const size_t end = src_.find("#}", after);
    if (end == std::string::npos) return error(tag, "missing end of comment tag");
    char sign = 0;
    if (end > after && (src_[end - 1] == '-' || src_[end - 1] == '+')) sign = src_[end - 1];
    return after_block_end(end + 2, sign);
  }

  Result<size_t> lex_tag(size_t tag, size_t after, bool is_var) {
    Token begin;
    begin.type = is_var ? Tok::kVarBegin : Tok::kBlockBegin;
    begin.offset = static_cast<uint32_t>(tag);
    tokens_.push_back(begin);
    std::vector<char> brackets;
    size_t p = after;
    while (true) {
      p = skip_spaces(src_, p);
      if (p >= src_.size()) return error(tag, std::string("unexpected end of template, expected '") +
                                                  (is_var ? "}}" : "%}") + "'");
      if (brackets.empty()) {
        Token end;
        end.type = is_var ? Tok::kVarEnd : Tok::kBlockEnd;
        end.offset = static_cast<uint32_t>(p);
        if (is_var) {
          if (src_.compare(p, 3, "-}}") == 0) {
            tokens_.push_back(end);
            const size_t q = skip_spaces(src_, p + 3);
            line_starting_ = q > 0 && src_[q - 1] == '\n';
            return q;
          }
          if (src_.compare(p, 2, "}}") == 0) {
            tokens_.push_back(end);
            line_starting_ = false;
            return p + 2;
          }
        } else {
          if (src_.compare(p, 3, "+%}") == 0 || src_.compare(p, 3, "-%}") == 0) {
            tokens_.push_back(end);
            return after_block_end(p + 3, src_[p]);
          }
          if (src_.compare(p, 2, "%}") == 0) {
            tokens_.push_back(end);
            return after_block_end(p + 2, 0);
          }
        }
      }
      STRATA_ASSIGN_OR_RETURN(p, lex_token(p, brackets));
    }
  }

  // Digits with single underscores between them ("1_000"); returns the end.
  size_t scan_digits(size_t p, bool (*ok)(char)) const {
    if (p >= src_.size() || !ok(src_[p])) return p;
    ++p;
    while (p < src_.size()) {
      if (ok(src_[p])) {
        ++p;
      } else if (src_[p] == '_' && p + 1 < src_.size() && ok(src_[p + 1])) {
        p += 2;
      } else {
        break;
      }
    }
    return p;
  }

  Result<size_t> lex_number(size_t p) {
    Token t;
    t.offset = static_cast<uint32_t>(p);
    const size_t int_end = scan_digits(p, is_digit);
    // Float: digits then a fraction and/or an exponent (jinja's float_re).
    size_t q = int_end;
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' && is_digit(src_[q + 1])) {
      q = scan_digits(q + 1, is_digit);
      is_float = true;
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      const size_t e_end = scan_digits(r, is_digit);
      if (e_end > r) {
        q = e_end;
        is_float = true;
      }
    }
    const bool after_dot = p > 0 && src_[p - 1] == '.';
    if (is_float && !after_dot) {
      std::string lit;
      for (size_t i = p; i < q; ++i) {
        if (src_[i] != '_') lit += src_[i];
      }
      t.type = Tok::kFloat;
      t.f = std::strtod(lit.c_str(), nullptr);
      tokens_.push_back(std::move(t));
      return q;
    }
    // Integer: 0b/0o/0x prefixes, decimal without leading zeros, or zeros.
    int base = 10;
    size_t start = p;
    size_t end = p;
    if (src_[p] == '0' && p + 1 < src_.size() && std::strchr("bBoOxX", src_[p + 1])) {
      const char b = static_cast<char>(src_[p + 1] | 0x20);
      base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
      size_t r = p + 2;
      bool any = false;
      while (r < src_.size()) {
        size_t s = r;
        if (src_[s] == '_') ++s;
        if (s < src_.size() && hex_value(src_[s]) >= 0 && hex_value(src_[s]) < base) {
          r = s + 1;
          any = true;
        } else {
          break;
        }
      }
      if (!any) return error(p, "invalid integer literal");
      start = p + 2;
      end = r;
    } else if (src_[p] == '0') {
      end = p + 1;
      while (end < src_.size()) {
        if (src_[end] == '0') {
          ++end;
        } else if (src_[end] == '_' && end + 1 < src_.size() && src_[end + 1] == '0') {
          end += 2;
        } else {
          break;
        }
      }
    } else {
      end = int_end;
    }
    uint64_t v = 0;
    for (size_t i = start; i < end; ++i) {
      if (src_[i] == '_') continue;
      const uint64_t d = static_cast<uint64_t>(hex_value(src_[i]));
      if (v > (static_cast<uint64_t>(INT64_MAX) - d) / static_cast<uint64_t>(base)) {
        return error(p, "integer literal too large");
      }
      v = v * static_cast<uint64_t>(base) + d;
    }
    t.type = Tok::kInt;
    t.i = static_cast<int64_t>(v);
    tokens_.push_back(std::move(t));
    return end;
  }

  // A string literal: Python's unicode-escape decoding applied after
  // non-ASCII characters were turned into escapes, as jinja does.
  Result<size_t> lex_string(size_t p) {
    const char quote = src_[p];
    size_t q = p + 1;
    while (q < src_.size() && src_[q] != quote) {
      if (src_[q] == '\\') ++q;
      ++q;
    }
    if (q >= src_.size()) return error(p, std::string("unexpected char '") + quote + "' (unterminated string)");
    std::string escaped;
    for (char32_t c : utf8_decode(std::string_view(src_).substr(p + 1, q - p - 1))) {
      if (c < 0x80) {
        escaped += static_cast<char>(c);
      } else {
        append_py_hex_escape(escaped, c);
      }
    }
    Token t;
    t.type = Tok::kString;
    t.offset = static_cast<uint32_t>(p);
    STRATA_ASSIGN_OR_RETURN(t.text, unescape(escaped, p));
    tokens_.push_back(std::move(t));
    return q + 1;
  }

  Result<std::string> unescape(const std::string& s, size_t offset) const {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '\\' || i + 1 >= s.size()) {
        out += s[i];
        continue;
      }
      const char c = s[++i];
      auto hex = [&](int n) -> Result<char32_t> {
        char32_t v = 0;
        for (int k = 1; k <= n; ++k) {
          if (i + k >= s.size() || hex_value(s[i + k]) < 0) return error(offset, "truncated escape in string");
          v = v * 16 + static_cast<char32_t>(hex_value(s[i + k]));
        }
        i += n;
        return v;
      };
      char32_t cp = 0;
      switch (c) {
        case '\n': continue;
        case '\\': out += '\\'; continue;
        case '\'': out += '\''; continue;
        case '"': out += '"'; continue;
        case 'a': out += '\a'; continue;
        case 'b': out += '\b'; continue;
        case 'f': out += '\f'; continue;
        case 'n': out += '\n'; continue;
        case 'r': out += '\r'; continue;
        case 't': out += '\t'; continue;
        case 'v': out += '\v'; continue;
        case 'x': {
          STRATA_ASSIGN_OR_RETURN(cp, hex(2));
          break;
        }
        case 'u': {
          STRATA_ASSIGN_OR_RETURN(cp, hex(4));
          break;
        }
        case 'U': {
          STRATA_ASSIGN_OR_RETURN(cp, hex(8));
          break;
        }
        case 'N': return error(offset, "\\N{...} escapes are not supported");
        default:
          if (c >= '0' && c <= '7') {
            cp = static_cast<char32_t>(c - '0');
            for (int k = 0; k < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++k) {
              cp = cp * 8 + static_cast<char32_t>(s[++i] - '0');
            }
            break;
          }
          out += '\\';
          out += c;
          continue;
      }
      if (cp > 0x10FFFF) return error(offset, "escape in string is past U+10FFFF");
      if (cp >= 0xD800 && cp <= 0xDFFF) return error(offset, "expected a Unicode scalar value, got a surrogate escape");
      utf8_append(out, cp);
    }
    return out;
  }

  Result<size_t> lex_token(size_t p, std::vector<char>& brackets) {
    const char c = src_[p];
    if (is_digit(c)) return lex_number(p);
    if (is_name_start(c)) {
      size_t q = p + 1;
      while (q < src_.size() && is_name_char(src_[q])) ++q;
      Token t;
      t.type = Tok::kName;
      t.text = src_.substr(p, q - p);
      t.offset = static_cast<uint32_t>(p);
      tokens_.push_back(std::move(t));
      return q;
    }
    if (c == '\'' || c == '"') return lex_string(p);
    static const char* const kOps[] = {"**", "//", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                       "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};
    for (const char* op : kOps) {
      const size_t n = std::strlen(op);
      if (src_.compare(p, n, op) != 0) continue;
      if (n == 1 && std::strchr("([{", op[0])) brackets.push_back(op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}');
      if (n == 1 && std::strchr(")]}", op[0])) {
        if (brackets.empty()) return error(p, std::string("unexpected '") + op + "'");
        if (brackets.back() != op[0]) {
          return error(p, std::string("expected '") + brackets.back() + "', got '" + op + "'");
        }
        brackets.pop_back();
      }
      Token t;
      t.type = Tok::kOp;
      t.text = op;
      t.offset = static_cast<uint32_t>(p);
      tokens_.push_back(std::move(t));
      return p + n;
    }
    std::string shown(1, c);
    if (static_cast<unsigned char>(c) < 0x20) shown = "\\x" + std::to_string(static_cast<int>(c));
    return error(p, "unexpected char '" + shown + "'");
  }

  const std::string& src_;
  LexerOptions opts_;
  std::vector<Token> tokens_;
  bool line_starting_ = true;
};

}  // namespace

Result<std::vector<Token>> tokenize(const std::string& source, const LexerOptions& opts) {
  Lexer lexer(source, opts);
  return lexer.run();
}

}  // namespace strata::chat::jinja
