// KV cache storage, grown per sequence as positions are added.
#include "runtime/kv/kv_cache.h"

#include <algorithm>

#include "runtime/base/check.h"

namespace strata {

KvCache::KvCache(uint32_t n_layer, uint32_t k_width, uint32_t v_width, uint32_t n_seq, uint32_t n_ctx)
    : n_layer_(n_layer), k_width_(k_width), v_width_(v_width), n_seq_(n_seq), n_ctx_(n_ctx),
      len_(n_seq, 0), reserved_(n_seq, 0), k_(size_t(n_layer) * n_seq), v_(size_t(n_layer) * n_seq) {}

void KvCache::clear_all() { std::fill(len_.begin(), len_.end(), 0); }

void KvCache::reserve(uint32_t seq, int32_t n_pos) {
  STRATA_CHECK(seq < n_seq_ && n_pos >= 0 && uint32_t(n_pos) <= n_ctx_);
  if (n_pos <= reserved_[seq]) return;
  // Grow geometrically so a long decode does not copy the cache every token.
  const int32_t want = std::min<int64_t>(n_ctx_, std::max<int64_t>(n_pos, int64_t(reserved_[seq]) * 2));
  for (uint32_t il = 0; il < n_layer_; ++il) {
    k_[slot(il, seq)].resize(size_t(want) * k_width_);
    v_[slot(il, seq)].resize(size_t(want) * v_width_);
  }
  reserved_[seq] = want;
}

uint64_t KvCache::bytes_allocated() const {
  uint64_t n = 0;
  for (const auto& x : k_) n += x.size() * sizeof(float);
  for (const auto& x : v_) n += x.size() * sizeof(float);
  return n;
}

}  // namespace strata
