// GGUF metadata values: the 13 value types of the format, including arrays
// (numeric arrays kept as packed little-endian bytes, strings as std::string).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::gguf {

enum class ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
inline constexpr uint32_t kValueTypeLimit = 13;

const char* value_type_name(ValueType t);
// `s` made safe for a one-line message on a terminal: printable ASCII is kept,
// every other byte (control characters, escape sequences, NUL, non-ASCII)
// becomes \xNN, and past `max_chars` it is cut with "...". Names and keys
// come from untrusted files, so messages quote them through this.
std::string printable(std::string_view s, size_t max_chars = 96);
// Bytes of one scalar of type t in the file; 0 for string and array.
size_t value_type_size(ValueType t);
inline bool value_type_is_integer(ValueType t) {
  return t == ValueType::kU8 || t == ValueType::kI8 || t == ValueType::kU16 || t == ValueType::kI16 ||
         t == ValueType::kU32 || t == ValueType::kI32 || t == ValueType::kU64 || t == ValueType::kI64;
}

class Value {
 public:
  Value() = default;

  // Scalars.
  static Value u8(uint8_t v) { return scalar_(ValueType::kU8, &v, 1); }
  static Value i8(int8_t v) { return scalar_(ValueType::kI8, &v, 1); }
  static Value u16(uint16_t v) { return scalar_(ValueType::kU16, &v, 2); }
  static Value i16(int16_t v) { return scalar_(ValueType::kI16, &v, 2); }
  static Value u32(uint32_t v) { return scalar_(ValueType::kU32, &v, 4); }
  static Value i32(int32_t v) { return scalar_(ValueType::kI32, &v, 4); }
  static Value u64(uint64_t v) { return scalar_(ValueType::kU64, &v, 8); }
  static Value i64(int64_t v) { return scalar_(ValueType::kI64, &v, 8); }
  static Value f32(float v) { return scalar_(ValueType::kF32, &v, 4); }
  static Value f64(double v) { return scalar_(ValueType::kF64, &v, 8); }
  static Value boolean(bool v) { uint8_t b = v ? 1 : 0; return scalar_(ValueType::kBool, &b, 1); }
  static Value string(std::string v);
  // Arrays.
  static Value string_array(std::vector<std::string> v);
  static Value f32_array(const std::vector<float>& v) { return numeric_array_(ValueType::kF32, v.data(), v.size()); }
  static Value i32_array(const std::vector<int32_t>& v) { return numeric_array_(ValueType::kI32, v.data(), v.size()); }
  static Value u32_array(const std::vector<uint32_t>& v) { return numeric_array_(ValueType::kU32, v.data(), v.size()); }
  static Value bool_array(const std::vector<bool>& v);
  // Packed little-endian elements of a numeric type, as read from a file.
  static Value numeric_array_raw(ValueType elem, std::string packed, uint64_t n);
  static Value nested_array(ValueType elem, std::vector<Value> items);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::kArray; }

  // Scalar access with type conversion where lossless; nullopt otherwise.
  std::optional<uint64_t> as_u64() const;
  std::optional<int64_t> as_i64() const;
  std::optional<double> as_f64() const;  // any numeric scalar
  std::optional<bool> as_bool() const;
  const std::string* as_string() const { return type_ == ValueType::kString ? &str_ : nullptr; }

  // Arrays.
  ValueType array_type() const { return elem_; }
  uint64_t array_size() const { return n_; }
  const std::vector<std::string>& strings() const { return strings_; }  // kString arrays
  const std::vector<Value>& items() const { return items_; }            // kArray arrays
  // Element i of a numeric array (integer, float or bool), converted.
  double number_at(uint64_t i) const;
  int64_t int_at(uint64_t i) const;
  uint64_t u64_at(uint64_t i) const;  // element i of a u64 array, exact
  const std::string& packed() const { return raw_; }  // numeric arrays: raw little-endian bytes

  // Short human form: "42", "\"llama\"", "[f32 x 151936]". Control
  // characters in strings are escaped (\n, \xNN); UTF-8 is kept.
  std::string summary(size_t max_chars = 60) const;

 private:
  static Value scalar_(ValueType t, const void* p, size_t n) {
    Value v;
    v.type_ = t;
    std::memcpy(&v.scalar_bits_, p, n);
    return v;
  }
  static Value numeric_array_(ValueType elem, const void* p, size_t n);

  ValueType type_ = ValueType::kU8;
  uint64_t scalar_bits_ = 0;  // little-endian bytes of a scalar
  std::string str_;
  ValueType elem_ = ValueType::kU8;
  uint64_t n_ = 0;
  std::string raw_;
  std::vector<std::string> strings_;
  std::vector<Value> items_;
};

}  // namespace strata::gguf
