// The KV cache: per layer and per sequence, one key row and one value row per
// position, in f32. GQA layers store K (n_head_kv * head_k) and V rows; MLA
// layers store only the compressed latent + rope key (kv_lora + n_rot) in the
// key row and no value row, since values are read from the latent.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/base/status.h"

namespace strata {

// Where each token of a batch goes: its sequence and its position in it.
struct TokenPlaces {
  int64_t n_tokens = 0;
  const int32_t* seq = nullptr;
  const int32_t* pos = nullptr;
};

class KvCache {
 public:
  // k_width/v_width: floats per position of one layer (v_width 0: no value rows).
  // n_seq: sequences (slots) held; n_ctx: positions per sequence at most.
  KvCache(uint32_t n_layer, uint32_t k_width, uint32_t v_width, uint32_t n_seq, uint32_t n_ctx);

  uint32_t n_layer() const { return n_layer_; }
  uint32_t n_seq() const { return n_seq_; }
  uint32_t n_ctx() const { return n_ctx_; }
  uint32_t k_width() const { return k_width_; }
  uint32_t v_width() const { return v_width_; }

  // Positions stored for `seq` (the next token of it goes at this position).
  int32_t seq_len(uint32_t seq) const { return len_[seq]; }
  // Forget a sequence; its memory is kept for reuse.
  void clear(uint32_t seq) { len_[seq] = 0; }
  void clear_all();

  // Grows the storage of `seq` to hold n_pos positions (n_pos <= n_ctx).
  // Row pointers of that sequence are invalidated.
  void reserve(uint32_t seq, int32_t n_pos);
  // Declares positions [0, n_pos) of `seq` valid (after a forward wrote them).
  void set_len(uint32_t seq, int32_t n_pos) { len_[seq] = n_pos; }

  // Row of `pos` (< reserved size) for a layer and a sequence.
  float* k(uint32_t layer, uint32_t seq, int32_t pos) { return k_[slot(layer, seq)].data() + size_t(pos) * k_width_; }
  float* v(uint32_t layer, uint32_t seq, int32_t pos) { return v_[slot(layer, seq)].data() + size_t(pos) * v_width_; }
  const float* k(uint32_t layer, uint32_t seq, int32_t pos) const {
    return k_[slot(layer, seq)].data() + size_t(pos) * k_width_;
  }
  const float* v(uint32_t layer, uint32_t seq, int32_t pos) const {
    return v_[slot(layer, seq)].data() + size_t(pos) * v_width_;
  }

  uint64_t bytes_allocated() const;

 private:
  size_t slot(uint32_t layer, uint32_t seq) const { return size_t(layer) * n_seq_ + seq; }
  uint32_t n_layer_, k_width_, v_width_, n_seq_, n_ctx_;
  std::vector<int32_t> len_;       // [n_seq]
  std::vector<int32_t> reserved_;  // [n_seq] positions allocated
  std::vector<std::vector<float>> k_, v_;  // [n_layer * n_seq]
};

}  // namespace strata
