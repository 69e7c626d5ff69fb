// GgufModel: memory-maps one GGUF file or all parts of a split model and
// joins them into one logical model.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <regex>

#include "runtime/gguf/gguf_reader.h"

namespace strata::gguf {

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return not_found(path + ": no such file");
    return io_error(path + ": cannot open: " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return io_error(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument(path + ": expected a regular file, got a directory or device");
  }
  std::unique_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return io_error(path + ": cannot mmap " + std::to_string(m->size_) + " bytes: " + std::strerror(err));
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::optional<SplitName> parse_split_name(const std::string& path) {
  static const std::regex re(R"(^(.*)-([0-9]{5})-of-([0-9]{5})\.gguf$)");
  std::smatch m;
  if (!std::regex_match(path, m, re)) return std::nullopt;
  SplitName s{m[1].str(), static_cast<uint32_t>(std::stoul(m[2].str())), static_cast<uint32_t>(std::stoul(m[3].str()))};
  if (s.no == 0 || s.count == 0 || s.no > s.count) return std::nullopt;
  return s;
}

std::string split_path(const std::string& prefix, uint32_t no, uint32_t count) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%05u-of-%05u.gguf", no, count);
  return prefix + buf;
}

namespace {

struct OpenedPart {
  std::shared_ptr<MappedFile> map;
  GgufFile file;
};

Result<OpenedPart> open_part(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  std::shared_ptr<MappedFile> shared(std::move(map));
  STRATA_ASSIGN_OR_RETURN(auto file, parse_gguf(shared->bytes(), path));
  return OpenedPart{std::move(shared), std::move(file)};
}

// split.no / split.count of a part, validated; {0, 1} for an unsplit file.
Result<std::pair<uint32_t, uint32_t>> split_position(const GgufFile& f) {
  const Value* count_v = f.find("split.count");
  if (!count_v) return std::pair<uint32_t, uint32_t>{0, 1};
  auto count = count_v->as_u64();
  const Value* no_v = f.find("split.no");
  auto no = no_v ? no_v->as_u64() : std::nullopt;
  if (!count || *count == 0 || *count > 99999) {
    return invalid_format(f.path + ": split.count: expected an integer 1..99999, got " + count_v->summary());
  }
  if (!no || *no >= *count) {
    return invalid_format(f.path + ": split.no: expected an integer 0.." + std::to_string(*count - 1) + ", got " +
                          (no_v ? no_v->summary() : std::string("nothing")));
  }
  return std::pair<uint32_t, uint32_t>{static_cast<uint32_t>(*no), static_cast<uint32_t>(*count)};
}

}  // namespace

Result<GgufModel> GgufModel::open(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(OpenedPart given, open_part(path));
  STRATA_ASSIGN_OR_RETURN(auto pos, split_position(given.file));
  auto [given_no, count] = pos;

  std::vector<OpenedPart> parts;
  if (count == 1) {
    parts.push_back(std::move(given));
  } else {
    auto name = parse_split_name(path);
    if (!name || name->count != count || name->no != given_no + 1) {
      return invalid_argument(path + ": file name: expected NAME-" + split_path("", given_no + 1, count).substr(1) +
                              " for split.no " + std::to_string(given_no) + " of split.count " +
                              std::to_string(count) + ", got a name that does not follow it" +
                              "; cannot locate the other parts");
    }
    for (uint32_t i = 0; i < count; ++i) {
      if (i == given_no) {
        parts.push_back(std::move(given));
        continue;
      }
      std::string p = split_path(name->prefix, i + 1, count);
      auto part = open_part(p);
      if (!part.is_ok()) {
        if (part.status().code() == StatusCode::kNotFound) {
          return not_found("missing part " + std::to_string(i + 1) + " of " + std::to_string(count) + " of split model " +
                           path + ": " + p);
        }
        return part.status();
      }
      STRATA_ASSIGN_OR_RETURN(auto ppos, split_position(part->file));
      if (ppos.first != i || ppos.second != count) {
        return invalid_format(p + ": split.no/split.count: expected " + std::to_string(i) + "/" + std::to_string(count) +
                              ", got " + std::to_string(ppos.first) + "/" + std::to_string(ppos.second));
      }
      parts.push_back(std::move(part).value());
    }
  }

  GgufModel model;
  for (uint32_t i = 0; i < parts.size(); ++i) {
    for (auto t : parts[i].file.tensors) {
      t.part = i;
      if (!model.tensor_index_.emplace(t.name, model.tensors_.size()).second) {
        return invalid_format(parts[i].file.path + ": tensor '" + printable(t.name) +
                              "': expected each tensor in exactly one part, got a duplicate");
      }
      model.tensors_.push_back(std::move(t));
    }
    model.maps_.push_back(std::move(parts[i].map));
    model.parts_.push_back(std::move(parts[i].file));
  }
  if (const Value* tc = model.find("split.tensors.count"); tc && count > 1) {
    auto n = tc->as_u64();
    if (!n || *n != model.tensors_.size()) {
      return invalid_format(path + ": split.tensors.count: expected " + std::to_string(model.tensors_.size()) +
                            " (tensors found in all parts), got " + tc->summary());
    }
  }
  return model;
}

const TensorInfo* GgufModel::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<std::string> GgufModel::get_string(const std::string& key) const {
  const Value* v = find(key);
  if (!v || !v->as_string()) return std::nullopt;
  return *v->as_string();
}
std::optional<uint64_t> GgufModel::get_u64(const std::string& key) const {
  const Value* v = find(key);
  return v ? v->as_u64() : std::nullopt;
}
std::optional<double> GgufModel::get_f64(const std::string& key) const {
  const Value* v = find(key);
  return v ? v->as_f64() : std::nullopt;
}
std::optional<bool> GgufModel::get_bool(const std::string& key) const {
  const Value* v = find(key);
  return v ? v->as_bool() : std::nullopt;
}

uint64_t GgufModel::total_tensor_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors_) n += t.n_bytes;
  return n;
}
void GgufModel::prefault(const std::function<void(uint64_t, uint64_t)>& progress) const {
  const uint64_t total = total_tensor_bytes();
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  constexpr uint64_t kReportEvery = 64ull << 20;
  uint64_t done = 0, next_report = kReportEvery;
  volatile uint8_t sink = 0;  // keeps the reads from being optimized away
  for (const auto& t : tensors_) {
    // Ask the kernel to read ahead, then touch one byte per page.
    const auto addr = reinterpret_cast<uintptr_t>(t.data);
    const uintptr_t start = addr / page * page;
    ::madvise(reinterpret_cast<void*>(start), t.n_bytes + (addr - start), MADV_WILLNEED);
    for (uint64_t off = 0; off < t.n_bytes; off += page) sink = sink + t.data[off];
    done += t.n_bytes;
    if (progress && done >= next_report) {
      progress(done, total);
      next_report = done + kReportEvery;
    }
  }
  if (progress) progress(done, total);
}

uint64_t GgufModel::total_file_bytes() const {
  uint64_t n = 0;
  for (const auto& p : parts_) n += p.file_bytes;
  return n;
}

}  // namespace strata::gguf
