// What every Device shares: byte-size parsing for --gpu-budget, buffers and
// the budgeted caching pool. The streams, copies and ops are per implementation.
#include "offload/device.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace strata {
namespace {

constexpr uint64_t kAlign = 256;  // allocation granule (and CUDA's malloc alignment)

uint64_t round_up(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<uint64_t> parse_byte_size(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  size_t n = 0;
  while (n < s.size() && (std::isdigit(static_cast<unsigned char>(s[n])) || s[n] == '.')) ++n;
  if (n == 0) return invalid_argument("expected a size such as 24GiB or 24000MB, got " + quoted);
  double value = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + n, value);
  if (ec != std::errc() || ptr != s.data() + n || !std::isfinite(value)) {
    return invalid_argument("expected a number before the unit, got " + quoted);
  }
  std::string_view unit = s.substr(n);
  if (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  const std::string u = lower(unit);
  double mult = 0;
  if (u.empty() || u == "b") mult = 1;
  else if (u == "k" || u == "kib") mult = 1024.0;
  else if (u == "m" || u == "mib") mult = 1024.0 * 1024;
  else if (u == "g" || u == "gib") mult = 1024.0 * 1024 * 1024;
  else if (u == "t" || u == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (u == "kb") mult = 1e3;
  else if (u == "mb") mult = 1e6;
  else if (u == "gb") mult = 1e9;
  else if (u == "tb") mult = 1e12;
  if (mult == 0) {
    return invalid_argument("unknown unit \"" + std::string(unit) + "\" in " + quoted +
                            " (expected B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)");
  }
  const double bytes = std::floor(value * mult);
  if (bytes >= 18446744073709551615.0) return invalid_argument("size " + quoted + " is too large");
  return static_cast<uint64_t>(bytes);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    owner_ = o.owner_;
    data_ = o.data_;
    bytes_ = o.bytes_;
    kind_ = o.kind_;
    o.owner_ = nullptr;
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (owner_ && data_) owner_->give_back(kind_, data_, bytes_);
  owner_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

Device::~Device() = default;

Result<DeviceBuffer> Device::alloc(MemKind kind, uint64_t bytes, std::string_view what) {
  const uint64_t size = round_up(bytes == 0 ? 1 : bytes);
  DeviceBuffer b;
  b.owner_ = this;
  b.bytes_ = size;
  b.kind_ = kind;
  if (kind == MemKind::kPinnedHost) {
    STRATA_ASSIGN_OR_RETURN(b.data_, raw_alloc(kind, size));
    std::lock_guard<std::mutex> lock(mu_);
    stats_.pinned_live_bytes += size;
    return b;
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (auto it = cache_.find(size); it != cache_.end()) {
    b.data_ = it->second;
    cache_.erase(it);
    stats_.device_cached_bytes -= size;
    stats_.device_live_bytes += size;
    return b;
  }
  if (budget_ && stats_.device_live_bytes + stats_.device_cached_bytes + size > budget_) {
    // Drop the cache before giving up: its bytes count against the budget.
    for (auto& [sz, p] : cache_) raw_free(MemKind::kDevice, p);
    cache_.clear();
    stats_.device_cached_bytes = 0;
  }
  if (budget_ && stats_.device_live_bytes + size > budget_) {
    const uint64_t free_b = budget_ - stats_.device_live_bytes;
    return out_of_memory(std::string(what) + " needs " + format_bytes(size) + " of device memory but " +
                         format_bytes(free_b) + " of the " + format_bytes(budget_) + " budget is free (" +
                         format_bytes(stats_.device_live_bytes) + " in use): over by " + format_bytes(size - free_b));
  }
  Result<void*> p = raw_alloc(kind, size);
  if (!p.is_ok()) return Status(p.status().code(), std::string(what) + ": " + p.status().message());
  b.data_ = *p;
  stats_.device_live_bytes += size;
  stats_.n_device_allocs += 1;
  stats_.device_peak_bytes = std::max(stats_.device_peak_bytes, stats_.device_live_bytes + stats_.device_cached_bytes);
  return b;
}

void Device::give_back(MemKind kind, void* p, uint64_t bytes) {
  if (kind == MemKind::kPinnedHost) {
    raw_free(kind, p);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.pinned_live_bytes -= bytes;
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.device_live_bytes -= bytes;
  stats_.device_cached_bytes += bytes;
  cache_.emplace(bytes, p);
}

DeviceMemoryStats Device::memory() const {
  std::lock_guard<std::mutex> lock(mu_);
  DeviceMemoryStats s = stats_;
  s.budget_bytes = budget_;
  return s;
}

void Device::trim() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [sz, p] : cache_) raw_free(MemKind::kDevice, p);
  cache_.clear();
  stats_.device_cached_bytes = 0;
}

void Device::release_pool() { trim(); }

#if !defined(STRATA_HAVE_CUDA)
Result<std::unique_ptr<Device>> make_cuda_device(int index, uint64_t budget_bytes) {
  return unsupported("no CUDA device: strata was built without CUDA (configure with -DSTRATA_CUDA=ON)");
}
#endif

}  // namespace strata
