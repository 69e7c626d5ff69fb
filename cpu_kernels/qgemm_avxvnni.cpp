// AVX2 packed qgemm tiles on VEX-encoded VNNI (vpdpbusd/vpdpwssd on ymm):
// Alder Lake, Sapphire Rapids and later Intel cores, which run the AVX2 path
// when AVX-512 is absent or not chosen. The file-layout kernels stay the AVX2 ones.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "cpu_kernels/qgemm_internal.h"

#define STRATA_QGEMM_AVXVNNI 1

namespace strata::qgemm_detail::avx2_vnni {
namespace {

#include "cpu_kernels/qgemm_avx2_packed.inc"

}  // namespace

void fill_table(KernelTable& t) { fill_packed(t); }

}  // namespace strata::qgemm_detail::avx2_vnni
