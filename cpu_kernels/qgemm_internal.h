// Shared by the qgemm kernel files only (not an API): the per-path kernel
// tables, the argument bundle every kernel takes, and small block decoders.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/qgemm_packed.h"
#include "runtime/base/dtype.h"
#include "runtime/base/quant_blocks.h"

namespace strata::qgemm_detail {

// One product: y[(r - r_begin) * y_stride + (o - o_begin)] = W[o] . x[r] for
// o in [o_begin, o_end), r in [r_begin, r_end). Row o of W starts at
// w + o * row_bytes.
struct GemmArgs {
  const uint8_t* w;
  size_t row_bytes;
  int64_t n_in;
  int64_t o_begin, o_end;
  const ActPack* x;
  int64_t r_begin, r_end;
  float* y;
  int64_t y_stride;
};
using GemmFn = void (*)(const GemmArgs&);

// The locality hint of every weight prefetch: 3 (prefetcht0, into L1 and
// L2). On the Zen 5 development machine, prefetcht1 (2, into L2) cost the
// tiles that compute most per byte, one thread from DRAM, alternating
// builds: packed Q8_0 4 rows 27.7-27.8 GB/s against 32.9, 8 rows 33.3-33.4
// against 34.9-35.9, F16 8 rows 17.5-17.7 against 19.0, BF16 8 rows
// 19.8-20.2 against 21.6-22.0; the read probe is the same with either.
inline constexpr int kPrefetchLocality = 3;

// Software prefetch for the float-weight tiles: weight rows wr[0..MW), each
// row_bytes long and the next one row_bytes on, from byte `at`, kAhead bytes on
// (the rows stream side by side, so each asks for its own line). Past a row's
// end it asks for the same place in the next group's rows (MW rows on: the
// loops below walk groups of rows in order), so a new group does not start
// cold: AVX-512, 7168x2048 from DRAM, one thread, alternating builds, BF16 4
// rows 21.5 -> 29.6-31.3 GB/s, 8 rows 22.0 -> 23.5-24.8, F16 1 row 26.9 ->
// 28.7-30.3, 4 rows 22.9 -> 24.8-25.8. Always inlined, as prefetch_step below.
// kFloatRowAhead suits the vdpbf16ps tiles (one instruction per 64 bytes and
// activation row). The tiles that convert to f32 and FMA run more instructions
// per byte, so the out-of-order window covers fewer bytes and they prefetch
// kFmaRowAhead on (one thread, 1024 -> 2048 -> 4096 bytes: AVX-512 F16 1 row
// 29.4-29.8 -> 31.9-32.3 -> 30.4, 4 rows 25.5-25.7 -> 28.5-29.4 -> 25.9; AVX2
// F16 1 row 27.2-28.5 -> 33.7-34.1 -> 31.1-31.4, AVX2 BF16 1 row 27.7-27.8 ->
// 33.6-35.4 -> 32.2-33.1 GB/s).
inline constexpr size_t kFloatRowAhead = 1024;
inline constexpr size_t kFmaRowAhead = 2048;
template <int MW, size_t kAhead = kFloatRowAhead>
[[gnu::always_inline]] inline void prefetch_rows(const uint8_t* const* wr, size_t at, size_t row_bytes) {
  size_t to = at + kAhead;
  if (to >= row_bytes) to += (MW - 1) * row_bytes;
  for (int m = 0; m < MW; ++m) __builtin_prefetch(wr[m] + to, 0, kPrefetchLocality);
}

// One float-weight tile of NR activation rows for kernels whose MW x R
// accumulators fit in registers only up to R = kPass rows (AVX-512: 4, 16
// of 32 registers; AVX2: 2, 8 of 16).
//   step.template operator()<R>(i0, e, count, pf, a)
// adds weight rows . activation rows i0..i0+R over elements [e, e + count)
// to a[MW][R]; count is kStep but for the last step; a step that streams
// (kAhead) prefetches its rows at element pf (prefetch_rows); sum(a) reduces
// one accumulator. The accumulators go to step by reference, not captured: in
// registers only so (with the small loops under `#pragma GCC unroll`; GCC 12
// at -O3 unrolled them late and stored all 16 to the stack every step).
// More than kPass rows go in P passes of up to kPass rows, segment by
// segment, so the later passes find the weights in L1 while the first
// streams them in; with each pass over whole rows they read them back from
// L2 after the stream had paused (AVX-512 BF16 7168x2048 from DRAM, 8 rows,
// 2 threads: 32.7-33.6 -> 34.2-35.5 GB/s; segments of 256 elements
// 29.7-30.6, of 512 33.7-34.7, of 1024 33.9-34.6). The passes share the
// prefetching, so the stream does not stop while the later ones run: the
// first prefetches its own segment (from pf = e on), which the others have
// mostly fetched, and pass p >= 1 the next segment's share
// [(p - 1) / P, p / P), at 1 / P of the speed (AVX-512 F16 8 rows, same
// figures: 29.0-30.7 -> 32.7-33.9 GB/s, 63-67% -> 70-76% of the roofline;
// BF16 34.7-35.1 -> 35.4-35.9).
inline constexpr int64_t kFloatSegment = 1024;
template <int MW, int NR, int kPass, int kStep, class Acc, class Step, class Sum>
[[gnu::always_inline]] inline void float_tile_passes(int64_t n, const Step& step, const Sum& sum, float* out,
                                                     int64_t stride) {
  constexpr int kP = (NR + kPass - 1) / kPass;
  // Pass p: rows [p * kPass, p * kPass + R), accumulators acc[MW][0..R).
  const auto run = [&]<int R>(int i0, int64_t e0, int64_t e1, const auto& pf, Acc(&acc)[MW][kPass]) {
    Acc a[MW][R];
#pragma GCC unroll 4
    for (int m = 0; m < MW; ++m)
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) a[m][i] = acc[m][i];
    int64_t e = e0;
    for (; e + kStep <= e1; e += kStep) step.template operator()<R>(i0, e, kStep, pf(e), a);
    if (e < e1) step.template operator()<R>(i0, e, e1 - e, pf(e), a);
#pragma GCC unroll 4
    for (int m = 0; m < MW; ++m)
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) acc[m][i] = a[m][i];
  };
  Acc acc[kP][MW][kPass] = {};
  if constexpr (kP == 1) {
    run.template operator()<NR>(0, 0, n, [](int64_t e) { return e; }, acc[0]);
  } else {
    for (int64_t e = 0; e < n; e += kFloatSegment) {
      const int64_t e1 = std::min(n, e + kFloatSegment);
      [&]<int... p>(std::integer_sequence<int, p...>) {
        (run.template operator()<std::min(kPass, NR - p * kPass)>(
             p * kPass, e, e1,
             [&](int64_t i) { return p == 0 ? i : e1 + ((p - 1) * kFloatSegment + (i - e)) / kP; }, acc[p]),
         ...);
      }(std::make_integer_sequence<int, kP>{});
    }
  }
  [&]<int... p>(std::integer_sequence<int, p...>) {
    (
        [&] {
          constexpr int R = std::min(kPass, NR - p * kPass);
#pragma GCC unroll 4
          for (int m = 0; m < MW; ++m)
#pragma GCC unroll 4
            for (int i = 0; i < R; ++i) out[m + (p * kPass + i) * stride] = sum(acc[p][m][i]);
        }(),
        ...);
  }(std::make_integer_sequence<int, kP>{});
}

// The activation-row tiling of both loops below, over rows [r, rce): tiles
// of 8 where kMax is 8 and max_tile allows, then of min(kMax, 4), then one
// of the 1-3 rows left; tile.template operator()<NR>(r0) runs each.
template <int kMax, class F>
[[gnu::always_inline]] inline void row_tiles(int64_t r, int64_t rce, int max_tile, const F& tile) {
  if constexpr (kMax >= 8) {
    if (max_tile >= 8) {
      for (; r + 8 <= rce; r += 8) tile.template operator()<8>(r);
    }
  }
  constexpr int kTile = std::min(kMax, 4);
  for (; r + kTile <= rce; r += kTile) tile.template operator()<kTile>(r);
  switch (rce - r) {
    case 3:
      if constexpr (kTile > 3) tile.template operator()<3>(r);
      break;
    case 2:
      if constexpr (kTile > 2) tile.template operator()<2>(r);
      break;
    case 1: tile.template operator()<1>(r); break;
    default: break;
  }
}

// The loop the float-weight GEMMs of every SIMD path share: 64 activation
// rows at a time, then weight rows in groups of four (a short last group
// repeats its last row pointer; only MW outputs are written) against tiles
// of T::kMaxTile activation rows (8, then 4 where it is 8) and a last one
// of fewer:
//   T::template tile<MW, NR, kAhead>(wr, x, r0, n_in, out, y_stride)
// The first tile of a group streams its weights and prefetches them
// (kAhead: prefetch_rows each step); the rest find them in cache. BF16
// 7168x2048 from DRAM, AVX-512 BF16, 2 threads: 1 row 34.0-35.7 -> 39.1-39.5
// GB/s, 4 rows 18.1-18.3 -> 33.7-36.5, 8 rows 15.2-15.5 -> 26.8-27.0.
template <class T, int MW>
void float_group_tiles(const uint8_t* const* wr, const ActPack& x, int64_t rc, int64_t rce, int64_t n, float* out,
                       int64_t stride) {
  row_tiles<T::kMaxTile>(rc, rce, T::kMaxTile, [&]<int NR>(int64_t r) {
    float* o = out + (r - rc) * stride;
    if (r == rc) {
      T::template tile<MW, NR, true>(wr, x, r, n, o, stride);
    } else {
      T::template tile<MW, NR, false>(wr, x, r, n, o, stride);
    }
  });
}

template <class T>
void gemm_weight_row_groups(const GemmArgs& a) {
  constexpr int64_t kChunk = 64;
  for (int64_t rc = a.r_begin; rc < a.r_end; rc += kChunk) {
    const int64_t rce = std::min(a.r_end, rc + kChunk);
    float* yc = a.y + (rc - a.r_begin) * a.y_stride;
    for (int64_t o = a.o_begin; o < a.o_end; o += 4) {
      const int mw = static_cast<int>(std::min<int64_t>(4, a.o_end - o));
      const uint8_t* wr[4];
      for (int m = 0; m < 4; ++m) wr[m] = a.w + static_cast<size_t>(o + std::min(m, mw - 1)) * a.row_bytes;
      float* out = yc + (o - a.o_begin);
      switch (mw) {
        case 4: float_group_tiles<T, 4>(wr, *a.x, rc, rce, a.n_in, out, a.y_stride); break;
        case 3: float_group_tiles<T, 3>(wr, *a.x, rc, rce, a.n_in, out, a.y_stride); break;
        case 2: float_group_tiles<T, 2>(wr, *a.x, rc, rce, a.n_in, out, a.y_stride); break;
        default: float_group_tiles<T, 1>(wr, *a.x, rc, rce, a.n_in, out, a.y_stride); break;
      }
    }
  }
}

// Kernel sets for gemm_row_tiles that decode a weight group once per chunk
// of activation rows into a scratch buffer (kUnpackedBlockBytes per block)
// that their tiles then read, instead of decoding it in every tile.
template <class K>
concept UnpacksGroups = requires(const uint8_t* w, uint8_t* dst) {
  { K::kUnpackedBlockBytes } -> std::convertible_to<size_t>;
  { K::kMaxUnpackedTile } -> std::convertible_to<int>;
  K::unpack(w, int64_t{1}, dst);
};

// Scratch of at least `bytes`, 64-byte aligned, kept per thread.
inline uint8_t* thread_scratch(size_t bytes) {
  struct alignas(64) Line {
    uint8_t b[64];
  };
  static thread_local std::vector<Line> buf;
  if (buf.size() * sizeof(Line) < bytes) buf.resize((bytes + sizeof(Line) - 1) / sizeof(Line));
  return buf.data()->b;
}

// The loop the quantized GEMMs of every SIMD path share: 64 activation rows
// at a time, then K::kRows weight rows at a time (1, or a packed group of 16
// at row_bytes apart) against tiles of K::kMaxTile activation rows (8 or 4)
// and a last tile of 1-3.
//   K::template tile<NR, kAhead>(w, x, r0, nb, out, stride)
// computes one tile; w is the weight row or group, nb its blocks of K::kBlock.
// The first tile of each chunk streams the weights and prefetches ahead
// (prefetch_tile_step); the rest find them in cache and do not. kAhead is a
// template argument: a run-time flag cost Q6_K prefill 12% in code generation.
// Where K unpacks groups (UnpacksGroups) and a chunk has more than two full
// tiles, K::unpack(w, nb, scratch) runs once per group (streaming it, with
// the prefetches) and K::template tile_unpacked<NR>(w, scratch, ...) per
// tile of up to K::kMaxUnpackedTile rows. With two tiles the unpack pass
// costs more than it saves (AVX2 Q4_K, 8 rows, 2 threads: 11.8 -> 9.5 GB/s).
template <class K>
void gemm_row_tiles(const GemmArgs& a) {
  constexpr int64_t kChunk = 64;
  const int64_t nb = a.n_in / K::kBlock;
  uint8_t* scratch = nullptr;
  for (int64_t rc = a.r_begin; rc < a.r_end; rc += kChunk) {
    const int64_t rce = std::min(a.r_end, rc + kChunk);
    bool unpacked = false;
    int max_tile = K::kMaxTile;
    if constexpr (UnpacksGroups<K>) {
      unpacked = rce - rc > 2 * K::kMaxTile;
      if (unpacked) max_tile = K::kMaxUnpackedTile;
      if (unpacked && scratch == nullptr) scratch = thread_scratch(nb * K::kUnpackedBlockBytes);
    }
    for (int64_t o = a.o_begin; o < a.o_end; o += K::kRows) {
      const uint8_t* w = a.w + static_cast<size_t>(o / K::kRows) * a.row_bytes;
      float* yo = a.y + (o - a.o_begin);
      if constexpr (UnpacksGroups<K>) {
        if (unpacked) K::unpack(w, nb, scratch);
      }
      row_tiles<K::kMaxTile>(rc, rce, max_tile, [&]<int NR>(int64_t r) {
        float* out = yo + (r - a.r_begin) * a.y_stride;
        if constexpr (UnpacksGroups<K>) {
          if (unpacked) return K::template tile_unpacked<NR>(w, scratch, *a.x, r, nb, out, a.y_stride);
        }
        if (r == rc) {
          K::template tile<NR, true>(w, *a.x, r, nb, out, a.y_stride);
        } else {
          K::template tile<NR, false>(w, *a.x, r, nb, out, a.y_stride);
        }
      });
    }
  }
}

// Kernels of one path, indexed by DType id; null where the path has none.
// `packed` take weights in the interleaved layout of qgemm_packed.h: there
// GemmArgs::w is the whole packed matrix, row_bytes the bytes of one group
// of 16 rows, and o_begin, o_end are multiples of 16.
struct KernelTable {
  const char* name;
  GemmFn fn[kDTypeIdLimit];
  GemmFn packed[kDTypeIdLimit];
};

// The table qgemm runs for `isa`.
const KernelTable& kernel_table(CpuIsa isa);

// Software prefetch of a weight stream, for kernels that read blocks
// of kBlockBytes in order: step `step` of kSteps per block asks for its share
// of the bytes kAhead on (two blocks, at least 4 KiB). A core that computes
// between its loads keeps too few misses in flight, and the hardware
// prefetchers stop at each 4 KiB page: one row of packed Q4_K from DRAM ran
// at 71% of the one-thread read probe without this (10.2 GB/s), at 99% with
// it (13.7). Past the end of the weights it asks for lines that are never
// used; a prefetch does not fault. Always inlined: GCC counts a prefetch as
// no side effect, so an out-of-line body of prefetches alone is "const" to it
// and calls to it are deleted (as happened to kv_attention.cpp's).
template <size_t kBlockBytes, int kSteps = 1, size_t kAhead = std::max<size_t>(2 * kBlockBytes, 4096)>
[[gnu::always_inline]] inline void prefetch_step(const uint8_t* block, int step = 0) {
  constexpr size_t kShare = (kBlockBytes / kSteps + 63) / 64 * 64;
  const uintptr_t q = reinterpret_cast<uintptr_t>(block) + kAhead + kShare * static_cast<size_t>(step);
  for (size_t k = 0; k < kShare; k += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(q + k), 0, kPrefetchLocality);
  }
}

// How far ahead a tile of NR activation rows prefetches blocks of
// kBlockBytes: tiles of 1-2 rows two blocks (at least 4 KiB), larger ones
// four blocks and at least 16 KiB. Packed Q4_K 4 rows, one thread from
// DRAM, 2 blocks (4.6 KiB) against 16 KiB: 30.4-30.5 against 36.9-37.9
// GB/s; the 1-2 row tiles ran 4-10% slower at 16 KiB. The file-layout tiles
// too: AVX-512 4 rows, one thread, Q6_K 21.3-21.5 -> 27.7-28.4 GB/s, Q4_K
// 18.1 -> 20.1-20.4, Q8_0 18.0-18.7 -> 20.0-20.3.
template <int NR, size_t kBlockBytes>
inline constexpr size_t kTileAhead =
    NR > 2 ? std::max<size_t>(4 * kBlockBytes, 16384) : std::max<size_t>(2 * kBlockBytes, 4096);

// prefetch_step at the distance of a tile of NR activation rows.
template <int NR, size_t kBlockBytes, int kSteps = 1>
[[gnu::always_inline]] inline void prefetch_tile_step(const uint8_t* block, int step = 0) {
  prefetch_step<kBlockBytes, kSteps, kTileAhead<NR, kBlockBytes>>(block, step);
}

// Offsets inside one packed block of 16 rows (see qgemm_packed.h).
struct PackedQ4K {
  static constexpr size_t kD = 0, kDmin = 32, kSc = 64, kMin = 192, kQs = 320, kBytes = 2368;
};
struct PackedQ6K {
  static constexpr size_t kD = 0, kSc = 32, kQl = 288, kQh = 2336, kBytes = 3360;
};
// Q5_K: Q4_K's layout, then the 5th bits (qgemm_packed.h).
struct PackedQ5K : PackedQ4K {
  static constexpr size_t kQh = PackedQ4K::kBytes, kBytes = kQh + 512;
};
struct PackedIQ4XS {
  static constexpr size_t kD = 0, kSc = 32, kQs = 192, kBytes = 2240;
};
struct PackedQ8_0 {
  static constexpr size_t kD = 0, kQs = 256, kBytes = 4352;
};
struct PackedQ4_0 {
  static constexpr size_t kD = 0, kQs = 256, kBytes = 2304;
};
struct PackedQ2K {
  static constexpr size_t kD = 0, kDmin = 32, kSc = 64, kQs = 320, kBytes = 1344;
};
struct PackedQ3K {
  static constexpr size_t kD = 0, kSc = 32, kQs = 320, kHm = 1344, kBytes = 1856;
};
static_assert(PackedQ2K::kQs == PackedQ3K::kQs, "the Q2_K and Q3_K kernels share the low-bit decoding");

// The packed layout of each packable type.
template <DType kType>
struct PackedLayoutOf;
template <> struct PackedLayoutOf<DType::kQ4_K> { using type = PackedQ4K; };
template <> struct PackedLayoutOf<DType::kQ5_K> { using type = PackedQ5K; };
template <> struct PackedLayoutOf<DType::kQ6_K> { using type = PackedQ6K; };
template <> struct PackedLayoutOf<DType::kIQ4_XS> { using type = PackedIQ4XS; };
template <> struct PackedLayoutOf<DType::kQ8_0> { using type = PackedQ8_0; };
template <> struct PackedLayoutOf<DType::kQ4_0> { using type = PackedQ4_0; };
template <> struct PackedLayoutOf<DType::kQ2_K> { using type = PackedQ2K; };
template <> struct PackedLayoutOf<DType::kQ3_K> { using type = PackedQ3K; };
template <DType kType>
using PackedLayout = typename PackedLayoutOf<kType>::type;

// Q2_K, Q3_K and Q6_K: where the scale of 16-element sub-block s (0..15) of
// row `lane` lies in a packed block's sc[8][16][2] (the scales of sub-blocks
// 2j and 2j + 1 side by side per row).
inline size_t packed_sub_scale(int s, int lane) { return static_cast<size_t>(32 * (s / 2) + 2 * lane + s % 2); }

// Q2_K/Q3_K: the low 2 bits of quant l (0..15) of 16-element sub-block
// 2j + u, row `lane`, in the packed block p (kQs as PackedQ2K's and PackedQ3K's).
inline int packed_q23k_low(const uint8_t* p, int j, int u, int lane, int l) {
  return (p[PackedQ2K::kQs + 128 * j + 64 * u + 4 * lane + l % 4] >> (2 * (l / 4))) & 3;
}
// Q3_K: the hmask bit of that quant.
inline int packed_q3k_high(const uint8_t* p, int j, int u, int lane, int l) {
  return (p[PackedQ3K::kHm + 64 * j + 4 * lane + l % 4] >> (4 * u + l / 4)) & 1;
}

// Quant l (0..31) of row `lane` in one sub-block's nibble array of a packed
// block (qgemm_packed.h: byte [l / 8][lane][l % 4], low nibble for l % 8 < 4).
inline int packed_nibble(const uint8_t* qs, int lane, int l) {
  const uint8_t byte = qs[64 * (l / 8) + 4 * lane + (l % 4)];
  return (l % 8 < 4) ? (byte & 0xF) : (byte >> 4);
}

// The IQ4_NL codebook + 128, unsigned, for vpshufb lookups whose results
// feed vpdpbusd (the packed IQ4_XS tiles take the offset back out with the
// activations' block sums).
struct alignas(16) IQ4NLPlus128 {
  uint8_t v[16];
};
inline constexpr IQ4NLPlus128 kIQ4NLPlus128 = [] {
  IQ4NLPlus128 t{};
  for (int i = 0; i < 16; ++i) t.v[i] = uint8_t(kValuesIQ4NL[i] + 128);
  return t;
}();

// AMX tile configuration (palette 1), the 64 bytes LDTILECFG reads: bytes
// per row and rows of tile registers 0..15 (unused ones zero).
struct alignas(64) AmxTileConfig {
  uint8_t palette = 0;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(AmxTileConfig) == 64);
// The tile registers the AMX kernels use: C accumulates, A1 x B1 and A2 x B2
// are its dot products.
inline constexpr int kAmxC = 0, kAmxA1 = 1, kAmxB1 = 2, kAmxA2 = 3, kAmxB2 = 4;
// Activation rows below which a packed product stays on the AVX-512 kernel
// (one full tile; a smaller batch pads A with zero rows).
inline constexpr int64_t kAmxMinRows = 16;

const KernelTable& scalar_kernels();
// vnni: the packed tiles on VEX-encoded VNNI (only when the CPU has avx_vnni).
const KernelTable& avx2_kernels(bool vnni);
// vnni: use vpdpwssd/vpdpbusd; bf16: use vdpbf16ps for bf16 weights. Each
// flag may only be set when the CPU has the feature.
const KernelTable& avx512_kernels(bool vnni, bool bf16);

// Separately compiled pieces of the tables (each file has its own target flags).
namespace avx2 { void fill_table(KernelTable& t); }
namespace avx2_vnni { void fill_table(KernelTable& t); }
namespace avx512_plain { void fill_table(KernelTable& t); }
namespace avx512_vnni { void fill_table(KernelTable& t); }
GemmFn avx512_bf16_kernel();
// The AMX-INT8 packed kernels (qgemm_amx_kernels.inc) on the tile
// instructions, and on a scalar model of them (tests); null for a type
// without one, and amx_hw's all null when the compiler lacks AMX.
namespace amx_hw { GemmFn packed_kernel(DType t); }
namespace amx_emulated { GemmFn packed_kernel(DType t); }
// The AMX path's table: the AVX-512 one, with each packed type whose tile
// kernel (emulated: the scalar model's) passes amx_agrees() against the
// AVX-512 kernel taking the products of kAmxMinRows rows or more.
const KernelTable& amx_kernels(bool emulated);
// Whether `candidate` gives the same bits as `reference` on packed
// weights of type t, random but fixed, for 1..40 activation rows (the
// check amx_kernels() runs once before it trusts a tile kernel).
bool amx_agrees(DType t, GemmFn candidate, GemmFn reference);

// Q4_K/Q5_K: 8 six-bit scales and mins packed in 12 bytes (see quant_blocks.h).
inline void unpack_scale_min_k4(const uint8_t* q, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = q[j] & 63;
    m[j] = q[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The same 8 scales and 8 mins as bytes of two words (byte j = sub-block j),
// computed in registers: SIMD kernels move them into a vector without a
// store-to-load round trip.
inline void scale_min_k4_words(const uint8_t* q, uint64_t* sc, uint64_t* m) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, q, 4);
  std::memcpy(&w1, q + 4, 4);
  std::memcpy(&w2, q + 8, 4);
  const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
  const uint32_t sc_hi = (w2 & k4) | (((w0 >> 6) & k2) << 4);
  const uint32_t m_hi = ((w2 >> 4) & k4) | (((w1 >> 6) & k2) << 4);
  *sc = (w0 & k6) | (static_cast<uint64_t>(sc_hi) << 32);
  *m = (w1 & k6) | (static_cast<uint64_t>(m_hi) << 32);
}

// Q3_K: the 16 six-bit sub-block scales, stored +32 (0..63), as bytes of
// four words (byte j of the 16 = sub-block j): low 4 bits in the nibbles of
// scales[0..7], top 2 bits in the bit pairs of scales[8..11] (quant_blocks.h).
inline void q3k_scale_words(const uint8_t* q, uint32_t w[4]) {
  uint32_t a0, a1, a2;
  std::memcpy(&a0, q, 4);
  std::memcpy(&a1, q + 4, 4);
  std::memcpy(&a2, q + 8, 4);
  const uint32_t k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
  w[0] = (a0 & k4) | ((a2 & k2) << 4);
  w[1] = (a1 & k4) | (((a2 >> 2) & k2) << 4);
  w[2] = ((a0 >> 4) & k4) | (((a2 >> 4) & k2) << 4);
  w[3] = ((a1 >> 4) & k4) | (((a2 >> 6) & k2) << 4);
}

// IQ4_XS: the 8 sub-block scales, stored +32 (0..63), as bytes of a word.
inline uint64_t iq4xs_scale_word(uint16_t scales_h, const uint8_t* scales_l) {
  uint32_t l;
  std::memcpy(&l, scales_l, 4);
  uint64_t y = l;  // nibble j -> byte j
  y = (y | (y << 16)) & 0x0000FFFF0000FFFFull;
  y = (y | (y << 8)) & 0x00FF00FF00FF00FFull;
  y = (y | (y << 4)) & 0x0F0F0F0F0F0F0F0Full;
  uint64_t h = scales_h;  // 2-bit field j -> byte j
  h = (h | (h << 24)) & 0x000000FF000000FFull;
  h = (h | (h << 12)) & 0x000F000F000F000Full;
  h = (h | (h << 6)) & 0x0303030303030303ull;
  return y | (h << 4);
}

// IQ4_XS sub-block scale j (6 bits stored +32), as a signed value.
inline int iq4xs_scale(uint16_t scales_h, const uint8_t* scales_l, int j) {
  return (((scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((scales_h >> (2 * j)) & 3) << 4)) - 32;
}

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The activations' sums of 16 of sub-blocks 2k and 2k + 1 of row r (k = 8 *
// block + step) as one int32: the int16 pair a SIMD lane multiplies by a
// pair of per-row values.
inline int32_t bsum_pair(const ActPack& x, int64_t r, int64_t k) {
  int32_t v;
  std::memcpy(&v, x.bsums(r) + 2 * k, 4);
  return v;
}

// Position of Q4_K/Q5_K sub-block j inside an ActOrder::kQ4KPairs block (the
// order 0 2 1 3 4 6 5 7 is its own inverse).
inline constexpr int kQ4KPairPos[8] = {0, 2, 1, 3, 4, 6, 5, 7};

}  // namespace strata::qgemm_detail
