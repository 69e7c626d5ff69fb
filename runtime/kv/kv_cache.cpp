// KV cache block pool: blocks are allocated on first use, handed to sequences
// through their block tables, and returned to a free list when a sequence is
// cleared or shortened.
#include "runtime/kv/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "cpu_kernels/vec_f32.h"
#include "runtime/base/check.h"

namespace strata {

const char* kv_type_name(KvType t) { return t == KvType::kF16 ? "f16" : "f32"; }

Result<KvType> parse_kv_type(const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  return invalid_argument("KV cache type: expected f16 or f32, got '" + name + "'");
}

KvCache::KvCache(uint32_t n_layer, uint32_t k_width, uint32_t v_width, uint32_t n_seq, uint32_t n_ctx, uint32_t block,
                 uint32_t max_blocks, KvType type)
    : n_layer_(n_layer), k_width_(k_width), v_width_(v_width), n_seq_(n_seq), n_ctx_(n_ctx),
      block_(std::max<uint32_t>(1, block)), type_(type), len_(n_seq, 0), table_(n_seq) {
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

int32_t KvCache::take_block() {
  ++n_used_;
  if (!free_.empty()) {
    const int32_t b = free_.back();
    free_.pop_back();
    return b;
  }
  // Zeroed, so a row read before it is written (never, by the forward's
  // contract) is at least finite.
  blocks_.push_back(std::make_unique<std::byte[]>(size_t(block_bytes())));
  return int32_t(blocks_.size() - 1);
}

void KvCache::put_row(uint32_t layer, uint32_t seq, int32_t pos, bool value, const float* src) {
  const uint32_t n = value ? v_width_ : k_width_;
  std::byte* dst = row(layer, seq, pos, value);
  if (type_ == KvType::kF32) {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
  } else {
    vec_f32_ops().to_f16(src, reinterpret_cast<uint16_t*>(dst), n);
  }
}

void KvCache::put_k(uint32_t layer, uint32_t seq, int32_t pos, const float* src) {
  put_row(layer, seq, pos, false, src);
}
void KvCache::put_v(uint32_t layer, uint32_t seq, int32_t pos, const float* src) {
  put_row(layer, seq, pos, true, src);
}

void KvCache::get_rows(uint32_t layer, uint32_t seq, bool value, int64_t n, float* dst) const {
  const int64_t width = value ? v_width_ : k_width_;
  for (int64_t t0 = 0; t0 < n; t0 += block_) {
    const int64_t m = std::min<int64_t>(block_, n - t0);
    const std::byte* src = row(layer, seq, int32_t(t0), value);
    if (type_ == KvType::kF32) {
      std::memcpy(dst + t0 * width, src, size_t(m * width) * sizeof(float));
    } else {
      vec_f32_ops().from_f16(reinterpret_cast<const uint16_t*>(src), dst + t0 * width, m * width);
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
