// RoPE as a layer: parameters from a model's hyper-parameters, and rotation
// of the heads of every token of a batch at that token's position.
#pragma once

#include <cstdint>

#include "cpu_kernels/rope.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/arch.h"

namespace strata {

// The RoPE of a model: n_rot dims, freq_base, and rope.scaling.* (linear:
// freq_scale = 1/factor; yarn: also ext_factor 1 and the original context).
// freq_factors: n_rot/2 floats (llama 3.1 rope_freqs.weight) or null.
RopeParams rope_params_from(const HParams& hp, RopeStyle style, const float* freq_factors);

// For each token t: rotate n_heads heads starting at x + t*row_stride + offset,
// head_stride floats apart, at position places.pos[t].
void rope_rows(const RopeParams& p, const TokenPlaces& places, float* x, int64_t row_stride, int64_t offset,
               int64_t n_heads, int64_t head_stride);

}  // namespace strata
