// Softmax over one row of floats.
#pragma once

#include <cstdint>

namespace strata {

// In place: x[i] = exp(x[i] - max) / sum_j exp(x[j] - max), n >= 1.
// Entries equal to -inf get probability 0 (masked); at least one entry must
// be finite. The sum is accumulated in double.
void softmax_inplace(float* x, int64_t n);

}  // namespace strata
