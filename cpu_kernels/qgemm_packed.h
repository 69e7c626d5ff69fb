// Weights repacked for the SIMD width: rows interleaved in groups of 16 so
// that one 512-bit integer dot product computes 16 output rows at once, with
// the block scales already unpacked. GGUF keeps each row's blocks together,
// which makes a row-at-a-time kernel reduce across lanes and decode the
// packed 6-bit scales for every row and block; the interleaved layout does
// neither, and reads the same activations for all 16 rows.
//
// Layouts: per group of 16 rows, the group's 256-element blocks in order.
// Quant l (0..31) of 32-element sub-block j, row r, with c = l / 8 and
// t = l % 4, sits in byte [j][c][r][t] of a nibble array: low nibble when
// l % 8 < 4, high nibble otherwise.
//   Q4_K, 2368 bytes per block (37 cache lines; 2.8% more than the 16 GGUF
//   blocks it replaces, because the scales and mins are stored as bytes):
//     d[16], dmin[16]      f16 of rows 0..15
//     sc[8][16]            6-bit sub-block scale j of row r at sc[j][r]
//     m[4][16][2]          mins of sub-blocks 2p and 2p+1 of row r at m[p][r]
//     qs[8][4][16][4]      the quants as above
//   Q5_K, 2880 bytes per block (2.3% more than the 16 GGUF blocks): Q4_K's
//   2368 bytes, then
//     qh[8][16][4]         the 5th bits: byte [j][r][t] holds that of quant
//                          8c + 4u + t at bit 2c + u
//   Q8_0, 4352 bytes per 256 elements (exactly the 128 GGUF blocks; rows
//   must hold whole 256-element blocks):
//     d[8][16]             f16 scale of 32-element block j of row r at d[j][r]
//     qs[8][8][16][4]      quant 4c + t of block j, row r at qs[j][c][r][t],
//                          stored + 128 (unsigned, as vpdpbusd multiplies)
//   Q4_0, 2304 bytes per 256 elements (exactly the 128 GGUF blocks; rows
//   must hold whole 256-element blocks). Its nibbles keep GGUF's order:
//     d[8][16]             f16 scale of 32-element block j of row r at d[j][r]
//     qs[8][4][16][4]      byte [j][c][r][t] is GGUF qs[4c + t] of block j,
//                          row r: element 4c + t in the low nibble, 16 + 4c + t
//                          in the high one (unsigned 0..15, the -8 applied
//                          through the activations' block sums)
//   Q6_K, 3360 bytes per block (exactly the 16 GGUF blocks):
//     d[16]                f16
//     sc[8][16][2]         int8 scales of 16-element sub-blocks 2j, 2j+1 of row r
//     ql[8][4][16][4]      the low 4 bits of the quants as above
//     qh[8][2][16][4]      their high 2 bits: byte [j][c / 2][r][t] holds those
//                          of quants 8c + t and 8c + 4 + t at bits 4 (c % 2)
//                          and 4 (c % 2) + 2
//   IQ4_XS, 2240 bytes per block (2.9% more than the 16 GGUF blocks: the
//   scales as bytes, and 32 bytes of padding that align the quants):
//     d[16]                f16
//     sc[8][16]            6-bit scale ls of sub-block j of row r (the value
//                          is ls - 32)
//     pad[32]
//     qs[8][4][16][4]      the 4-bit indices into the IQ4_NL values as above,
//                          quant l of sub-block j being element 32 j + l
//   Q2_K, 1344 bytes per block (exactly the 16 GGUF blocks). Element
//   32 j + 16 u + 4 c + t (u < 2, c, t < 4) is quant 4 c + t of 16-element
//   sub-block 2 j + u:
//     d[16], dmin[16]      f16 of rows 0..15
//     sc[8][16][2]         GGUF scale byte (scale | min << 4) of sub-blocks
//                          2j, 2j+1 of row r
//     qs[8][2][16][4]      byte [j][u][r][t] holds quant 4c + t of sub-block
//                          2j + u at bits 2c, 2c + 1
//   Q3_K, 1856 bytes per block (5.5% more than the 16 GGUF blocks: the
//   scales as bytes, and 32 bytes of padding that align the quants). Its
//   quants are q = low 2 bits | hmask bit << 2 (0..7), the weight q - 4:
//     d[16]                f16
//     sc[8][16][2]         int8 scales (-32..31) of sub-blocks 2j, 2j+1 of row r
//     pad[32]
//     qs[8][2][16][4]      the low 2 bits as Q2_K's
//     hm[8][16][4]         byte [j][r][t] holds the hmask bit of quant 4c + t
//                          of sub-block 2j + u at bit 4u + c
// Group g starts at g * nb * (block bytes) (nb = n_in / 256). Packing is
// exact: the GGUF rows come back bit for bit from qgemm_unpack.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/qgemm.h"
#include "runtime/base/dtype.h"

namespace strata {

inline constexpr int64_t kPackRows = 16;

// True when a [n_out x n_in] matrix of type w can be packed: Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K, Q8_0, Q4_0 or IQ4_XS with n_out a multiple of 16 and n_in
// of 256.
bool qgemm_packable(DType w, int64_t n_in, int64_t n_out);

// True when `isa` has a SIMD kernel for packed weights of type w (the scalar
// kernel exists on every path, but packing only pays where this holds).
bool qgemm_packed_fast(CpuIsa isa, DType w);

// Whether the runtime repacks such a matrix: packable, and the active CPU
// path has a SIMD kernel for the packed type.
bool qgemm_repacks(DType w, int64_t n_in, int64_t n_out);

// Bytes of the packed form of rows [0, n_rows) (n_rows a multiple of 16).
size_t qgemm_packed_bytes(DType w, int64_t n_in, int64_t n_rows);

// Packs GGUF rows [o_begin, o_end) of `w` (row o at o * row bytes) into their
// place in `dst` (the whole packed matrix). o_begin and o_end are multiples
// of 16; disjoint ranges may be packed by different threads at once.
void qgemm_pack(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, void* dst);

// The inverse: GGUF rows [o_begin, o_end) of the packed matrix, written to
// dst as GGUF stores them (row o at (o - o_begin) * row bytes).
void qgemm_unpack(DType w_type, const void* packed, int64_t n_in, int64_t o_begin, int64_t o_end, void* dst);

// qgemm_rows and qgemm_swiglu_rows on packed weights (x prepared for w_type,
// as for the GGUF form). o_begin and o_end are multiples of 16. The integer
// block sums are the GGUF kernels' exactly; on the scalar path the outputs
// equal qgemm_rows' bit for bit, on SIMD paths up to float rounding of the
// per-block accumulation. Range- and batch-invariant like qgemm_rows.
void qgemm_packed_rows(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x,
                       float* y, int64_t y_stride);
void qgemm_packed_rows_isa(CpuIsa isa, DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end,
                           const ActPack& x, float* y, int64_t y_stride);
void qgemm_packed_swiglu_rows(DType w_type, const void* gate, const void* up, int64_t n_in, int64_t o_begin,
                              int64_t o_end, const ActPack& x, float* h, int64_t h_stride);
void qgemm_packed_swiglu_rows_isa(CpuIsa isa, DType w_type, const void* gate, const void* up, int64_t n_in,
                                  int64_t o_begin, int64_t o_end, const ActPack& x, float* h, int64_t h_stride);

}  // namespace strata
