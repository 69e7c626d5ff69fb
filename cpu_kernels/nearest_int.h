// Round to nearest, ties to even, by adding 1.5 * 2^23: the float's mantissa
// then holds the integer. Exact for |x| < 2^22, whatever the rounding-mode
// setting, and free of float-to-int conversion (which a NaN would make
// undefined; a NaN gives some int here). Plain arithmetic, so loops over it
// vectorize.
#pragma once

#include <cstdint>
#include <cstring>

namespace strata {

inline int nearest_int(float x) {
  const float v = x + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace strata
