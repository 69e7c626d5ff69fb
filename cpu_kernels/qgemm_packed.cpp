// Packing GGUF Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0, Q4_0 and IQ4_XS rows into the interleaved layouts of
// qgemm_packed.h and back. Both directions are plain byte moves (no value is
// requantized).

// In a GGUF Q6_K block, element e = 128 h + 32 k + l (k < 4, l < 32) has its
// low 4 bits in ql[64 h + l + 32 (k & 1)] (nibble k >> 1) and its high 2 bits
// in qh[32 h + l] (bits 2k, 2k + 1).
#include "cpu_kernels/qgemm_packed.h"

#include <cstring>
#include <type_traits>

#include "cpu_kernels/qgemm_internal.h"
#include "runtime/base/check.h"
#include "runtime/base/quant_blocks.h"

namespace strata {
namespace {

using qgemm_detail::PackedIQ4XS;
using qgemm_detail::PackedLayout;
using qgemm_detail::PackedQ2K;
using qgemm_detail::PackedQ3K;
using qgemm_detail::PackedQ4_0;
using qgemm_detail::PackedQ4K;
using qgemm_detail::PackedQ5K;
using qgemm_detail::PackedQ6K;
using qgemm_detail::PackedQ8_0;
using qgemm_detail::packed_sub_scale;

// Q8_0 and Q4_0: the eight 32-element GGUF blocks of one 256-element packed
// block. Scale of block j, row r at d[j][r]; quant bytes 4c .. 4c + 3 of
// block j at qs[j][c][r][0..3], xored with kFlip (Q8_0: stored + 128, as
// unsigned, what vpdpbusd multiplies; Q4_0: as they are).
template <class Block, class P, uint32_t kFlip>
struct Blocks8 {
  Block b[8];
};
using Q8_0x8 = Blocks8<BlockQ8_0, PackedQ8_0, 0x80808080u>;
using Q4_0x8 = Blocks8<BlockQ4_0, PackedQ4_0, 0u>;
static_assert(sizeof(Q8_0x8) == 8 * sizeof(BlockQ8_0) && sizeof(Q4_0x8) == 8 * sizeof(BlockQ4_0));

template <class Block, class P, uint32_t kFlip>
void pack_block(const Blocks8<Block, P, kFlip>& b, int r, uint8_t* p) {
  constexpr int kChunks = sizeof(Block::qs) / 4;
  for (int j = 0; j < 8; ++j) {
    std::memcpy(p + P::kD + 32 * j + 2 * r, &b.b[j].d, 2);
    for (int c = 0; c < kChunks; ++c) {
      uint32_t v;
      std::memcpy(&v, b.b[j].qs + 4 * c, 4);
      v ^= kFlip;
      std::memcpy(p + P::kQs + 64 * kChunks * j + 64 * c + 4 * r, &v, 4);
    }
  }
}

template <class Block, class P, uint32_t kFlip>
void unpack_block(const uint8_t* p, int r, Blocks8<Block, P, kFlip>& b) {
  constexpr int kChunks = sizeof(Block::qs) / 4;
  for (int j = 0; j < 8; ++j) {
    std::memcpy(&b.b[j].d, p + P::kD + 32 * j + 2 * r, 2);
    for (int c = 0; c < kChunks; ++c) {
      uint32_t v;
      std::memcpy(&v, p + P::kQs + 64 * kChunks * j + 64 * c + 4 * r, 4);
      v ^= kFlip;
      std::memcpy(b.b[j].qs + 4 * c, &v, 4);
    }
  }
}

// The GGUF block of row r (0..15) of packed block `p`, rebuilt: the 6-bit
// scales and mins go back to their 12-byte packing (Q4_K, and Q5_K's first
// part: the same fields at the same offsets).
template <class B>
void unpack_k4(const uint8_t* p, int r, B& b) {
  std::memcpy(&b.d, p + PackedQ4K::kD + 2 * r, 2);
  std::memcpy(&b.dmin, p + PackedQ4K::kDmin + 2 * r, 2);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = p[PackedQ4K::kSc + 16 * j + r];
    m[j] = p[PackedQ4K::kMin + 32 * (j / 2) + 2 * r + (j % 2)];
  }
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = uint8_t(m[j] | ((m[j + 4] >> 4) << 6));
    b.scales[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) {
      const int q = qgemm_detail::packed_nibble(p + PackedQ4K::kQs + 256 * j, r, l);
      uint8_t& dst = b.qs[32 * (j / 2) + l];
      dst = (j % 2) ? uint8_t((dst & 0x0F) | (q << 4)) : uint8_t((dst & 0xF0) | q);
    }
  }
}

template <class B>
void pack_k4(const B& b, int r, uint8_t* p) {
  std::memcpy(p + PackedQ4K::kD + 2 * r, &b.d, 2);
  std::memcpy(p + PackedQ4K::kDmin + 2 * r, &b.dmin, 2);
  uint8_t sc[8], m[8];
  qgemm_detail::unpack_scale_min_k4(b.scales, sc, m);
  for (int j = 0; j < 8; ++j) {
    p[PackedQ4K::kSc + 16 * j + r] = sc[j];
    p[PackedQ4K::kMin + 32 * (j / 2) + 2 * r + (j % 2)] = m[j];
  }
  // Eight source bytes hold quants 8c..8c+7 of sub-blocks 2i (low nibbles)
  // and 2i + 1 (high): four destination bytes each, quant 8c + t in the low
  // nibble of byte t and 8c + 4 + t in its high nibble (a word at a time).
  for (int i = 0; i < 4; ++i) {
    for (int c = 0; c < 4; ++c) {
      uint64_t v;
      std::memcpy(&v, b.qs + 32 * i + 8 * c, 8);
      const uint64_t even = v & 0x0F0F0F0F0F0F0F0Full, odd = (v >> 4) & 0x0F0F0F0F0F0F0F0Full;
      const uint32_t e = uint32_t(even) | (uint32_t(even >> 32) << 4), o = uint32_t(odd) | (uint32_t(odd >> 32) << 4);
      std::memcpy(p + PackedQ4K::kQs + 256 * (2 * i) + 64 * c + 4 * r, &e, 4);
      std::memcpy(p + PackedQ4K::kQs + 256 * (2 * i + 1) + 64 * c + 4 * r, &o, 4);
    }
  }
}

void pack_block(const BlockQ4_K& b, int r, uint8_t* p) { pack_k4(b, r, p); }
void unpack_block(const uint8_t* p, int r, BlockQ4_K& b) { unpack_k4(p, r, b); }

// Q5_K: Q4_K's fields, then the 5th bit of quant l = 8c + 4u + t of sub-block
// j (bit j of the GGUF qh[l]) at bit 2c + u of byte qh[j][r][t].
void pack_block(const BlockQ5_K& b, int r, uint8_t* p) {
  pack_k4(b, r, p);
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) {
      const int bit = (b.qh[l] >> j) & 1, c = l / 8, u = (l % 8) / 4, t = l % 4;
      p[PackedQ5K::kQh + 64 * j + 4 * r + t] |= uint8_t(bit << (2 * c + u));
    }
  }
}

void unpack_block(const uint8_t* p, int r, BlockQ5_K& b) {
  unpack_k4(p, r, b);
  std::memset(b.qh, 0, sizeof b.qh);
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) {
      const int c = l / 8, u = (l % 8) / 4, t = l % 4;
      b.qh[l] |= uint8_t(((p[PackedQ5K::kQh + 64 * j + 4 * r + t] >> (2 * c + u)) & 1) << j);
    }
  }
}

// Q6_K: quant l of 32-element sub-block j at ql (low 4 bits, nibbles as
// Q4_K's qs) and qh (2 high bits; byte qh[j][c / 2][r][t] holds those of
// quants 8c + t and 8c + 4 + t at bits 4 (c % 2) and 4 (c % 2) + 2).
void unpack_block(const uint8_t* p, int r, BlockQ6_K& b) {
  std::memcpy(&b.d, p + PackedQ6K::kD + 2 * r, 2);
  for (int s = 0; s < 16; ++s) b.scales[s] = int8_t(p[PackedQ6K::kSc + packed_sub_scale(s, r)]);
  std::memset(b.ql, 0, sizeof b.ql);
  std::memset(b.qh, 0, sizeof b.qh);
  for (int e = 0; e < kQK_K; ++e) {
    const int j = e / 32, l = e % 32, c = l / 8, t = l % 4, upper = (l % 8) / 4;
    const uint8_t lo = p[PackedQ6K::kQl + 256 * j + 64 * c + 4 * r + t];
    const uint8_t hb = p[PackedQ6K::kQh + 128 * j + 64 * (c / 2) + 4 * r + t];
    const int q = ((lo >> (4 * upper)) & 0xF) | (((hb >> (4 * (c % 2) + 2 * upper)) & 3) << 4);
    // Back to GGUF's split (see the top of this file).
    const int half = e / 128, k = (e % 128) / 32, m = e % 32;
    b.ql[64 * half + m + 32 * (k & 1)] |= uint8_t((q & 0xF) << (4 * (k >> 1)));
    b.qh[32 * half + m] |= uint8_t((q >> 4) << (2 * k));
  }
}

void pack_block(const BlockQ6_K& b, int r, uint8_t* p) {
  std::memcpy(p + PackedQ6K::kD + 2 * r, &b.d, 2);
  for (int s = 0; s < 16; ++s) p[PackedQ6K::kSc + packed_sub_scale(s, r)] = uint8_t(b.scales[s]);
  // The 256 quants in order (GGUF splits each into ql and qh, see the top of this file).
  uint8_t q[kQK_K];
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t a = b.ql[64 * half + l], c = b.ql[64 * half + l + 32], h = b.qh[32 * half + l];
      uint8_t* o = q + 128 * half + l;
      o[0] = uint8_t((a & 0xF) | ((h & 3) << 4));
      o[32] = uint8_t((c & 0xF) | (((h >> 2) & 3) << 4));
      o[64] = uint8_t((a >> 4) | (((h >> 4) & 3) << 4));
      o[96] = uint8_t((c >> 4) | (((h >> 6) & 3) << 4));
    }
  }
  for (int j = 0; j < 8; ++j) {
    const uint8_t* qj = q + 32 * j;
    for (int c = 0; c < 4; ++c) {
      for (int t = 0; t < 4; ++t) {
        const int lo = qj[8 * c + t], hi = qj[8 * c + 4 + t];
        p[PackedQ6K::kQl + 256 * j + 64 * c + 4 * r + t] = uint8_t((lo & 0xF) | ((hi & 0xF) << 4));
        p[PackedQ6K::kQh + 128 * j + 64 * (c / 2) + 4 * r + t] |= uint8_t(((lo >> 4) | ((hi >> 4) << 2)) << (4 * (c % 2)));
      }
    }
  }
}

// IQ4_XS: element 32 j + l of the block is quant l of sub-block j, in the
// nibble array as Q4_K's; the 6-bit scales (ls, unsigned) at sc[j][r].
void pack_block(const BlockIQ4_XS& b, int r, uint8_t* p) {
  std::memcpy(p + PackedIQ4XS::kD + 2 * r, &b.d, 2);
  for (int j = 0; j < 8; ++j) {
    p[PackedIQ4XS::kSc + 16 * j + r] = uint8_t(qgemm_detail::iq4xs_scale(b.scales_h, b.scales_l, j) + 32);
    uint8_t q[32];
    for (int l = 0; l < 16; ++l) q[l] = b.qs[16 * j + l] & 0xF, q[16 + l] = b.qs[16 * j + l] >> 4;
    for (int c = 0; c < 4; ++c) {
      for (int t = 0; t < 4; ++t) {
        p[PackedIQ4XS::kQs + 256 * j + 64 * c + 4 * r + t] = uint8_t(q[8 * c + t] | (q[8 * c + 4 + t] << 4));
      }
    }
  }
}

void unpack_block(const uint8_t* p, int r, BlockIQ4_XS& b) {
  std::memcpy(&b.d, p + PackedIQ4XS::kD + 2 * r, 2);
  b.scales_h = 0;
  std::memset(b.scales_l, 0, sizeof b.scales_l);
  for (int j = 0; j < 8; ++j) {
    const int ls = p[PackedIQ4XS::kSc + 16 * j + r];
    b.scales_l[j / 2] |= uint8_t((ls & 0xF) << (4 * (j % 2)));
    b.scales_h |= uint16_t((ls >> 4) << (2 * j));
    const uint8_t* qs = p + PackedIQ4XS::kQs + 256 * j;
    for (int l = 0; l < 16; ++l) {
      b.qs[16 * j + l] = uint8_t(qgemm_detail::packed_nibble(qs, r, l) | (qgemm_detail::packed_nibble(qs, r, 16 + l) << 4));
    }
  }
}

// Q2_K and Q3_K: element 32 j + l (l = 16 u + 4 c + t) has its low 2 bits at
// bits 2 (j % 4) of GGUF qs[32 (j / 4) + l], and Q3_K its hmask bit at bit j
// of hmask[l]; packed, at bits 2c of qs[j][u][r][t] and bit 4u + c of
// hm[j][r][t].
template <class B>
void pack_q23k_quants(const B& b, int r, uint8_t* p) {
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) {
      const int u = l / 16, c = (l % 16) / 4, t = l % 4;
      const int q = (b.qs[32 * (j / 4) + l] >> (2 * (j % 4))) & 3;
      p[PackedQ2K::kQs + 128 * j + 64 * u + 4 * r + t] |= uint8_t(q << (2 * c));
      if constexpr (std::is_same_v<B, BlockQ3_K>) {
        p[PackedQ3K::kHm + 64 * j + 4 * r + t] |= uint8_t(((b.hmask[l] >> j) & 1) << (4 * u + c));
      }
    }
  }
}

template <class B>
void unpack_q23k_quants(const uint8_t* p, int r, B& b) {
  std::memset(b.qs, 0, sizeof b.qs);
  if constexpr (std::is_same_v<B, BlockQ3_K>) std::memset(b.hmask, 0, sizeof b.hmask);
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) {
      const int u = l / 16;
      b.qs[32 * (j / 4) + l] |= uint8_t(qgemm_detail::packed_q23k_low(p, j, u, r, l % 16) << (2 * (j % 4)));
      if constexpr (std::is_same_v<B, BlockQ3_K>) {
        b.hmask[l] |= uint8_t(qgemm_detail::packed_q3k_high(p, j, u, r, l % 16) << j);
      }
    }
  }
}

// Q2_K: the scale bytes of sub-blocks 2j, 2j + 1 side by side per row.
void pack_block(const BlockQ2_K& b, int r, uint8_t* p) {
  std::memcpy(p + PackedQ2K::kD + 2 * r, &b.d, 2);
  std::memcpy(p + PackedQ2K::kDmin + 2 * r, &b.dmin, 2);
  for (int s = 0; s < 16; ++s) p[PackedQ2K::kSc + packed_sub_scale(s, r)] = b.scales[s];
  pack_q23k_quants(b, r, p);
}

void unpack_block(const uint8_t* p, int r, BlockQ2_K& b) {
  std::memcpy(&b.d, p + PackedQ2K::kD + 2 * r, 2);
  std::memcpy(&b.dmin, p + PackedQ2K::kDmin + 2 * r, 2);
  for (int s = 0; s < 16; ++s) b.scales[s] = p[PackedQ2K::kSc + packed_sub_scale(s, r)];
  unpack_q23k_quants(p, r, b);
}

// Q3_K: the 6-bit scales (stored + 32) as int8 values - 32.
void pack_block(const BlockQ3_K& b, int r, uint8_t* p) {
  std::memcpy(p + PackedQ3K::kD + 2 * r, &b.d, 2);
  uint32_t sw[4];
  qgemm_detail::q3k_scale_words(b.scales, sw);
  uint8_t sc[16];
  std::memcpy(sc, sw, sizeof sc);
  for (int s = 0; s < 16; ++s) p[PackedQ3K::kSc + packed_sub_scale(s, r)] = uint8_t(sc[s] - 32);
  pack_q23k_quants(b, r, p);
}

void unpack_block(const uint8_t* p, int r, BlockQ3_K& b) {
  std::memcpy(&b.d, p + PackedQ3K::kD + 2 * r, 2);
  std::memset(b.scales, 0, sizeof b.scales);
  for (int s = 0; s < 16; ++s) {
    const int v = uint8_t(p[PackedQ3K::kSc + packed_sub_scale(s, r)] + 32);
    b.scales[s % 8] |= uint8_t((v & 0xF) << (4 * (s / 8)));
    b.scales[8 + s % 4] |= uint8_t((v >> 4) << (2 * (s / 4)));
  }
  unpack_q23k_quants(p, r, b);
}

// One type's GGUF block <-> its place in a packed block.
template <class Block>
void pack_rows(const uint8_t* src, int64_t nb, int64_t o_begin, int64_t o_end, size_t bytes, uint8_t* out) {
  for (int64_t g = o_begin / kPackRows; g < o_end / kPackRows; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* p = out + size_t(g * nb + b) * bytes;
      std::memset(p, 0, bytes);
      for (int r = 0; r < kPackRows; ++r) {
        Block blk;
        std::memcpy(&blk, src + (size_t(g * kPackRows + r) * size_t(nb) + size_t(b)) * sizeof(Block), sizeof blk);
        pack_block(blk, r, p);
      }
    }
  }
}

template <class Block>
void unpack_rows(const uint8_t* src, int64_t nb, int64_t o_begin, int64_t o_end, size_t bytes, uint8_t* out) {
  for (int64_t g = o_begin / kPackRows; g < o_end / kPackRows; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* p = src + size_t(g * nb + b) * bytes;
      for (int r = 0; r < kPackRows; ++r) {
        Block blk{};
        unpack_block(p, r, blk);
        std::memcpy(out + (size_t(g * kPackRows + r - o_begin) * size_t(nb) + size_t(b)) * sizeof(Block), &blk,
                    sizeof blk);
      }
    }
  }
}

// f.template operator()<B, P>() with B the GGUF block (Q8_0, Q4_0: eight of
// them) whose 16 rows one packed block of type w holds, and P its layout;
// false (and no call) for a type without a packed layout.
template <class F>
bool with_block_type(DType w, F&& f) {
  switch (w) {
    case DType::kQ2_K: f.template operator()<BlockQ2_K, PackedLayout<DType::kQ2_K>>(); return true;
    case DType::kQ3_K: f.template operator()<BlockQ3_K, PackedLayout<DType::kQ3_K>>(); return true;
    case DType::kQ4_K: f.template operator()<BlockQ4_K, PackedLayout<DType::kQ4_K>>(); return true;
    case DType::kQ5_K: f.template operator()<BlockQ5_K, PackedLayout<DType::kQ5_K>>(); return true;
    case DType::kQ6_K: f.template operator()<BlockQ6_K, PackedLayout<DType::kQ6_K>>(); return true;
    case DType::kIQ4_XS: f.template operator()<BlockIQ4_XS, PackedLayout<DType::kIQ4_XS>>(); return true;
    case DType::kQ8_0: f.template operator()<Q8_0x8, PackedLayout<DType::kQ8_0>>(); return true;
    case DType::kQ4_0: f.template operator()<Q4_0x8, PackedLayout<DType::kQ4_0>>(); return true;
    default: return false;
  }
}

bool packed_type(DType w) {
  return with_block_type(w, []<class B, class P>() {});
}

size_t block_bytes(DType w) {
  size_t bytes = 0;
  with_block_type(w, [&]<class B, class P>() { bytes = P::kBytes; });
  return bytes;
}

void check_range(DType w, int64_t n_in, int64_t o_begin, int64_t o_end) {
  STRATA_CHECK(packed_type(w) && n_in % kQK_K == 0);
  STRATA_CHECK(0 <= o_begin && o_begin <= o_end && o_begin % kPackRows == 0 && o_end % kPackRows == 0);
}

}  // namespace

bool qgemm_packable(DType w, int64_t n_in, int64_t n_out) {
  return packed_type(w) && n_in > 0 && n_in % kQK_K == 0 && n_out > 0 && n_out % kPackRows == 0;
}

bool qgemm_packed_fast(CpuIsa isa, DType w) {
  return isa != CpuIsa::kScalar && qgemm_detail::kernel_table(isa).packed[static_cast<int>(w)] != nullptr;
}

bool qgemm_repacks(DType w, int64_t n_in, int64_t n_out) {
  return qgemm_packable(w, n_in, n_out) && qgemm_packed_fast(active_cpu_isa(), w);
}

size_t qgemm_packed_bytes(DType w, int64_t n_in, int64_t n_rows) {
  STRATA_CHECK(packed_type(w) && n_rows % kPackRows == 0);
  return size_t(n_rows / kPackRows) * size_t(n_in / kQK_K) * block_bytes(w);
}

void qgemm_pack(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, void* dst) {
  check_range(w_type, n_in, o_begin, o_end);
  with_block_type(w_type, [&]<class B, class P>() {
    pack_rows<B>(static_cast<const uint8_t*>(w), n_in / kQK_K, o_begin, o_end, P::kBytes,
                 static_cast<uint8_t*>(dst));
  });
}

void qgemm_unpack(DType w_type, const void* packed, int64_t n_in, int64_t o_begin, int64_t o_end, void* dst) {
  check_range(w_type, n_in, o_begin, o_end);
  with_block_type(w_type, [&]<class B, class P>() {
    unpack_rows<B>(static_cast<const uint8_t*>(packed), n_in / kQK_K, o_begin, o_end, P::kBytes,
                   static_cast<uint8_t*>(dst));
  });
}

}  // namespace strata
