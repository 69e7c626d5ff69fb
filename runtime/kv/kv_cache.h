// The KV cache: fixed-size blocks of positions from one shared pool, and per
// sequence a table of the blocks it holds, so sequences of different lengths
// share memory without fragmentation (a finished sequence's blocks go straight
// to the next one). Within a block, per layer, one key row and one value row
// per position: GQA layers store K (n_head_kv * head_k) and V rows; MLA
// layers store only the compressed latent + rope key (kv_lora + n_rot) in the
// key row and no value row, since values are read from the latent. Rows may
// be split into `heads` equal parts stored head by head: within a block one
// head's keys (values) for every position are one run, so attention over one
// kv head streams contiguous memory instead of a part of every row. Entries
// are f32, or f16 (IEEE binary16, rounded to nearest even when stored): half
// the bytes that decode attention reads per position, and half the memory.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/base/check.h"
#include "runtime/base/status.h"

namespace strata {

enum class KvType : uint8_t { kF32, kF16 };

// "f32" / "f16", and back (an error names the accepted values).
const char* kv_type_name(KvType t);
Result<KvType> parse_kv_type(const std::string& name);
inline size_t kv_type_bytes(KvType t) { return t == KvType::kF16 ? 2 : 4; }

// Where each token of a batch goes: its sequence and its position in it.
struct TokenPlaces {
  int64_t n_tokens = 0;
  const int32_t* seq = nullptr;
  const int32_t* pos = nullptr;
};

class KvCache {
 public:
  static constexpr uint32_t kDefaultBlock = 16;

  // k_width/v_width: entries per position of one layer (v_width 0: no value rows).
  // n_seq: sequences (slots) held; n_ctx: positions per sequence at most.
  // block: positions per block; max_blocks: blocks the pool may hold (0:
  // enough for every sequence at full context). Blocks are allocated when a
  // sequence first needs them and are reused, never returned to the system.
  // heads: parts each row is stored in (dividing k_width and v_width).
  KvCache(uint32_t n_layer, uint32_t k_width, uint32_t v_width, uint32_t n_seq, uint32_t n_ctx,
          uint32_t block = kDefaultBlock, uint32_t max_blocks = 0, KvType type = KvType::kF32, uint32_t heads = 1);

  uint32_t n_layer() const { return n_layer_; }
  uint32_t n_seq() const { return n_seq_; }
  uint32_t n_ctx() const { return n_ctx_; }
  uint32_t k_width() const { return k_width_; }
  uint32_t v_width() const { return v_width_; }
  uint32_t block_size() const { return block_; }
  KvType type() const { return type_; }
  uint32_t heads() const { return heads_; }
  // Entries from one position's key (value) row part to the next within a
  // block: k_width / heads (v_width / heads).
  int64_t k_stride() const { return k_width_ / heads_; }
  int64_t v_stride() const { return v_width_ / heads_; }

  // Positions stored for `seq` (the next token of it goes at this position).
  int32_t seq_len(uint32_t seq) const { return len_[seq]; }
  // Forget a sequence; its blocks go back to the pool.
  void clear(uint32_t seq);
  void clear_all();

  // Makes `seq` hold blocks for n_pos positions (n_pos <= n_ctx). The pool
  // must have them: a caller that may run out checks can_reserve or uses
  // try_reserve first (an always-on check otherwise).
  void reserve(uint32_t seq, int32_t n_pos);
  // Same, or an out-of-memory Status (nothing taken) when the pool is short.
  Status try_reserve(uint32_t seq, int32_t n_pos);
  // Blocks `seq` holds, and blocks it still needs to hold n_pos positions.
  uint32_t blocks_held(uint32_t seq) const { return uint32_t(table_[seq].size()); }
  uint32_t blocks_needed(uint32_t seq, int32_t n_pos) const;
  // Declares positions [0, n_pos) of `seq` valid (after a forward wrote
  // them). Shrinking gives the blocks wholly past n_pos back to the pool.
  void set_len(uint32_t seq, int32_t n_pos);

  // Entry `at` of the key (value) row of `pos` (< reserved size) for a
  // layer and a sequence, as entries of the cache's type: T is float for
  // kF32, uint16_t (binary16 bits) for kF16. The entries from `at` to the end
  // of its head's part are contiguous; the same entry of the next position is
  // k_stride() (v_stride()) entries on, within one block: positions
  // [b * block_size(), (b + 1) * block_size()) of a sequence.
  template <class T = float>
  T* k(uint32_t layer, uint32_t seq, int32_t pos, int64_t at = 0) {
    return typed<T>(row(layer, seq, pos, false, at));
  }
  template <class T = float>
  T* v(uint32_t layer, uint32_t seq, int32_t pos, int64_t at = 0) {
    return typed<T>(row(layer, seq, pos, true, at));
  }
  template <class T = float>
  const T* k(uint32_t layer, uint32_t seq, int32_t pos, int64_t at = 0) const {
    return typed<T>(row(layer, seq, pos, false, at));
  }
  template <class T = float>
  const T* v(uint32_t layer, uint32_t seq, int32_t pos, int64_t at = 0) const {
    return typed<T>(row(layer, seq, pos, true, at));
  }

  // Stores k_width (v_width) floats as the key (value) row of `pos`, in the
  // cache's type.
  void put_k(uint32_t layer, uint32_t seq, int32_t pos, const float* src);
  void put_v(uint32_t layer, uint32_t seq, int32_t pos, const float* src);
  // Key (value) rows of positions [0, n) of a sequence as floats, n rows of
  // k_width (v_width) into dst.
  void get_k(uint32_t layer, uint32_t seq, int64_t n, float* dst) const;
  void get_v(uint32_t layer, uint32_t seq, int64_t n, float* dst) const;

  // Pool accounting.
  uint32_t n_blocks_max() const { return max_blocks_; }
  uint32_t n_blocks_used() const { return n_used_; }
  uint32_t n_blocks_free() const { return max_blocks_ - n_used_; }
  uint64_t block_bytes() const { return uint64_t(n_layer_) * layer_entries() * kv_type_bytes(type_); }
  uint64_t bytes_allocated() const { return uint64_t(blocks_.size()) * block_bytes(); }
  // Bytes of one position's key and value rows over every layer.
  uint64_t position_bytes() const { return block_bytes() / block_; }

 private:
  size_t layer_entries() const { return size_t(block_) * (k_width_ + v_width_); }
  size_t in_block(int32_t pos) const { return size_t(pos) % block_; }
  // Entry `at` of the key (or value) row of `pos`: in the block holding it,
  // `layer`'s part is block_ key rows, then block_ value rows, each head's
  // part of them in turn.
  std::byte* row(uint32_t layer, uint32_t seq, int32_t pos, bool value, int64_t at) const {
    const size_t stride = size_t(std::max<int64_t>(1, value ? v_stride() : k_stride()));
    const size_t part = (value ? size_t(block_) * k_width_ : 0) + size_t(at) / stride * block_ * stride;
    const size_t entry = part + in_block(pos) * stride + size_t(at) % stride;
    std::byte* block = blocks_[size_t(table_[seq][size_t(pos) / block_])];
    return block + (layer * layer_entries() + entry) * kv_type_bytes(type_);
  }
  template <class T>
  T* typed(std::byte* p) const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, uint16_t>);
    STRATA_CHECK(sizeof(T) == kv_type_bytes(type_));  // rows read as the cache's own type
    return reinterpret_cast<T*>(p);
  }
  void put_row(uint32_t layer, uint32_t seq, int32_t pos, bool value, const float* src);
  void get_rows(uint32_t layer, uint32_t seq, bool value, int64_t n, float* dst) const;
  int32_t take_block();
  void release_past(uint32_t seq, int32_t n_pos);  // blocks wholly past n_pos back to the pool

  uint32_t n_layer_, k_width_, v_width_, n_seq_, n_ctx_, block_, max_blocks_, heads_;
  KvType type_;
  uint32_t n_used_ = 0;
  std::vector<int32_t> len_;                 // [n_seq]
  std::vector<std::vector<int32_t>> table_;  // [n_seq] block ids in position order
  // Blocks are carved from slabs of pages (huge where the system gives
  // them), a gap apart (kv_cache.cpp says why): decode attention walks every
  // block of a sequence per layer.
  struct Unmap {
    size_t bytes;
    void operator()(std::byte* p) const;
  };
  std::vector<std::unique_ptr<std::byte, Unmap>> slabs_;
  size_t slab_left_ = 0;            // blocks not yet handed out in the last slab
  std::vector<std::byte*> blocks_;  // every block allocated so far
  std::vector<int32_t> free_;       // allocated blocks nobody holds
};

}  // namespace strata
