// The AMX path's kernel table: the AVX-512 kernels, with the packed products
// of kAmxMinRows activation rows or more on the AMX tile kernels of each type
// that first computes the same bits as the AVX-512 kernel on this CPU.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_kernels/qgemm_internal.h"
#include "runtime/base/half.h"
#include "runtime/base/rng.h"

namespace strata::qgemm_detail {
namespace {

// Small batches (decode) stay on AVX-512, which reads the weights at memory
// speed already; both give the same bits, so the switch is invisible.
template <DType kType, bool kEmulated>
void amx_or_avx512(const GemmArgs& a) {
  static const GemmFn tiles = kEmulated ? amx_emulated::packed_kernel(kType) : amx_hw::packed_kernel(kType);
  static const GemmFn small = [] {
    const CpuFeatures f = detect_cpu_features();
    return avx512_kernels(f.avx512_vnni, f.avx512_bf16).packed[static_cast<int>(kType)];
  }();
  (a.r_end - a.r_begin >= kAmxMinRows ? tiles : small)(a);
}

template <bool kEmulated>
GemmFn wrapper(DType t) {
  switch (t) {
    case DType::kQ4_K: return amx_or_avx512<DType::kQ4_K, kEmulated>;
    case DType::kQ5_K: return amx_or_avx512<DType::kQ5_K, kEmulated>;
    case DType::kQ6_K: return amx_or_avx512<DType::kQ6_K, kEmulated>;
    case DType::kQ8_0: return amx_or_avx512<DType::kQ8_0, kEmulated>;
    case DType::kQ4_0: return amx_or_avx512<DType::kQ4_0, kEmulated>;
    case DType::kIQ4_XS: return amx_or_avx512<DType::kIQ4_XS, kEmulated>;
    default: return nullptr;
  }
}

KernelTable make_amx(bool emulated) {
  const CpuFeatures f = detect_cpu_features();
  KernelTable t = avx512_kernels(f.avx512_vnni, f.avx512_bf16);
  t.name = emulated ? "amx-emulated" : "amx";
  if (!f.avx512 || (!emulated && !f.amx_int8)) return t;
  for (int i = 0; i < static_cast<int>(kDTypeIdLimit); ++i) {
    const DType type = static_cast<DType>(i);
    const GemmFn tiles = emulated ? amx_emulated::packed_kernel(type) : amx_hw::packed_kernel(type);
    if (tiles == nullptr || t.packed[i] == nullptr) continue;
    if (!amx_agrees(type, tiles, t.packed[i])) {
      std::fprintf(stderr, "strata: warning: the AMX kernel for %s disagrees with AVX-512 on this CPU; using AVX-512\n",
                   std::string(dtype_name(type)).c_str());
      continue;
    }
    t.packed[i] = emulated ? wrapper<true>(type) : wrapper<false>(type);
  }
  return t;
}

}  // namespace

bool amx_agrees(DType t, GemmFn candidate, GemmFn reference) {
  constexpr int64_t kIn = 512, kOut = 32, kRows = 40;
  Xoshiro256 rng(0x5eed0000u + static_cast<uint64_t>(t));
  const auto uniform = [&](double lo, double hi) { return static_cast<float>(lo + (hi - lo) * rng.uniform()); };
  const size_t rb = static_cast<size_t>(dtype_row_bytes(t, kIn).value_or(0));
  std::vector<uint8_t> w(rb * kOut), p(qgemm_packed_bytes(t, kIn, kOut));
  // Random GGUF blocks (every quant and scale value can occur) with small
  // finite f16 scales.
  rng.fill(w.data(), w.size());
  const DTypeTraits& tr = dtype_traits(t);
  for (size_t b = 0; b < w.size() / tr.block_bytes; ++b) {
    uint8_t* blk = w.data() + b * tr.block_bytes;
    const uint16_t d = f32_to_f16(uniform(0.001, 0.02)), dmin = f32_to_f16(uniform(0, 0.005));
    std::memcpy(blk + (t == DType::kQ6_K ? 208 : 0), &d, 2);
    if (t == DType::kQ4_K || t == DType::kQ5_K) std::memcpy(blk + 2, &dmin, 2);
  }
  qgemm_pack(t, w.data(), kIn, 0, kOut, p.data());
  std::vector<float> v(static_cast<size_t>(kRows * kIn));
  for (float& e : v) e = uniform(-1, 1) * uniform(0.1, 2);
  ActPack x;
  act_pack_prepare(x, t, kIn, kRows);
  act_pack_rows(x, v.data(), kIn, 0, kRows);
  const size_t group_bytes = qgemm_packed_bytes(t, kIn, kPackRows);
  const int64_t ranges[][4] = {{0, kRows, 0, kOut}, {0, 16, 16, kOut}, {3, 4, 0, kOut}, {7, 30, 0, 16}};
  for (const auto& rg : ranges) {
    std::vector<float> y0(static_cast<size_t>(kRows * kOut), 1.0f), y1 = y0;
    const GemmArgs a0{p.data(), group_bytes, kIn, rg[2], rg[3], &x, rg[0], rg[1], y0.data(), kOut};
    GemmArgs a1 = a0;
    a1.y = y1.data();
    candidate(a0);
    reference(a1);
    if (std::memcmp(y0.data(), y1.data(), y0.size() * sizeof(float)) != 0) return false;
  }
  return true;
}

const KernelTable& amx_kernels(bool emulated) {
  if (emulated) {
    static const KernelTable t = make_amx(true);
    return t;
  }
  static const KernelTable t = make_amx(false);
  return t;
}

}  // namespace strata::qgemm_detail
