// The validating GGUF parser. Every length, count, type id, dimension and
// offset read from the file is checked against the bytes that are actually
// there before it is used, so a hostile file can neither make us read out of
// bounds nor allocate more than a small multiple of its own size.
#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <unordered_set>

#include "runtime/gguf/gguf_reader.h"

namespace strata::gguf {
namespace {

// Generous caps on things real files keep small; past them a file is hostile
// or broken, and saying so beats allocating gigabytes.
constexpr uint64_t kMaxArrayElems = 64ull << 20;  // largest real vocabularies are ~0.3M
constexpr int kMaxArrayDepth = 8;
// Memory the parsed metadata and tensor table may take. Counts and lengths are
// bounded by the bytes left in the file, but a sparse file can be terabytes
// long while holding nothing on disk (its holes read as zeros, and zeros parse
// as empty strings and arrays), so the file size alone does not protect the
// heap. Real models need well under 100 MB (a 262k-token vocabulary with its
// merges is ~40 MB).
constexpr uint64_t kMaxParsedBytes = 512ull << 20;
// Smallest encodings, used to bound counts by the bytes left in the file.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;          // key len, 1-char key, type, u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // name len, name, n_dims, ne0, type, offset

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  // Messages quote paths and names of any length; never cut off the
  // "expected ..., got ..." that follows them.
  char buf[512];
  va_list ap, ap2;
  va_start(ap, f);
  va_copy(ap2, ap);
  int n = std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  std::string s;
  if (n < static_cast<int>(sizeof buf)) {
    s.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
  } else {
    s.resize(static_cast<size_t>(n));
    std::vsnprintf(s.data(), s.size() + 1, f, ap2);
  }
  va_end(ap2);
  return s;
}

class Cursor {
 public:
  Cursor(std::span<const uint8_t> b, const std::string& name) : b_(b), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return b_.size() - pos_; }
  uint64_t size() const { return b_.size(); }

  Status error(const std::string& field, const std::string& expected, const std::string& got, uint64_t at) const {
    return invalid_format(fmt("%s: %s: expected %s, got %s at offset %" PRIu64, name_.c_str(), field.c_str(),
                              expected.c_str(), got.c_str(), at));
  }

  Status need(uint64_t n, const std::string& field) const {
    if (n > remaining()) {
      return invalid_format(fmt("%s: %s: expected %" PRIu64 " bytes at offset %" PRIu64 ", got %" PRIu64
                                " (file truncated: it ends at %" PRIu64 ")",
                                name_.c_str(), field.c_str(), n, pos_, remaining(), static_cast<uint64_t>(b_.size())));
    }
    return Status::ok();
  }

  template <typename T>
  Status read(T* out, const std::string& field) {
    STRATA_RETURN_IF_ERROR(need(sizeof(T), field));
    std::memcpy(out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::ok();
  }

  // Accounts for `n` parsed items of `item_bytes` each in the memory budget
  // (kMaxParsedBytes) before they are allocated; `at` is where the count was read.
  Status charge(uint64_t n, uint64_t item_bytes, const std::string& field, uint64_t at) {
    uint64_t most = budget_ / item_bytes;
    if (n > most) {
      return error(field,
                   fmt("<= %" PRIu64 " (what is left of the %" PRIu64 " MiB allowed for parsed metadata)", most,
                       kMaxParsedBytes >> 20),
                   fmt("%" PRIu64, n), at);
    }
    budget_ -= n * item_bytes;
    return Status::ok();
  }

  Status read_bytes(std::string* out, uint64_t n, const std::string& field) {
    STRATA_RETURN_IF_ERROR(need(n, field));
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return Status::ok();
  }

  // u64 length + bytes. `max_len` bounds names and keys; values are bounded
  // only by the bytes present. With `index`, the string is element `index` of
  // array `field`. The field's name is built only for an error: the success
  // path runs once per vocabulary entry (~10^5 per file) and formatting names
  // there used to take most of the time of opening a model.
  static constexpr uint64_t kNoIndex = UINT64_MAX;
  Status read_string(std::string* out, const std::string& field, uint64_t max_len = UINT64_MAX,
                     uint64_t index = kNoIndex) {
    auto name = [&] {
      return (index == kNoIndex ? field : fmt("%s[%" PRIu64 "]", field.c_str(), index)) + " length";
    };
    uint64_t at = pos_;
    if (remaining() < 8) return need(8, name());
    uint64_t len = 0;
    std::memcpy(&len, b_.data() + pos_, 8);
    pos_ += 8;
    if (len > max_len) return error(name(), fmt("<= %" PRIu64, max_len), fmt("%" PRIu64, len), at);
    if (len > remaining()) {
      return error(name(), fmt("<= %" PRIu64 " (bytes left in file)", remaining()), fmt("%" PRIu64, len), at);
    }
    if (len > budget_) return charge(len, 1, name(), at);
    budget_ -= len;
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return Status::ok();
  }

 private:
  std::span<const uint8_t> b_;
  const std::string& name_;
  uint64_t pos_ = 0;
  uint64_t budget_ = kMaxParsedBytes;
};

Status read_value(Cursor& c, ValueType type, Value* out, const std::string& field, int depth);

Status read_array(Cursor& c, Value* out, const std::string& field, int depth) {
  uint64_t at = c.pos();
  uint32_t elem_raw = 0;
  STRATA_RETURN_IF_ERROR(c.read(&elem_raw, field + " array type"));
  if (elem_raw >= kValueTypeLimit) {
    return c.error(field + " array type", fmt("a value type id < %u", kValueTypeLimit), fmt("%u", elem_raw), at);
  }
  auto elem = static_cast<ValueType>(elem_raw);
  if (elem == ValueType::kArray && depth >= kMaxArrayDepth) {
    return c.error(field, fmt("arrays nested at most %d deep", kMaxArrayDepth), "deeper nesting", at);
  }
  at = c.pos();
  uint64_t n = 0;
  STRATA_RETURN_IF_ERROR(c.read(&n, field + " array length"));
  if (n > kMaxArrayElems) {
    return c.error(field + " array length", fmt("<= %" PRIu64 " elements", kMaxArrayElems), fmt("%" PRIu64, n), at);
  }
  // Each element takes at least this many bytes, so n is bounded by the file.
  uint64_t min_elem = elem == ValueType::kString ? 8 : elem == ValueType::kArray ? 12 : value_type_size(elem);
  if (n > c.remaining() / min_elem) {
    return c.error(field + " array length",
                   fmt("<= %" PRIu64 " (%" PRIu64 " bytes left, %" PRIu64 " per element)", c.remaining() / min_elem,
                       c.remaining(), min_elem),
                   fmt("%" PRIu64, n), at);
  }
  uint64_t item_bytes = elem == ValueType::kString  ? sizeof(std::string)
                        : elem == ValueType::kArray ? sizeof(Value)
                                                    : min_elem;
  STRATA_RETURN_IF_ERROR(c.charge(n, item_bytes, field + " array length", at));
  if (elem == ValueType::kString) {
    std::vector<std::string> items;
    items.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      std::string s;
      STRATA_RETURN_IF_ERROR(c.read_string(&s, field, UINT64_MAX, i));
      items.push_back(std::move(s));
    }
    *out = Value::string_array(std::move(items));
  } else if (elem == ValueType::kArray) {
    std::vector<Value> items;
    items.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      Value v;
      STRATA_RETURN_IF_ERROR(read_value(c, ValueType::kArray, &v, fmt("%s[%" PRIu64 "]", field.c_str(), i), depth + 1));
      items.push_back(std::move(v));
    }
    *out = Value::nested_array(elem, std::move(items));
  } else {
    std::string packed;
    STRATA_RETURN_IF_ERROR(c.read_bytes(&packed, n * min_elem, field));
    *out = Value::numeric_array_raw(elem, std::move(packed), n);
  }
  return Status::ok();
}

Status read_value(Cursor& c, ValueType type, Value* out, const std::string& field, int depth) {
  switch (type) {
    case ValueType::kString: {
      std::string s;
      STRATA_RETURN_IF_ERROR(c.read_string(&s, field));
      *out = Value::string(std::move(s));
      return Status::ok();
    }
    case ValueType::kArray:
      return read_array(c, out, field, depth);
    default: {
      size_t n = value_type_size(type);
      std::string raw;
      STRATA_RETURN_IF_ERROR(c.read_bytes(&raw, n, field));
      uint64_t bits = 0;
      std::memcpy(&bits, raw.data(), n);
      // Re-use the typed constructors so the scalar is stored canonically.
      switch (type) {
        case ValueType::kU8: *out = Value::u8(static_cast<uint8_t>(bits)); break;
        case ValueType::kI8: *out = Value::i8(static_cast<int8_t>(bits)); break;
        case ValueType::kU16: *out = Value::u16(static_cast<uint16_t>(bits)); break;
        case ValueType::kI16: *out = Value::i16(static_cast<int16_t>(bits)); break;
        case ValueType::kU32: *out = Value::u32(static_cast<uint32_t>(bits)); break;
        case ValueType::kI32: *out = Value::i32(static_cast<int32_t>(bits)); break;
        case ValueType::kU64: *out = Value::u64(bits); break;
        case ValueType::kI64: *out = Value::i64(static_cast<int64_t>(bits)); break;
        case ValueType::kBool: *out = Value::boolean((bits & 0xff) != 0); break;
        case ValueType::kF32: { float f; std::memcpy(&f, &bits, 4); *out = Value::f32(f); break; }
        case ValueType::kF64: { double f; std::memcpy(&f, &bits, 8); *out = Value::f64(f); break; }
        default: break;
      }
      return Status::ok();
    }
  }
}

Status read_tensor_info(Cursor& c, uint64_t index, TensorInfo* t) {
  std::string field = fmt("tensor[%" PRIu64 "]", index);
  STRATA_RETURN_IF_ERROR(c.read_string(&t->name, field + ".name", kMaxNameBytes));
  if (t->name.empty()) return c.error(field + ".name", "a non-empty name", "an empty string", c.pos());
  field = fmt("tensor[%" PRIu64 "] '%s'", index, printable(t->name).c_str());

  uint64_t at = c.pos();
  uint32_t n_dims = 0;
  STRATA_RETURN_IF_ERROR(c.read(&n_dims, field + " n_dims"));
  if (n_dims < 1 || n_dims > kMaxDims) {
    return c.error(field + " n_dims", fmt("1..%d", kMaxDims), fmt("%u", n_dims), at);
  }
  t->n_dims = static_cast<int>(n_dims);
  uint64_t n_elems = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    at = c.pos();
    uint64_t ne = 0;
    STRATA_RETURN_IF_ERROR(c.read(&ne, fmt("%s ne[%u]", field.c_str(), d)));
    if (ne == 0 || ne > static_cast<uint64_t>(INT64_MAX)) {
      return c.error(fmt("%s ne[%u]", field.c_str(), d), "1..2^63-1", fmt("%" PRIu64, ne), at);
    }
    if (__builtin_mul_overflow(n_elems, ne, &n_elems) || n_elems > static_cast<uint64_t>(INT64_MAX)) {
      return c.error(fmt("%s shape", field.c_str()), "an element count below 2^63", "a product that overflows", at);
    }
    t->ne[d] = ne;
  }
  t->n_elems = n_elems;

  at = c.pos();
  uint32_t type_id = 0;
  STRATA_RETURN_IF_ERROR(c.read(&type_id, field + " type"));
  if (!dtype_id_is_known(type_id)) {
    return c.error(field + " type", "a known ggml type id", fmt("%u", type_id), at);
  }
  t->dtype = static_cast<DType>(type_id);
  const auto& tr = dtype_traits(t->dtype);
  if (t->ne[0] % tr.block_elems != 0) {
    return c.error(field + " ne[0]", fmt("a multiple of %s's block of %u", std::string(tr.name).c_str(), tr.block_elems),
                   fmt("%" PRIu64, t->ne[0]), at);
  }
  auto row_bytes = dtype_row_bytes(t->dtype, t->ne[0]);
  uint64_t n_bytes = 0;
  if (!row_bytes || __builtin_mul_overflow(*row_bytes, t->n_rows(), &n_bytes)) {
    return c.error(field + " size", "a byte size below 2^64", "an overflowing size", at);
  }
  t->n_bytes = n_bytes;

  STRATA_RETURN_IF_ERROR(c.read(&t->offset, field + " offset"));
  return Status::ok();
}

}  // namespace

const Value* GgufFile::find(const std::string& key) const {
  auto it = kv_index.find(key);
  return it == kv_index.end() ? nullptr : &kv[it->second].second;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (int d = 0; d < n_dims; ++d) {
    if (d) s += ", ";
    s += std::to_string(ne[d]);
  }
  return s + "]";
}

Result<GgufFile> parse_gguf(std::span<const uint8_t> bytes, const std::string& name) {
  Cursor c(bytes, name);
  GgufFile f;
  f.path = name;
  f.file_bytes = bytes.size();

  uint32_t magic = 0;
  STRATA_RETURN_IF_ERROR(c.read(&magic, "magic"));
  if (magic != kMagic) {
    char got[16];
    std::snprintf(got, sizeof got, "0x%08x", magic);
    return c.error("magic", "'GGUF' (0x46554747)", got, 0);
  }
  STRATA_RETURN_IF_ERROR(c.read(&f.version, "version"));
  if (f.version != 2 && f.version != 3) {
    if (f.version != 0 && (f.version & 0xffff) == 0) {
      return unsupported(fmt("%s: version: expected 2 or 3 (little-endian), got 0x%08x at offset 4: a big-endian "
                             "GGUF, which is not supported",
                             name.c_str(), f.version));
    }
    if (f.version == 1) {
      return unsupported(fmt("%s: version: expected 2 or 3, got 1 at offset 4: GGUF v1 is not supported",
                             name.c_str()));
    }
    return c.error("version", "2 or 3", fmt("%u", f.version), 4);
  }

  uint64_t n_tensors = 0, n_kv = 0;
  uint64_t at = c.pos();
  STRATA_RETURN_IF_ERROR(c.read(&n_tensors, "n_tensors"));
  STRATA_RETURN_IF_ERROR(c.read(&n_kv, "n_kv"));
  if (n_tensors > c.remaining() / kMinTensorInfoBytes) {
    return c.error("n_tensors", fmt("<= %" PRIu64 " (what %" PRIu64 " bytes can hold)", c.remaining() / kMinTensorInfoBytes,
                                    c.remaining()),
                   fmt("%" PRIu64, n_tensors), at);
  }
  if (n_kv > c.remaining() / kMinKvBytes) {
    return c.error("n_kv", fmt("<= %" PRIu64 " (what %" PRIu64 " bytes can hold)", c.remaining() / kMinKvBytes, c.remaining()),
                   fmt("%" PRIu64, n_kv), at + 8);
  }
  // Per entry: the table slot plus an index node (key copy and hash bucket).
  STRATA_RETURN_IF_ERROR(c.charge(n_tensors, sizeof(TensorInfo) + sizeof(std::string) + 32, "n_tensors", at));
  STRATA_RETURN_IF_ERROR(
      c.charge(n_kv, sizeof(std::pair<std::string, Value>) + sizeof(std::string) + 32, "n_kv", at + 8));

  f.kv.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    STRATA_RETURN_IF_ERROR(c.read_string(&key, fmt("kv[%" PRIu64 "].key", i), kMaxNameBytes));
    if (key.empty()) return c.error(fmt("kv[%" PRIu64 "].key", i), "a non-empty key", "an empty string", c.pos());
    std::string field = fmt("kv[%" PRIu64 "] '%s'", i, printable(key).c_str());
    at = c.pos();
    uint32_t type_raw = 0;
    STRATA_RETURN_IF_ERROR(c.read(&type_raw, field + " type"));
    if (type_raw >= kValueTypeLimit) {
      return c.error(field + " type", fmt("a value type id < %u", kValueTypeLimit), fmt("%u", type_raw), at);
    }
    Value v;
    STRATA_RETURN_IF_ERROR(read_value(c, static_cast<ValueType>(type_raw), &v, field, 0));
    if (f.kv_index.count(key)) return c.error(field, "unique keys", "a duplicate key", at);
    f.kv_index.emplace(key, f.kv.size());
    f.kv.emplace_back(std::move(key), std::move(v));
  }

  if (const Value* a = f.find("general.alignment")) {
    auto al = a->as_u64();
    if (a->type() != ValueType::kU32 || !al || *al == 0 || (*al & (*al - 1)) != 0) {
      return invalid_format(fmt("%s: general.alignment: expected a power-of-two u32, got %s %s", name.c_str(),
                                value_type_name(a->type()), a->summary().c_str()));
    }
    f.alignment = static_cast<uint32_t>(*al);
  }

  f.tensors.resize(n_tensors);
  std::unordered_set<std::string> names;
  names.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    at = c.pos();
    STRATA_RETURN_IF_ERROR(read_tensor_info(c, i, &f.tensors[i]));
    if (!names.insert(f.tensors[i].name).second) {
      return c.error(fmt("tensor[%" PRIu64 "] '%s'", i, printable(f.tensors[i].name).c_str()), "unique tensor names",
                     "a duplicate name", at);
    }
  }

  // The data section starts at the next multiple of the alignment.
  uint64_t data_offset = (c.pos() + f.alignment - 1) / f.alignment * f.alignment;
  f.data_offset = data_offset;
  if (n_tensors > 0 && data_offset > bytes.size()) {
    return c.error("data section", fmt("a start at or before the end of the file (%zu)", bytes.size()),
                   fmt("%" PRIu64, data_offset), c.pos());
  }
  uint64_t data_bytes = n_tensors > 0 ? bytes.size() - data_offset : 0;

  for (auto& t : f.tensors) {
    std::string field = "tensor '" + printable(t.name) + "' offset";
    if (t.offset % f.alignment != 0) {
      return invalid_format(fmt("%s: %s: expected a multiple of the alignment %u, got %" PRIu64, name.c_str(),
                                field.c_str(), f.alignment, t.offset));
    }
    if (t.offset > data_bytes || t.n_bytes > data_bytes - t.offset) {
      // offset <= 2^64 - 1 and n_bytes < 2^64, so print the end as a sum that cannot wrap.
      return invalid_format(fmt("%s: %s: expected %" PRIu64 " bytes of data to end within the data section of %" PRIu64
                                " bytes, got offset %" PRIu64 " + %" PRIu64
                                " past its end (file truncated or offset corrupt)",
                                name.c_str(), field.c_str(), t.n_bytes, data_bytes, t.offset, t.n_bytes));
    }
    t.data = bytes.data() + data_offset + t.offset;
  }

  // No two tensors may share bytes: sort by offset and compare neighbours.
  std::vector<size_t> order(n_tensors);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return f.tensors[a].offset < f.tensors[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const auto& prev = f.tensors[order[k - 1]];
    const auto& cur = f.tensors[order[k]];
    if (prev.n_bytes > 0 && prev.offset + prev.n_bytes > cur.offset) {
      return invalid_format(fmt("%s: tensor '%s' offset: expected >= %" PRIu64 " (end of '%s'), got %" PRIu64
                                ": tensor data overlaps",
                                name.c_str(), printable(cur.name).c_str(), prev.offset + prev.n_bytes,
                                printable(prev.name).c_str(), cur.offset));
    }
  }
  return f;
}

}  // namespace strata::gguf
