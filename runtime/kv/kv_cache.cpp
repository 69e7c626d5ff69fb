// KV cache block pool: blocks are allocated on first use, handed to sequences
// through their block tables, and returned to a free list when a sequence is
// cleared or shortened.
#include "runtime/kv/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "cpu_kernels/vec_f32.h"
#include "runtime/base/check.h"
#include "runtime/base/system_memory.h"

namespace strata {

namespace {
// Address space reserved per slab of blocks (at least one block).
constexpr size_t kSlabBytes = size_t(64) << 20;
// Blocks in a slab start this far past the end of the one before. Block
// sizes are mostly multiples of a large power of two, and a head's part of
// consecutive blocks then fell on the same cache sets: one thread, 32 query
// heads over 4 kv heads of 128, 8 layers, f16, 4,096 positions, per token and
// layer, 1,022-1,055 us without the gap, 823-847 with it (2 KiB: 850-945;
// 5 KiB: 921-1,062; 8 KiB: 847-890).
constexpr size_t kBlockGap = 4096;
}  // namespace

const char* kv_type_name(KvType t) { return t == KvType::kF16 ? "f16" : "f32"; }

Result<KvType> parse_kv_type(const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  return invalid_argument("KV cache type: expected f16 or f32, got '" + name + "'");
}

KvCache::KvCache(uint32_t n_layer, uint32_t k_width, uint32_t v_width, uint32_t n_seq, uint32_t n_ctx, uint32_t block,
                 uint32_t max_blocks, KvType type, uint32_t heads)
    : n_layer_(n_layer), k_width_(k_width), v_width_(v_width), n_seq_(n_seq), n_ctx_(n_ctx),
      block_(std::max<uint32_t>(1, block)), heads_(std::max<uint32_t>(1, heads)), type_(type), len_(n_seq, 0),
      table_(n_seq) {
  STRATA_CHECK(k_width_ % heads_ == 0 && v_width_ % heads_ == 0);  // rows split in equal parts
  const uint64_t per_seq = (uint64_t(n_ctx) + block_ - 1) / block_;
  const uint64_t full = per_seq * n_seq;
  max_blocks_ = uint32_t(std::min<uint64_t>(max_blocks > 0 ? max_blocks : full, INT32_MAX));
}

void KvCache::clear(uint32_t seq) {
  STRATA_CHECK(seq < n_seq_);
  len_[seq] = 0;
  release_past(seq, 0);
}

void KvCache::clear_all() {
  for (uint32_t s = 0; s < n_seq_; ++s) clear(s);
}

uint32_t KvCache::blocks_needed(uint32_t seq, int32_t n_pos) const {
  const size_t want = (size_t(std::max(n_pos, 0)) + block_ - 1) / block_;
  return want > table_[seq].size() ? uint32_t(want - table_[seq].size()) : 0;
}

void KvCache::Unmap::operator()(std::byte* p) const { unmap_pages(p, bytes); }

int32_t KvCache::take_block() {
  ++n_used_;
  if (!free_.empty()) {
    const int32_t b = free_.back();
    free_.pop_back();
    return b;
  }
  // Zeroed, so a row read before it is written (never, by the forward's
  // contract) is at least finite. A slab is address space: its pages are
  // backed as blocks in it are first written.
  const size_t pitch = size_t(block_bytes()) + kBlockGap;
  if (slab_left_ == 0) {
    const size_t n = std::max<size_t>(1, std::min<size_t>(kSlabBytes / pitch, max_blocks_ - blocks_.size()));
    auto* p = static_cast<std::byte*>(map_pages(n * pitch));
    if (p == nullptr) throw std::bad_alloc();
    slabs_.emplace_back(p, Unmap{n * pitch});
    slab_left_ = n;
  }
  const Unmap& last = slabs_.back().get_deleter();
  blocks_.push_back(slabs_.back().get() + last.bytes - slab_left_ * pitch);
  --slab_left_;
  return int32_t(blocks_.size() - 1);
}

void KvCache::put_row(uint32_t layer, uint32_t seq, int32_t pos, bool value, const float* src) {
  const int64_t stride = value ? v_stride() : k_stride();
  for (uint32_t h = 0; h < heads_; ++h) {
    std::byte* dst = row(layer, seq, pos, value, h * stride);
    if (type_ == KvType::kF32) {
      std::memcpy(dst, src + h * stride, size_t(stride) * sizeof(float));
    } else {
      vec_f32_ops().to_f16(src + h * stride, reinterpret_cast<uint16_t*>(dst), stride);
    }
  }
}

void KvCache::put_k(uint32_t layer, uint32_t seq, int32_t pos, const float* src) {
  put_row(layer, seq, pos, false, src);
}
void KvCache::put_v(uint32_t layer, uint32_t seq, int32_t pos, const float* src) {
  put_row(layer, seq, pos, true, src);
}

void KvCache::get_rows(uint32_t layer, uint32_t seq, bool value, int64_t n, float* dst) const {
  const int64_t width = value ? v_width_ : k_width_, stride = width / heads_;
  for (int64_t t0 = 0; t0 < n; t0 += block_) {
    const int64_t m = std::min<int64_t>(block_, n - t0);
    for (uint32_t h = 0; h < heads_; ++h) {
      const std::byte* src = row(layer, seq, int32_t(t0), value, h * stride);
      for (int64_t t = 0; t < m; ++t) {
        float* out = dst + (t0 + t) * width + h * stride;
        if (type_ == KvType::kF32) {
          std::memcpy(out, reinterpret_cast<const float*>(src) + t * stride, size_t(stride) * sizeof(float));
        } else {
          vec_f32_ops().from_f16(reinterpret_cast<const uint16_t*>(src) + t * stride, out, stride);
        }
      }
    }
  }
}

void KvCache::get_k(uint32_t layer, uint32_t seq, int64_t n, float* dst) const { get_rows(layer, seq, false, n, dst); }
void KvCache::get_v(uint32_t layer, uint32_t seq, int64_t n, float* dst) const { get_rows(layer, seq, true, n, dst); }

Status KvCache::try_reserve(uint32_t seq, int32_t n_pos) {
  if (seq >= n_seq_) {
    return invalid_argument("KV cache: expected a sequence below " + std::to_string(n_seq_) + ", got " +
                            std::to_string(seq));
  }
  if (n_pos < 0 || uint32_t(n_pos) > n_ctx_) {
    return invalid_argument("KV cache: expected at most " + std::to_string(n_ctx_) + " positions, got " +
                            std::to_string(n_pos));
  }
  const uint32_t need = blocks_needed(seq, n_pos);
  if (need > n_blocks_free()) {
    return out_of_memory("KV cache: " + std::to_string(need) + " more blocks needed, " +
                         std::to_string(n_blocks_free()) + " of " + std::to_string(max_blocks_) + " free");
  }
  for (uint32_t i = 0; i < need; ++i) table_[seq].push_back(take_block());
  return Status::ok();
}

void KvCache::reserve(uint32_t seq, int32_t n_pos) {
  const Status st = try_reserve(seq, n_pos);
  STRATA_CHECK(st.is_ok());
}

void KvCache::set_len(uint32_t seq, int32_t n_pos) {
  const bool shrink = n_pos < len_[seq];
  len_[seq] = n_pos;
  if (shrink) release_past(seq, n_pos);
}

void KvCache::release_past(uint32_t seq, int32_t n_pos) {
  const size_t keep = (size_t(std::max(n_pos, 0)) + block_ - 1) / block_;
  auto& t = table_[seq];
  while (t.size() > keep) {
    free_.push_back(t.back());
    t.pop_back();
    --n_used_;
  }
}

}  // namespace strata
