// GGUF metadata values: construction, typed access and printing.
#include "runtime/gguf/gguf_value.h"

#include <cmath>
#include <cstdio>

namespace strata::gguf {

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kU8: return "u8";
    case ValueType::kI8: return "i8";
    case ValueType::kU16: return "u16";
    case ValueType::kI16: return "i16";
    case ValueType::kU32: return "u32";
    case ValueType::kI32: return "i32";
    case ValueType::kF32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kU64: return "u64";
    case ValueType::kI64: return "i64";
    case ValueType::kF64: return "f64";
  }
  return "unknown";
}

std::string printable(std::string_view s, size_t max_chars) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    if (out.size() >= max_chars) return out + "...";
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

size_t value_type_size(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    case ValueType::kString: case ValueType::kArray: return 0;
  }
  return 0;
}

namespace {

// Decode one little-endian scalar of type t at p as int64/uint64/double.
struct Decoded {
  bool is_signed = false;
  bool is_float = false;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
};

Decoded decode(ValueType t, const void* p) {
  Decoded d;
  switch (t) {
    case ValueType::kU8: case ValueType::kBool: { uint8_t v; std::memcpy(&v, p, 1); d.u = v; d.i = v; d.f = v; break; }
    case ValueType::kU16: { uint16_t v; std::memcpy(&v, p, 2); d.u = v; d.i = v; d.f = v; break; }
    case ValueType::kU32: { uint32_t v; std::memcpy(&v, p, 4); d.u = v; d.i = v; d.f = v; break; }
    case ValueType::kU64: { uint64_t v; std::memcpy(&v, p, 8); d.u = v; d.i = static_cast<int64_t>(v); d.f = static_cast<double>(v); break; }
    case ValueType::kI8: { int8_t v; std::memcpy(&v, p, 1); d.is_signed = true; d.i = v; d.f = v; break; }
    case ValueType::kI16: { int16_t v; std::memcpy(&v, p, 2); d.is_signed = true; d.i = v; d.f = v; break; }
    case ValueType::kI32: { int32_t v; std::memcpy(&v, p, 4); d.is_signed = true; d.i = v; d.f = v; break; }
    case ValueType::kI64: { int64_t v; std::memcpy(&v, p, 8); d.is_signed = true; d.i = v; d.f = static_cast<double>(v); break; }
    case ValueType::kF32: { float v; std::memcpy(&v, p, 4); d.is_float = true; d.f = v; break; }
    case ValueType::kF64: { double v; std::memcpy(&v, p, 8); d.is_float = true; d.f = v; break; }
    default: break;
  }
  return d;
}

}  // namespace

Value Value::string(std::string v) {
  Value out;
  out.type_ = ValueType::kString;
  out.str_ = std::move(v);
  return out;
}

Value Value::string_array(std::vector<std::string> v) {
  Value out;
  out.type_ = ValueType::kArray;
  out.elem_ = ValueType::kString;
  out.n_ = v.size();
  out.strings_ = std::move(v);
  return out;
}

Value Value::bool_array(const std::vector<bool>& v) {
  std::string packed(v.size(), '\0');
  for (size_t i = 0; i < v.size(); ++i) packed[i] = v[i] ? 1 : 0;
  return numeric_array_raw(ValueType::kBool, std::move(packed), v.size());
}

Value Value::numeric_array_(ValueType elem, const void* p, size_t n) {
  return numeric_array_raw(elem, std::string(static_cast<const char*>(p), n * value_type_size(elem)), n);
}

Value Value::numeric_array_raw(ValueType elem, std::string packed, uint64_t n) {
  Value out;
  out.type_ = ValueType::kArray;
  out.elem_ = elem;
  out.n_ = n;
  out.raw_ = std::move(packed);
  return out;
}

Value Value::nested_array(ValueType elem, std::vector<Value> items) {
  Value out;
  out.type_ = ValueType::kArray;
  out.elem_ = elem;
  out.n_ = items.size();
  out.items_ = std::move(items);
  return out;
}

std::optional<uint64_t> Value::as_u64() const {
  if (!value_type_is_integer(type_)) return std::nullopt;
  Decoded d = decode(type_, &scalar_bits_);
  if (d.is_signed) {
    if (d.i < 0) return std::nullopt;
    return static_cast<uint64_t>(d.i);
  }
  return d.u;
}

std::optional<int64_t> Value::as_i64() const {
  if (!value_type_is_integer(type_)) return std::nullopt;
  Decoded d = decode(type_, &scalar_bits_);
  if (type_ == ValueType::kU64 && d.u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return d.i;
}

std::optional<double> Value::as_f64() const {
  if (!value_type_is_integer(type_) && type_ != ValueType::kF32 && type_ != ValueType::kF64) return std::nullopt;
  return decode(type_, &scalar_bits_).f;
}

std::optional<bool> Value::as_bool() const {
  if (type_ != ValueType::kBool) return std::nullopt;
  return (scalar_bits_ & 0xff) != 0;
}

double Value::number_at(uint64_t i) const {
  size_t sz = value_type_size(elem_);
  if (sz == 0 || i >= n_) return 0.0;
  return decode(elem_, raw_.data() + i * sz).f;
}

int64_t Value::int_at(uint64_t i) const {
  size_t sz = value_type_size(elem_);
  if (sz == 0 || i >= n_) return 0;
  Decoded d = decode(elem_, raw_.data() + i * sz);
  if (!d.is_float) return d.i;
  // Converting NaN or a float outside int64's range is undefined behaviour
  // (the elements come from the file), so saturate: NaN -> 0, +-big -> limits.
  constexpr double kTwo63 = 9223372036854775808.0;
  if (std::isnan(d.f)) return 0;
  if (d.f >= kTwo63) return INT64_MAX;
  if (d.f < -kTwo63) return INT64_MIN;
  return static_cast<int64_t>(d.f);
}

uint64_t Value::u64_at(uint64_t i) const {
  if (elem_ != ValueType::kU64 || i >= n_) return 0;
  uint64_t v;
  std::memcpy(&v, raw_.data() + i * 8, 8);
  return v;
}

std::string Value::summary(size_t max_chars) const {
  char buf[64];
  switch (type_) {
    case ValueType::kString: {
      static const char kHex[] = "0123456789abcdef";
      std::string s = "\"";
      for (char c : str_) {
        if (s.size() >= max_chars) { s += "..."; break; }
        auto u = static_cast<unsigned char>(c);
        if (c == '\n') s += "\\n";
        else if (c == '"') s += "\\\"";
        else if (u < 0x20 || u == 0x7f) { s += "\\x"; s += kHex[u >> 4]; s += kHex[u & 15]; }
        else s += c;
      }
      return s + "\"";
    }
    case ValueType::kArray:
      std::snprintf(buf, sizeof buf, "[%s x %llu]", value_type_name(elem_), static_cast<unsigned long long>(n_));
      return buf;
    case ValueType::kBool: return *as_bool() ? "true" : "false";
    case ValueType::kF32: case ValueType::kF64:
      std::snprintf(buf, sizeof buf, "%g", *as_f64());
      return buf;
    default: {
      Decoded d = decode(type_, &scalar_bits_);
      if (d.is_signed) std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(d.i));
      else std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(d.u));
      return buf;
    }
  }
}

}  // namespace strata::gguf
