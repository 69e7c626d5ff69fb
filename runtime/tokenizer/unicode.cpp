// Unicode helpers: the category table expanded from the generated runs,
// forgiving UTF-8 decoding, and GPT-2's byte-level alphabet.
#include "runtime/tokenizer/unicode.h"

#include <array>
#include <vector>

#include "runtime/tokenizer/unicode_tables.h"

namespace strata::unicode {

const uint8_t* flags_table() {
  // 1.1 MB, built once: a flat table makes the per-character lookup one load,
  // which matters because the pre-tokenizer classifies every input character.
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(kMaxCodepoint + 1);
    const auto& runs = unicode_data::kRuns;
    const size_t n = sizeof(runs) / sizeof(runs[0]);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t end = i + 1 < n ? runs[i + 1].first : kMaxCodepoint + 1;
      for (uint32_t cp = runs[i].first; cp < end; ++cp) t[cp] = runs[i].flags;
    }
    return t;
  }();
  return table.data();
}

size_t decode_utf8(std::string_view s, size_t pos, uint32_t* cp) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  *cp = kReplacement;
  size_t n;
  uint32_t v;
  // Second-byte bounds exclude overlong forms, surrogates and > U+10FFFF.
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
    v = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    v = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    v = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  if (pos + n > s.size()) return 1;
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<uint8_t>(s[pos + i]);
    if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return 1;
    v = (v << 6) | (b & 0x3F);
  }
  *cp = v;
  return n;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t complete_utf8_prefix(std::string_view s) {
  // Walk back over at most 3 continuation bytes to the last lead byte; if the
  // sequence it starts is shorter than announced and what is there could
  // still be valid, it is incomplete.
  const size_t n = s.size();
  size_t i = n;
  while (i > 0 && n - i < 4) {
    --i;
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte
    if (b < 0xC2 || b > 0xF4) return n;  // ASCII or a byte that never leads
    const size_t want = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
    const size_t have = n - i;
    if (have >= want) return n;
    // The second byte has tighter bounds for some leads.
    if (have >= 2) {
      const auto b1 = static_cast<uint8_t>(s[i + 1]);
      if ((b == 0xE0 && b1 < 0xA0) || (b == 0xED && b1 > 0x9F) || (b == 0xF0 && b1 < 0x90) ||
          (b == 0xF4 && b1 > 0x8F)) {
        return n;  // already invalid; more bytes cannot fix it
      }
    }
    return i;
  }
  return n;
}

namespace {

struct ByteMaps {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 0x144> to_byte{};  // every alphabet code point is < U+0144
};

const ByteMaps& byte_maps() {
  static const ByteMaps maps = [] {
    ByteMaps m;
    m.to_byte.fill(-1);
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      m.to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      m.to_byte[m.to_cp[b]] = static_cast<int16_t>(b);
    }
    return m;
  }();
  return maps;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t b) { return byte_maps().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) {
  const auto& m = byte_maps();
  return cp < m.to_byte.size() ? m.to_byte[cp] : -1;
}

}  // namespace strata::unicode
