// AVX-512 F/BW/VL qgemm kernels without VNNI (Skylake-X class CPUs), and the
// assembly of the AVX-512 kernel tables from the plain, VNNI and BF16 files.
#define STRATA_QGEMM_VNNI 0
#define STRATA_QGEMM_NS avx512_plain
#include "cpu_kernels/qgemm_avx512_kernels.inc"

namespace strata::qgemm_detail {
namespace {

KernelTable make_avx512(bool vnni, bool bf16) {
  static const char* const kNames[4] = {"avx512", "avx512-bf16", "avx512-vnni", "avx512-vnni-bf16"};
  KernelTable t{kNames[(vnni ? 2 : 0) + (bf16 ? 1 : 0)], {}, {}};
  if (vnni) {
    avx512_vnni::fill_table(t);
  } else {
    avx512_plain::fill_table(t);
  }
  if (bf16) t.fn[static_cast<int>(DType::kBF16)] = avx512_bf16_kernel();
  return t;
}

}  // namespace

const KernelTable& avx512_kernels(bool vnni, bool bf16) {
  static const KernelTable tables[4] = {make_avx512(false, false), make_avx512(false, true),
                                        make_avx512(true, false), make_avx512(true, true)};
  return tables[(vnni ? 2 : 0) + (bf16 ? 1 : 0)];
}

}  // namespace strata::qgemm_detail
