// CPU feature detection (cpuid + xgetbv, and Linux's AMX permission request)
// and the process-wide kernel path choice with its overrides.
#include "cpu_kernels/cpu_isa.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define STRATA_X86 1
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace strata {
namespace {

#if defined(STRATA_X86)
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) return Regs{};
  return r;
}

uint64_t xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(unsigned v, int i) { return (v >> i) & 1u; }

// Linux keeps AMX tile data off until a process asks (kernel 5.16+); without
// the grant the first tile instruction faults.
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtileData = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtileData) == 0;
#else
  return false;
#endif
}

CpuFeatures detect_uncached() {
  CpuFeatures f;
  const Regs l0 = cpuid(0, 0);
  if (l0.a < 7) return f;
  const Regs l1 = cpuid(1, 0);
  const Regs l7 = cpuid(7, 0);
  const Regs l71 = l7.a >= 1 ? cpuid(7, 1) : Regs{};
  if (!bit(l1.c, 27)) return f;  // OSXSAVE: xgetbv usable
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;         // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;       // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_tile = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  const bool avx = bit(l1.c, 28), fma = bit(l1.c, 12), f16c = bit(l1.c, 29);
  f.avx2_fma = os_ymm && avx && fma && f16c && bit(l7.b, 5);
  f.avx512 = f.avx2_fma && os_zmm && bit(l7.b, 16) && bit(l7.b, 30) && bit(l7.b, 31);
  f.avx512_vnni = f.avx512 && bit(l7.c, 11);
  f.avx512_bf16 = f.avx512 && bit(l71.a, 5);
  f.avx_vnni = f.avx2_fma && bit(l71.a, 4);
  const bool amx_tile = bit(l7.d, 24);
  if (os_tile && amx_tile && f.avx512 && request_amx_permission()) {
    f.amx_int8 = bit(l7.d, 25);
    f.amx_bf16 = bit(l7.d, 22);
  }
  return f;
}
#else
CpuFeatures detect_uncached() { return {}; }
#endif

constexpr int kNoOverride = -1;
std::atomic<int> g_override{kNoOverride};

// STRATA_CPU_ISA, read once; an unusable value is reported and ignored.
int env_override() {
  static const int v = [] {
    const char* e = std::getenv("STRATA_CPU_ISA");
    if (e == nullptr || *e == '\0') return kNoOverride;
    Result<CpuIsa> isa = cpu_isa_from_name(e);
    if (isa.is_ok() && cpu_isa_missing(*isa).empty()) return static_cast<int>(*isa);
    if (std::string_view(e) == "auto") return kNoOverride;
    const std::string why = isa.is_ok() ? std::string(e) + ": " + std::string(cpu_isa_missing(*isa))
                                        : isa.status().message();
    std::fprintf(stderr, "strata: warning: ignoring STRATA_CPU_ISA: %s\n", why.c_str());
    return kNoOverride;
  }();
  return v;
}

}  // namespace

CpuFeatures disable_cpu_features(CpuFeatures f, std::string_view names, std::string* unknown) {
  while (!names.empty()) {
    const size_t comma = names.find(',');
    const std::string_view n = names.substr(0, comma);
    names = comma == std::string_view::npos ? std::string_view() : names.substr(comma + 1);
    if (n == "avx_vnni") {
      f.avx_vnni = false;
    } else if (n == "avx512_vnni") {
      f.avx512_vnni = false;
    } else if (n == "avx512_bf16") {
      f.avx512_bf16 = false;
    } else if (n == "amx") {
      f.amx_int8 = f.amx_bf16 = false;
    } else if (!n.empty()) {
      if (!unknown->empty()) unknown->push_back(',');
      unknown->append(n);
    }
  }
  return f;
}

CpuFeatures detect_cpu_features() {
  static const CpuFeatures f = [] {
    const char* e = std::getenv("STRATA_CPU_DISABLE");
    std::string unknown;  // the tools report these (model_options)
    return disable_cpu_features(detect_uncached(), e ? e : "", &unknown);
  }();
  return f;
}

std::string cpu_brand() {
  std::string s;
#if defined(STRATA_X86)
  if (cpuid(0x80000000u, 0).a < 0x80000004u) return s;
  for (unsigned leaf = 0x80000002u; leaf <= 0x80000004u; ++leaf) {
    const Regs r = cpuid(leaf, 0);
    for (unsigned v : {r.a, r.b, r.c, r.d}) {
      for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
    }
  }
  s = s.c_str();  // up to the first NUL
  const size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  s = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
#endif
  return s;
}

std::string_view cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
    case CpuIsa::kAmx: return "amx";
  }
  return "unknown";
}

std::string_view cpu_isa_missing(CpuIsa isa) {
  const CpuFeatures f = detect_cpu_features();
  switch (isa) {
    case CpuIsa::kScalar: return "";
    case CpuIsa::kAvx2: return f.avx2_fma ? "" : "this CPU lacks avx2/fma/f16c";
    case CpuIsa::kAvx512: return f.avx512 ? "" : "this CPU lacks avx512f/bw/vl";
    case CpuIsa::kAmx: return f.amx_int8 ? "" : "this CPU lacks amx_int8 (or the OS does not grant tile data)";
  }
  return "unknown path";
}

CpuIsa best_cpu_isa() {
  const CpuFeatures f = detect_cpu_features();
  if (f.amx_int8) return CpuIsa::kAmx;
  if (f.avx512) return CpuIsa::kAvx512;
  if (f.avx2_fma) return CpuIsa::kAvx2;
  return CpuIsa::kScalar;
}

CpuIsa active_cpu_isa() {
  const int o = g_override.load(std::memory_order_relaxed);
  if (o != kNoOverride) return static_cast<CpuIsa>(o);
  const int e = env_override();
  if (e != kNoOverride) return static_cast<CpuIsa>(e);
  return best_cpu_isa();
}

Result<CpuIsa> cpu_isa_from_name(std::string_view name) {
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAmx}) {
    if (name == cpu_isa_name(isa)) return isa;
  }
  if (name == "auto") return best_cpu_isa();
  return invalid_argument("cpu isa: expected one of scalar, avx2, avx512, amx, auto, got '" + std::string(name) + "'");
}

Status set_cpu_isa(std::string_view name) {
  STRATA_ASSIGN_OR_RETURN(CpuIsa isa, cpu_isa_from_name(name));
  const std::string_view missing = cpu_isa_missing(isa);
  if (!missing.empty()) return unsupported(std::string(name) + ": " + std::string(missing));
  g_override.store(static_cast<int>(isa), std::memory_order_relaxed);
  return Status::ok();
}

}  // namespace strata
