// Scalar reference (de)quantizers for GGUF tensor types, bit-exact with ggml's
// C reference. They are the oracle every SIMD/CUDA path is tested against.
#pragma once

#include <cstdint>

#include "runtime/base/dtype.h"
#include "runtime/base/status.h"

namespace strata {

// True for the types dequantize_row_ref decodes: f32, f16, bf16, q4_0, q4_1,
// q5_0, q5_1, q8_0, q8_1, q2_k..q8_k, iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s,
// iq1_s, iq1_m, iq4_nl, iq4_xs, tq1_0, tq2_0, mxfp4, nvfp4, q1_0.
bool can_dequantize(DType t);

// Decode one row of `n_elems` elements of type `t`.
//   src: dtype_row_bytes(t, n_elems) bytes laid out as GGUF stores them; any
//        alignment (blocks are copied out before they are read).
//   dst: n_elems floats. src and dst must not overlap.
// n_elems must be >= 0 and a multiple of the block size, else invalid_argument;
// a type with no decoder gives unsupported. Output equals ggml's
// dequantize_row_* bit for bit (same operation order, no FMA contraction).
// Assumes a little-endian host, as GGUF files are little-endian.
Status dequantize_row_ref(DType t, const void* src, float* dst, int64_t n_elems);

// True for the types quantize_row_ref encodes: f32, f16, bf16, q4_0, q4_1,
// q5_0, q5_1, q8_0, q8_1, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k, tq1_0, tq2_0,
// mxfp4, q1_0.
bool can_quantize(DType t);

// Encode one row of `n_elems` floats as type `t`.
//   src: n_elems floats; NaN/inf are kept by f32/f16/bf16 and rejected
//        (invalid_argument, dst untouched) by every block type.
//   dst: dtype_row_bytes(t, n_elems) bytes.
// n_elems must be >= 0 and a multiple of the block size, else invalid_argument;
// a type with no encoder gives unsupported. Algorithms are ggml's
// quantize_row_*_ref without importance weights: the legacy types and bf16
// match ggml (and gguf-py) byte for byte, the k-quants run ggml's iterative
// scale/min search (make_qkx2_quants, make_qx_quants, make_q3_quants).
Status quantize_row_ref(DType t, const float* src, void* dst, int64_t n_elems);

}  // namespace strata
