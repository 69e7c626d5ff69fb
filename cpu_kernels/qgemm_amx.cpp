// AMX-INT8 packed qgemm kernels on the tile instructions (Sapphire Rapids and
// later; the OS grant is requested in cpu_isa.cpp). Built with AMX target
// flags where the compiler has them (STRATA_HAVE_AMX), else the kernels are
// absent and the AMX path runs the AVX-512 ones.
#include <cstddef>
#include <cstdint>

#include "cpu_kernels/qgemm_internal.h"

#if STRATA_HAVE_AMX
#include <immintrin.h>

namespace strata::qgemm_detail::amx_hw {
namespace {

// GCC's tile load and LDTILECFG asm name only a pointer (LDTILECFG its first
// 8 bytes) as what they read, so the compiler could delay or drop stores
// they depend on: the configuration goes in as a whole 64-byte operand, and
// each tile load follows a compiler barrier (it emits no instruction).
inline void barrier() { __asm__ __volatile__("" ::: "memory"); }

// The intrinsics name their tile register by a literal, hence one function per role.
struct Tiles {
  static void config(const AmxTileConfig& c) { __asm__ __volatile__("ldtilecfg %0" ::"m"(c)); }
  static void release() { _tile_release(); }
  static void zero_c() { _tile_zero(0); }
  static void load_a1(const void* p, size_t stride) {
    barrier();
    _tile_loadd(1, p, stride);
  }
  static void load_b1(const void* p, size_t stride) {
    barrier();
    _tile_loadd(2, p, stride);
  }
  static void load_a2(const void* p, size_t stride) {
    barrier();
    _tile_loadd(3, p, stride);
  }
  static void load_b2(const void* p, size_t stride) {
    barrier();
    _tile_loadd(4, p, stride);
  }
  static void dot1() { _tile_dpbssd(0, 1, 2); }
  static void dot2() { _tile_dpbssd(0, 3, 4); }
  static void store_c(int32_t* p) { _tile_stored(0, p, 64); }
};
static_assert(kAmxC == 0 && kAmxA1 == 1 && kAmxB1 == 2 && kAmxA2 == 3 && kAmxB2 == 4);

}  // namespace
}  // namespace strata::qgemm_detail::amx_hw

#define STRATA_QGEMM_NS amx_hw
#include "cpu_kernels/qgemm_amx_kernels.inc"

#else

namespace strata::qgemm_detail::amx_hw {
GemmFn packed_kernel(DType) { return nullptr; }
}  // namespace strata::qgemm_detail::amx_hw

#endif
