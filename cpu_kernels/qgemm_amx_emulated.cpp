// The AMX packed qgemm kernels on a scalar model of the tile registers and
// TDPBSSD, built with AVX-512 flags only: on a CPU with AVX-512 but no AMX
// the tests run every line of the tile kernels (layouts, offsets, scaling)
// except the tile instructions, against the AVX-512 kernels. The model
// faults (STRATA_CHECK) where the hardware would: a product whose tile shapes
// do not fit together.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cpu_kernels/qgemm_internal.h"
#include "runtime/base/check.h"

namespace strata::qgemm_detail::amx_emulated {
namespace {

struct Model {
  AmxTileConfig cfg;
  uint8_t t[8][16][64];
};

Model& model() {
  static thread_local Model m{};
  return m;
}

void load(int t, const void* p, size_t stride) {
  Model& m = model();
  std::memset(m.t[t], 0, sizeof m.t[t]);
  for (int r = 0; r < m.cfg.rows[t]; ++r) {
    std::memcpy(m.t[t][r], static_cast<const uint8_t*>(p) + r * stride, m.cfg.colsb[t]);
  }
}

// TDPBSSD c += a b: c[m][n] += sum over k < colsb(a) / 4 and i < 4 of
// int8 a[m][4k + i] * int8 b[k][4n + i].
void dot(int c, int a, int b) {
  Model& m = model();
  const AmxTileConfig& g = m.cfg;
  STRATA_CHECK(g.palette == 1 && g.rows[a] == g.rows[c] && g.colsb[a] / 4 == g.rows[b] && g.colsb[b] == g.colsb[c]);
  for (int i = 0; i < g.rows[c]; ++i) {
    for (int n = 0; n < g.colsb[c] / 4; ++n) {
      int32_t s;
      std::memcpy(&s, m.t[c][i] + 4 * n, 4);
      for (int k = 0; k < g.colsb[a] / 4; ++k) {
        for (int e = 0; e < 4; ++e) {
          s += int32_t(int8_t(m.t[a][i][4 * k + e])) * int32_t(int8_t(m.t[b][k][4 * n + e]));
        }
      }
      std::memcpy(m.t[c][i] + 4 * n, &s, 4);
    }
  }
}

struct Tiles {
  static void config(const AmxTileConfig& c) {
    model().cfg = c;
    std::memset(model().t, 0, sizeof model().t);
  }
  static void release() { model() = Model{}; }
  static void zero_c() { std::memset(model().t[kAmxC], 0, sizeof model().t[kAmxC]); }
  static void load_a1(const void* p, size_t stride) { load(kAmxA1, p, stride); }
  static void load_b1(const void* p, size_t stride) { load(kAmxB1, p, stride); }
  static void load_a2(const void* p, size_t stride) { load(kAmxA2, p, stride); }
  static void load_b2(const void* p, size_t stride) { load(kAmxB2, p, stride); }
  static void dot1() { dot(kAmxC, kAmxA1, kAmxB1); }
  static void dot2() { dot(kAmxC, kAmxA2, kAmxB2); }
  static void store_c(int32_t* p) {
    const Model& m = model();
    for (int r = 0; r < m.cfg.rows[kAmxC]; ++r) std::memcpy(p + 16 * r, m.t[kAmxC][r], m.cfg.colsb[kAmxC]);
  }
};

}  // namespace
}  // namespace strata::qgemm_detail::amx_emulated

#define STRATA_QGEMM_NS amx_emulated
#include "cpu_kernels/qgemm_amx_kernels.inc"
