// Reading GGUF files (versions 2 and 3): a validating parser over bytes in
// memory, and GgufModel, which memory-maps one file or every part of a split
// model and joins them into one logical model. Every byte is untrusted.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"
#include "runtime/gguf/gguf_value.h"

namespace strata::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;
inline constexpr size_t kMaxNameBytes = 64 * 1024;  // tensor names and keys; real ones are < 256

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  int n_dims = 0;
  uint64_t ne[kMaxDims] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;                    // from the start of its file's data section
  uint64_t n_elems = 0;
  uint64_t n_bytes = 0;
  uint32_t part = 0;              // which file of a split model holds the data
  const uint8_t* data = nullptr;  // into the mapping; valid while the GgufModel lives

  uint64_t n_rows() const { return ne[0] == 0 ? 0 : n_elems / ne[0]; }
  std::string shape_string() const;  // "[7168, 2048, 256]"
};

// One parsed file. Tensor data pointers are filled in when `bytes` covers the
// data section (the parser validates offsets against the whole file size).
struct GgufFile {
  std::string path;
  uint32_t version = 0;
  uint32_t alignment = kDefaultAlignment;
  std::vector<std::pair<std::string, Value>> kv;  // in file order
  std::unordered_map<std::string, size_t> kv_index;
  std::vector<TensorInfo> tensors;
  uint64_t data_offset = 0;  // start of the data section in the file
  uint64_t file_bytes = 0;

  const Value* find(const std::string& key) const;
};

// Parse and validate a whole GGUF file held in memory. `name` is used in error
// messages, which quote names from the file through printable(). Never reads
// outside `bytes`; allocations are bounded by its size and, since a sparse
// file's size costs nothing, by a fixed budget (512 MiB) for parsed metadata.
Result<GgufFile> parse_gguf(std::span<const uint8_t> bytes, const std::string& name);

// A read-only memory mapping that unmaps on destruction.
class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A model as one logical GGUF: metadata from the first part, tensors from all.
class GgufModel {
 public:
  // Opens `path`; if its name is NAME-0000k-of-0000N.gguf, finds, validates
  // and joins all N parts (an error names any missing part).
  static Result<GgufModel> open(const std::string& path);

  const std::vector<GgufFile>& parts() const { return parts_; }
  const GgufFile& first() const { return parts_.front(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  const Value* find(const std::string& key) const { return first().find(key); }

  // Typed metadata helpers; nullopt when missing or of an incompatible type.
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<uint64_t> get_u64(const std::string& key) const;
  std::optional<double> get_f64(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;

  uint64_t total_tensor_bytes() const;
  uint64_t total_file_bytes() const;

  // Reads every page of tensor data once so the first forward pass does not
  // stall on page faults (minutes for a big model on disk). `progress` gets
  // (bytes done, bytes total) every few tens of MB and at the end. Only
  // worth calling when the weights fit in free memory.
  void prefault(const std::function<void(uint64_t, uint64_t)>& progress = {}) const;

 private:
  std::vector<std::shared_ptr<MappedFile>> maps_;
  std::vector<GgufFile> parts_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// "model-00002-of-00005.gguf" -> {"model", 2, 5}; nullopt for other names.
struct SplitName {
  std::string prefix;
  uint32_t no = 0;     // 1-based
  uint32_t count = 0;
};
std::optional<SplitName> parse_split_name(const std::string& path);
std::string split_path(const std::string& prefix, uint32_t no, uint32_t count);

}  // namespace strata::gguf
