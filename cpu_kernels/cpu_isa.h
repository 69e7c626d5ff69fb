// Run-time CPU feature detection and the choice of kernel path (scalar, AVX2,
// AVX-512, AMX) for the quantized matrix products in qgemm.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace strata {

// Kernel paths, weakest first. kAvx512 needs F+BW+VL; it uses VNNI (vpdpwssd,
// vpdpbusd) and BF16 (vdpbf16ps) when the CPU has them.
enum class CpuIsa : uint8_t { kScalar, kAvx2, kAvx512, kAmx };

// What the CPU and the OS together allow: a flag is true only when cpuid
// reports the instructions and xgetbv shows that the OS saves the register
// state they use (YMM for AVX, opmask/ZMM for AVX-512, tile data for AMX; on
// Linux AMX also needs the arch_prctl(ARCH_REQ_XCOMP_PERM) grant, requested
// once during detection).
struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 + FMA + F16C
  bool avx512 = false;       // AVX-512 F, BW, VL (+DQ, CD on every such CPU)
  bool avx512_vnni = false;  // vpdpbusd / vpdpwssd on zmm
  bool avx512_bf16 = false;  // vdpbf16ps
  bool avx_vnni = false;     // VEX-encoded VNNI (ymm), e.g. Alder Lake
  bool amx_int8 = false;     // tile data granted and AMX-INT8 present
  bool amx_bf16 = false;
};

// Detected once (thread-safe) and cached, less the extensions named in the
// environment variable STRATA_CPU_DISABLE (read then; see
// disable_cpu_features; unknown names are ignored here), so that a machine
// can run the variants a CPU without them would: STRATA_CPU_DISABLE=avx_vnni
// gives the plain AVX2 tiles.
CpuFeatures detect_cpu_features();

// f without the extensions in `names`, a comma-separated list of avx_vnni,
// avx512_vnni, avx512_bf16 and amx (AMX int8 and bf16 together). Unknown
// names are appended to *unknown (comma-separated) and otherwise ignored.
CpuFeatures disable_cpu_features(CpuFeatures f, std::string_view names, std::string* unknown);

// Best path this machine supports.
CpuIsa best_cpu_isa();

// The path qgemm uses: set_cpu_isa()'s choice if one was made, else the
// environment variable STRATA_CPU_ISA (scalar|avx2|avx512|amx; read once, an
// unusable value is reported on stderr and ignored), else best_cpu_isa().
CpuIsa active_cpu_isa();

// Force a path ("scalar", "avx2", "avx512", "amx", or "auto" for the best).
// Errors: an unknown name (invalid_argument) or a path this CPU lacks
// (unsupported, e.g. "avx512: this CPU lacks avx512f"); the choice is then
// unchanged. Meant for start-up (--cpu-isa) and tests, not to be raced with
// running products.
Status set_cpu_isa(std::string_view name);

// Parse a name without changing anything; error as set_cpu_isa.
Result<CpuIsa> cpu_isa_from_name(std::string_view name);

// Why `isa` cannot run here ("this CPU lacks amx_int8"), or "" when it can.
std::string_view cpu_isa_missing(CpuIsa isa);

std::string_view cpu_isa_name(CpuIsa isa);  // "scalar", "avx2", "avx512", "amx"

// The CPU's brand string from cpuid ("Intel(R) Xeon(R) Platinum 8480+"),
// trimmed; empty where the CPU has none.
std::string cpu_brand();

}  // namespace strata
