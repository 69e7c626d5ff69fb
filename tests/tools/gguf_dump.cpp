// gguf_dump: reads one tensor of a GGUF file through strata's reader and
// reference dequantizer, so Python tests can compare with files written by
// the gguf package.
//
//   gguf_dump FILE TENSOR OUT.f32    tensor values as little-endian float32
// Exit status 0 on success, 1 on an error (printed on one line), 2 on bad usage.
#include <cstdio>
#include <vector>

#include "cpu_kernels/quant_ref.h"
#include "runtime/gguf/gguf_reader.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: gguf_dump FILE TENSOR OUT.f32\n");
    return 2;
  }
  auto model = strata::gguf::GgufModel::open(argv[1]);
  if (!model.is_ok()) {
    std::fprintf(stderr, "gguf_dump: %s\n", model.status().to_string().c_str());
    return 1;
  }
  const strata::gguf::TensorInfo* t = model->find_tensor(argv[2]);
  if (!t) {
    std::fprintf(stderr, "gguf_dump: no tensor '%s' in %s\n", argv[2], argv[1]);
    return 1;
  }
  std::vector<float> out(t->n_elems);
  const uint64_t row_bytes = t->n_bytes / t->n_rows();
  for (uint64_t r = 0; r < t->n_rows(); ++r) {
    strata::Status s = strata::dequantize_row_ref(t->dtype, t->data + r * row_bytes, out.data() + r * t->ne[0],
                                                  static_cast<int64_t>(t->ne[0]));
    if (!s.is_ok()) {
      std::fprintf(stderr, "gguf_dump: %s: %s\n", t->name.c_str(), s.to_string().c_str());
      return 1;
    }
  }
  std::FILE* f = std::fopen(argv[3], "wb");
  if (!f || std::fwrite(out.data(), sizeof(float), out.size(), f) != out.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "gguf_dump: cannot write %s\n", argv[3]);
    return 1;
  }
  return 0;
}
