// Writing GGUF v3 files as a stream: metadata and the tensor table first,
// then each tensor's bytes in declaration order, so a model of hundreds of GB
// is never held in memory. The file appears under its name only on finish().
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"
#include "runtime/gguf/gguf_value.h"

namespace strata::gguf {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, kept in insertion order; setting a key again replaces its value.
  void set(const std::string& key, Value v);
  // Declare a tensor; ne[0] is the row length and must be a multiple of the
  // type's block. Names must be unique and shorter than 64 bytes (the limit
  // other GGUF readers enforce).
  Status add_tensor(const std::string& name, DType type, const std::vector<uint64_t>& ne);

  // Writes header, metadata and tensor table to `path`.tmp.
  Status begin(const std::string& path);
  // Appends bytes of the tensors in declaration order; a chunk may span tensors.
  Status write_data(const void* data, size_t n_bytes);
  // Checks every tensor got all its bytes, then renames the file into place.
  Status finish();

  uint64_t tensor_bytes_total() const { return data_total_; }
  uint64_t tensor_bytes_written() const { return data_written_; }
  size_t n_tensors() const { return tensors_.size(); }

 private:
  struct Pending {
    std::string name;
    DType type;
    std::vector<uint64_t> ne;
    uint64_t n_bytes;
    uint64_t offset;
  };
  Status put_(const void* p, size_t n);
  Status put_string_(const std::string& s);
  Status put_value_(const Value& v);
  Status pad_to_alignment_();
  void abandon_();

  uint32_t alignment_;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<Pending> tensors_;
  uint64_t data_total_ = 0;    // including padding between tensors
  uint64_t data_written_ = 0;  // tensor bytes (without padding) written so far
  size_t cur_tensor_ = 0;
  uint64_t cur_written_ = 0;
  uint64_t file_pos_ = 0;
  std::FILE* out_ = nullptr;
  std::string path_, tmp_path_;
};

}  // namespace strata::gguf
