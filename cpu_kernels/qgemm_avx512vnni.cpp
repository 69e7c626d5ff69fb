// AVX-512 qgemm kernels with VNNI (vpdpwssd, vpdpbusd): Cascade Lake, Ice
// Lake, Sapphire Rapids, Zen 4 and later. Same kernels as the plain file.
#define STRATA_QGEMM_VNNI 1
#define STRATA_QGEMM_NS avx512_vnni
#include "cpu_kernels/qgemm_avx512_kernels.inc"
