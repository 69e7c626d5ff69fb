// Streaming GGUF v3 writer.
#include "runtime/gguf/gguf_writer.h"

#include <cerrno>
#include <cstring>

#include "runtime/gguf/gguf_reader.h"

namespace strata::gguf {

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment_ != kDefaultAlignment) set("general.alignment", Value::u32(alignment_));
}

GgufWriter::~GgufWriter() { abandon_(); }

void GgufWriter::abandon_() {
  if (out_) {
    std::fclose(out_);
    out_ = nullptr;
    std::remove(tmp_path_.c_str());
  }
}

void GgufWriter::set(const std::string& key, Value v) {
  // general.alignment decides where tensor data goes, so setting it must move
  // the layout too; otherwise the file declares one alignment and uses another.
  if (key == "general.alignment" && !out_ && v.type() == ValueType::kU32) {
    uint64_t al = v.as_u64().value_or(0);
    if (al != 0 && (al & (al - 1)) == 0) {
      alignment_ = static_cast<uint32_t>(al);
      data_total_ = 0;
      for (auto& t : tensors_) {
        t.offset = (data_total_ + alignment_ - 1) / alignment_ * alignment_;
        data_total_ = t.offset + t.n_bytes;
      }
    }
  }
  for (auto& [k, old] : kv_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

Status GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<uint64_t>& ne) {
  if (out_) return internal_error("GgufWriter: add_tensor after begin");
  if (name.empty() || name.size() >= 64) {
    return invalid_argument("tensor name '" + name + "': expected 1..63 bytes, got " + std::to_string(name.size()));
  }
  for (const auto& t : tensors_) {
    if (t.name == name) return invalid_argument("tensor name '" + name + "' declared twice");
  }
  if (ne.empty() || ne.size() > static_cast<size_t>(kMaxDims)) {
    return invalid_argument("tensor '" + name + "': expected 1..4 dims, got " + std::to_string(ne.size()));
  }
  uint64_t rows = 1;
  for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
  auto row = dtype_row_bytes(type, ne[0]);
  if (!row) {
    return invalid_argument("tensor '" + name + "': row of " + std::to_string(ne[0]) + " is not a multiple of " +
                            std::string(dtype_name(type)) + "'s block of " +
                            std::to_string(dtype_traits(type).block_elems));
  }
  uint64_t offset = (data_total_ + alignment_ - 1) / alignment_ * alignment_;
  tensors_.push_back({name, type, ne, *row * rows, offset});
  data_total_ = offset + *row * rows;
  return Status::ok();
}

Status GgufWriter::put_(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, out_) != n) {
    int err = errno;
    return io_error(tmp_path_ + ": write failed at offset " + std::to_string(file_pos_) + ": " + std::strerror(err));
  }
  file_pos_ += n;
  return Status::ok();
}

Status GgufWriter::put_string_(const std::string& s) {
  uint64_t n = s.size();
  STRATA_RETURN_IF_ERROR(put_(&n, 8));
  return put_(s.data(), s.size());
}

Status GgufWriter::put_value_(const Value& v) {
  switch (v.type()) {
    case ValueType::kString:
      return put_string_(*v.as_string());
    case ValueType::kArray: {
      uint32_t elem = static_cast<uint32_t>(v.array_type());
      uint64_t n = v.array_size();
      STRATA_RETURN_IF_ERROR(put_(&elem, 4));
      STRATA_RETURN_IF_ERROR(put_(&n, 8));
      if (v.array_type() == ValueType::kString) {
        for (const auto& s : v.strings()) STRATA_RETURN_IF_ERROR(put_string_(s));
      } else if (v.array_type() == ValueType::kArray) {
        for (const auto& item : v.items()) STRATA_RETURN_IF_ERROR(put_value_(item));
      } else {
        STRATA_RETURN_IF_ERROR(put_(v.packed().data(), v.packed().size()));
      }
      return Status::ok();
    }
    default: {
      // Scalars: write the little-endian bytes of the value's width.
      uint64_t bits = 0;
      if (auto b = v.as_bool()) bits = *b ? 1 : 0;
      else if (v.type() == ValueType::kF32) { float f = static_cast<float>(*v.as_f64()); std::memcpy(&bits, &f, 4); }
      else if (v.type() == ValueType::kF64) { double f = *v.as_f64(); std::memcpy(&bits, &f, 8); }
      else { int64_t i = v.as_i64().value_or(static_cast<int64_t>(v.as_u64().value_or(0))); std::memcpy(&bits, &i, 8); }
      return put_(&bits, value_type_size(v.type()));
    }
  }
}

Status GgufWriter::pad_to_alignment_() {
  static const char zeros[256] = {};
  uint64_t target = (file_pos_ + alignment_ - 1) / alignment_ * alignment_;
  while (file_pos_ < target) STRATA_RETURN_IF_ERROR(put_(zeros, std::min<uint64_t>(sizeof zeros, target - file_pos_)));
  return Status::ok();
}

Status GgufWriter::begin(const std::string& path) {
  if (out_) return internal_error("GgufWriter: begin called twice");
  path_ = path;
  tmp_path_ = path + ".tmp";
  out_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!out_) return io_error(tmp_path_ + ": cannot create: " + std::strerror(errno));
  std::setvbuf(out_, nullptr, _IOFBF, 1 << 22);
  uint32_t magic = kMagic, version = 3;
  uint64_t n_tensors = tensors_.size(), n_kv = kv_.size();
  STRATA_RETURN_IF_ERROR(put_(&magic, 4));
  STRATA_RETURN_IF_ERROR(put_(&version, 4));
  STRATA_RETURN_IF_ERROR(put_(&n_tensors, 8));
  STRATA_RETURN_IF_ERROR(put_(&n_kv, 8));
  for (const auto& [key, v] : kv_) {
    STRATA_RETURN_IF_ERROR(put_string_(key));
    uint32_t type = static_cast<uint32_t>(v.type());
    STRATA_RETURN_IF_ERROR(put_(&type, 4));
    STRATA_RETURN_IF_ERROR(put_value_(v));
  }
  for (const auto& t : tensors_) {
    STRATA_RETURN_IF_ERROR(put_string_(t.name));
    uint32_t n_dims = static_cast<uint32_t>(t.ne.size());
    STRATA_RETURN_IF_ERROR(put_(&n_dims, 4));
    for (uint64_t d : t.ne) STRATA_RETURN_IF_ERROR(put_(&d, 8));
    uint32_t type = static_cast<uint32_t>(t.type);
    STRATA_RETURN_IF_ERROR(put_(&type, 4));
    STRATA_RETURN_IF_ERROR(put_(&t.offset, 8));
  }
  return pad_to_alignment_();
}

Status GgufWriter::write_data(const void* data, size_t n_bytes) {
  if (!out_) return internal_error("GgufWriter: write_data before begin");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n_bytes > 0) {
    if (cur_tensor_ >= tensors_.size()) {
      return invalid_argument(path_ + ": " + std::to_string(n_bytes) + " bytes more than the declared tensors hold");
    }
    const Pending& t = tensors_[cur_tensor_];
    if (cur_written_ == 0) STRATA_RETURN_IF_ERROR(pad_to_alignment_());
    size_t take = static_cast<size_t>(std::min<uint64_t>(n_bytes, t.n_bytes - cur_written_));
    STRATA_RETURN_IF_ERROR(put_(p, take));
    p += take;
    n_bytes -= take;
    cur_written_ += take;
    data_written_ += take;
    if (cur_written_ == t.n_bytes) {
      ++cur_tensor_;
      cur_written_ = 0;
    }
  }
  return Status::ok();
}

Status GgufWriter::finish() {
  if (!out_) return internal_error("GgufWriter: finish before begin");
  if (cur_tensor_ != tensors_.size()) {
    const Pending& t = tensors_[cur_tensor_];
    Status s = invalid_argument(path_ + ": tensor '" + t.name + "' got " + std::to_string(cur_written_) + " of " +
                                std::to_string(t.n_bytes) + " bytes");
    abandon_();
    return s;
  }
  if (std::fflush(out_) != 0 || std::fclose(out_) != 0) {
    out_ = nullptr;
    Status s = io_error(tmp_path_ + ": flush failed: " + std::strerror(errno));
    std::remove(tmp_path_.c_str());
    return s;
  }
  out_ = nullptr;
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    Status s = io_error(path_ + ": cannot rename from " + tmp_path_ + ": " + std::strerror(errno));
    std::remove(tmp_path_.c_str());
    return s;
  }
  return Status::ok();
}

}  // namespace strata::gguf
