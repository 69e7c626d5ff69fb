// quant_tool: file-level access to the reference (de)quantizers, so Python
// tests can compare strata against the gguf package byte for byte.
//
//   quant_tool dequant TYPE IN.bin OUT.f32   raw blocks -> little-endian float32
//   quant_tool quant TYPE IN.f32 OUT.bin     float32 -> raw blocks
//   quant_tool sizes                         "id name block_elems block_bytes" per known type
//   quant_tool caps                          "id name can_dequant can_quant" per known type
// Exit status 0 on success, 1 on a failed conversion, 2 on bad usage.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cpu_kernels/quant_ref.h"
#include "runtime/base/dtype.h"

namespace {

using strata::DType;

bool read_file(const char* path, std::vector<uint8_t>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return !f.bad();
}

bool write_file(const char* path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  return static_cast<bool>(f);
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "quant_tool: %s\n", msg.c_str());
  return 1;
}

int usage() {
  std::fprintf(stderr,
               "usage: quant_tool dequant TYPE IN.bin OUT.f32\n"
               "       quant_tool quant TYPE IN.f32 OUT.bin\n"
               "       quant_tool sizes | caps\n");
  return 2;
}

int list_types(bool caps) {
  for (uint32_t id = 0; id < strata::kDTypeIdLimit; ++id) {
    const auto& tr = strata::dtype_traits_by_id(id);
    if (!tr.known) continue;
    const std::string name(tr.name);
    if (caps) {
      const auto t = static_cast<DType>(id);
      std::printf("%u %s %d %d\n", id, name.c_str(), strata::can_dequantize(t) ? 1 : 0,
                  strata::can_quantize(t) ? 1 : 0);
    } else {
      std::printf("%u %s %u %u\n", id, name.c_str(), tr.block_elems, tr.block_bytes);
    }
  }
  return 0;
}

int dequant(DType t, const char* in_path, const char* out_path) {
  std::vector<uint8_t> in;
  if (!read_file(in_path, &in)) return fail(std::string("cannot read ") + in_path);
  const auto& tr = strata::dtype_traits(t);
  if (in.size() % tr.block_bytes != 0) {
    return fail("expected a multiple of " + std::to_string(tr.block_bytes) + " bytes, got " +
                std::to_string(in.size()) + " in " + in_path);
  }
  const int64_t n_elems = static_cast<int64_t>(in.size() / tr.block_bytes) * tr.block_elems;
  std::vector<float> out(static_cast<size_t>(n_elems));
  const strata::Status s = strata::dequantize_row_ref(t, in.data(), out.data(), n_elems);
  if (!s.is_ok()) return fail(s.to_string());
  if (!write_file(out_path, out.data(), out.size() * sizeof(float))) {
    return fail(std::string("cannot write ") + out_path);
  }
  return 0;
}

int quant(DType t, const char* in_path, const char* out_path) {
  std::vector<uint8_t> in;
  if (!read_file(in_path, &in)) return fail(std::string("cannot read ") + in_path);
  if (in.size() % sizeof(float) != 0) return fail("expected whole float32 values in " + std::string(in_path));
  std::vector<float> x(in.size() / sizeof(float));
  if (!x.empty()) std::memcpy(x.data(), in.data(), in.size());
  const auto n_elems = static_cast<int64_t>(x.size());
  const auto n_bytes = strata::dtype_row_bytes(t, static_cast<uint64_t>(n_elems));
  if (!n_bytes) {
    return fail("expected a multiple of " + std::to_string(strata::dtype_traits(t).block_elems) + " values, got " +
                std::to_string(n_elems));
  }
  std::vector<uint8_t> out(*n_bytes);
  const strata::Status s = strata::quantize_row_ref(t, x.data(), out.data(), n_elems);
  if (!s.is_ok()) return fail(s.to_string());
  if (!write_file(out_path, out.data(), out.size())) return fail(std::string("cannot write ") + out_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  if (argc == 2 && (cmd == "sizes" || cmd == "caps")) return list_types(cmd == "caps");
  if (argc != 5 || (cmd != "dequant" && cmd != "quant")) return usage();
  const auto t = strata::dtype_from_name(argv[2]);
  if (!t) return fail(std::string("unknown type ") + argv[2]);
  return cmd == "dequant" ? dequant(*t, argv[3], argv[4]) : quant(*t, argv[3], argv[4]);
}
