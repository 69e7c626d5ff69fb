// libFuzzer target for the GGUF parser: parse_gguf over arbitrary bytes must
// return ok or an error without reading outside the input, and when it says
// ok, everything it hands out (metadata, tensor infos, data pointers) must be
// consistent and inside the input. Built by tests/fuzz/run_fuzz.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "runtime/gguf/gguf_reader.h"

namespace {

using strata::gguf::GgufFile;
using strata::gguf::Value;
using strata::gguf::ValueType;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_gguf: invariant broken: %s\n", what);
  std::abort();
}
#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) fail(#cond); \
  } while (0)

// Touch every accessor of a value, so a stored length that disagrees with
// the stored bytes shows up as an out-of-bounds read under ASan.
uint64_t walk(const Value& v, int depth) {
  FUZZ_CHECK(depth <= 16);
  uint64_t h = v.summary().size();
  h += v.as_u64().value_or(0) + static_cast<uint64_t>(v.as_i64().value_or(0));
  h += static_cast<uint64_t>(v.as_f64().value_or(0.0) != 0.0) + v.as_bool().value_or(false);
  if (const std::string* s = v.as_string()) h += strata::gguf::printable(*s).size();
  if (!v.is_array()) return h;
  ValueType e = v.array_type();
  if (e == ValueType::kString) {
    FUZZ_CHECK(v.strings().size() == v.array_size());
    for (const auto& s : v.strings()) h += s.size();
  } else if (e == ValueType::kArray) {
    FUZZ_CHECK(v.items().size() == v.array_size());
    for (const auto& item : v.items()) h += walk(item, depth + 1);
  } else {
    FUZZ_CHECK(v.packed().size() == v.array_size() * strata::gguf::value_type_size(e));
    for (uint64_t i = 0; i < v.array_size(); ++i) {
      h += static_cast<uint64_t>(v.int_at(i));
      h += v.number_at(i) != 0.0;
    }
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto r = strata::gguf::parse_gguf(bytes, "fuzz.gguf");
  if (!r.is_ok()) {
    const std::string& msg = r.status().message();
    FUZZ_CHECK(r.status().code() != strata::StatusCode::kOk);
    FUZZ_CHECK(msg.rfind("fuzz.gguf: ", 0) == 0);                // names the file
    FUZZ_CHECK(msg.find('\n') == std::string::npos);             // one line
    for (char c : msg) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20);  // no raw control characters
    return 0;
  }
  const GgufFile& f = *r;
  FUZZ_CHECK(f.version == 2 || f.version == 3);
  FUZZ_CHECK(f.alignment != 0 && (f.alignment & (f.alignment - 1)) == 0);
  FUZZ_CHECK(f.kv.size() == f.kv_index.size());
  volatile uint64_t sink = 0;
  for (const auto& [key, v] : f.kv) {
    FUZZ_CHECK(!key.empty());
    FUZZ_CHECK(f.find(key) == &v);
    sink = sink + walk(v, 0);
  }
  if (!f.tensors.empty()) {
    FUZZ_CHECK(f.data_offset % f.alignment == 0);
    FUZZ_CHECK(f.data_offset <= size);
  }
  for (const auto& t : f.tensors) {
    FUZZ_CHECK(!t.name.empty());
    FUZZ_CHECK(t.n_dims >= 1 && t.n_dims <= strata::gguf::kMaxDims);
    uint64_t n = 1;
    for (int d = 0; d < strata::gguf::kMaxDims; ++d) {
      FUZZ_CHECK(t.ne[d] >= 1);
      FUZZ_CHECK(!__builtin_mul_overflow(n, t.ne[d], &n));
    }
    FUZZ_CHECK(n == t.n_elems);
    FUZZ_CHECK(t.offset % f.alignment == 0);
    auto row = strata::dtype_row_bytes(t.dtype, t.ne[0]);
    FUZZ_CHECK(row.has_value() && *row * t.n_rows() == t.n_bytes);
    FUZZ_CHECK(t.n_bytes >= 1);
    FUZZ_CHECK(t.data >= data && t.data + t.n_bytes <= data + size);
    FUZZ_CHECK(t.data == data + f.data_offset + t.offset);
    sink = sink + t.data[0] + t.data[t.n_bytes - 1] + t.shape_string().size();
  }
  return 0;
}
