// Python str methods on UTF-8 strings (by code point): case mapping,
// strip/split/replace, character classes. Case mapping uses the C library's
// Unicode tables (simple mappings, plus ß -> SS as Python upper() does).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::chat::jinja {

bool cp_is_upper(char32_t c);
bool cp_is_lower(char32_t c);
bool cp_is_alpha(char32_t c);
bool cp_is_digit(char32_t c);
bool cp_is_cased(char32_t c);

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);       // str.title()
std::string py_capitalize(std::string_view s);  // str.capitalize()

// strip/lstrip/rstrip: `chars` unset strips whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / str.rsplit: `sep` unset splits on whitespace runs; maxsplit < 0: all.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, long maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep, long maxsplit);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
// str.replace; count < 0: all. An empty `old` inserts between code points.
std::string py_replace(std::string_view s, std::string_view old_s, std::string_view new_s, long count);
// Number of non-overlapping occurrences (str.count); empty sub: length + 1.
size_t py_count(std::string_view s, std::string_view sub);
// str.find in code points; -1 when absent.
long py_find(std::string_view s, std::string_view sub, bool reverse);

}  // namespace strata::chat::jinja
