// Unicode helpers for the tokenizers: UTF-8 decoding that never fails (an
// invalid byte stands for itself), general categories and White_Space from the
// generated tables, and GPT-2's byte <-> printable-character map.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::unicode {

// Unicode general categories, in the order of scripts/gen_unicode_tables.py.
enum Category : uint8_t {
  kCn = 0, kLu, kLl, kLt, kLm, kLo, kMn, kMc, kMe, kNd, kNl, kNo,
  kPc, kPd, kPs, kPe, kPi, kPf, kPo, kSm, kSc, kSk, kSo,
  kZs, kZl, kZp, kCc, kCf, kCs, kCo,
  kCategoryCount
};
inline constexpr uint8_t kCategoryMask = 0x1F;
inline constexpr uint8_t kWhiteSpaceBit = 0x80;

// Category bit sets for \p{X} classes: bit c is set for category c.
inline constexpr uint32_t cat_bit(Category c) { return 1u << c; }
inline constexpr uint32_t kLetterBits = cat_bit(kLu) | cat_bit(kLl) | cat_bit(kLt) | cat_bit(kLm) | cat_bit(kLo);
inline constexpr uint32_t kMarkBits = cat_bit(kMn) | cat_bit(kMc) | cat_bit(kMe);
inline constexpr uint32_t kNumberBits = cat_bit(kNd) | cat_bit(kNl) | cat_bit(kNo);
inline constexpr uint32_t kPunctBits = cat_bit(kPc) | cat_bit(kPd) | cat_bit(kPs) | cat_bit(kPe) | cat_bit(kPi) |
                                       cat_bit(kPf) | cat_bit(kPo);
inline constexpr uint32_t kSymbolBits = cat_bit(kSm) | cat_bit(kSc) | cat_bit(kSk) | cat_bit(kSo);
inline constexpr uint32_t kSeparatorBits = cat_bit(kZs) | cat_bit(kZl) | cat_bit(kZp);
inline constexpr uint32_t kOtherBits = cat_bit(kCn) | cat_bit(kCc) | cat_bit(kCf) | cat_bit(kCs) | cat_bit(kCo);

inline constexpr uint32_t kMaxCodepoint = 0x10FFFF;
inline constexpr uint32_t kReplacement = 0xFFFD;

// Flags byte of every code point U+0000..U+10FFFF (category in the low 5
// bits, kWhiteSpaceBit), expanded from the generated runs on first use.
// Hot loops fetch the pointer once.
const uint8_t* flags_table();
// Code points above U+10FFFF read as unassigned (Cn).
inline uint8_t flags(uint32_t cp) { return cp <= kMaxCodepoint ? flags_table()[cp] : uint8_t{kCn}; }
inline Category category(uint32_t cp) { return static_cast<Category>(flags(cp) & kCategoryMask); }
inline bool is_white_space(uint32_t cp) { return (flags(cp) & kWhiteSpaceBit) != 0; }

// Bytes in the UTF-8 sequence a lead byte announces, by its high nibble:
// 1 for ASCII and stray continuation bytes, 2/3/4 for lead bytes. This is the
// split SentencePiece-style tokenizers use; it does not validate.
inline size_t utf8_len_from_lead(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Decodes one code point at s[pos]. Returns the number of bytes used (>= 1).
// A byte that does not start a well-formed sequence (stray continuation,
// overlong form, surrogate, past U+10FFFF, truncated) is consumed alone and
// decodes to U+FFFD, so the caller can keep the original bytes.
size_t decode_utf8(std::string_view s, size_t pos, uint32_t* cp);

// Appends the UTF-8 encoding of cp (<= U+10FFFF) to out.
void append_utf8(uint32_t cp, std::string* out);

// Length of the longest prefix of s that ends on a code point boundary of
// well-formed UTF-8, looking only at a possibly incomplete last sequence: the
// bytes after it could still become a complete character when more arrive.
// Returns s.size() when s does not end inside an incomplete sequence.
size_t complete_utf8_prefix(std::string_view s);

// GPT-2's byte-level alphabet: each byte maps to one printable code point
// ('!'..'~', U+00A1..U+00AC and U+00AE..U+00FF map to themselves, the other
// 68 bytes to U+0100 upwards in byte order).
uint32_t byte_to_codepoint(uint8_t b);
// The byte a code point of that alphabet stands for, or -1.
int codepoint_to_byte(uint32_t cp);

}  // namespace strata::unicode
