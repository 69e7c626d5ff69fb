// qgemm dispatch: picks the kernel table of the active CPU path, and the
// fused SwiGLU built on the same kernels in stack-sized tiles.
#include "cpu_kernels/qgemm.h"

#include <algorithm>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/qgemm_internal.h"
#include "runtime/base/check.h"

namespace strata {
namespace {

using qgemm_detail::GemmArgs;
using qgemm_detail::KernelTable;

const KernelTable& table_for(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return qgemm_detail::scalar_kernels();
    case CpuIsa::kAvx2: return qgemm_detail::avx2_kernels();
    case CpuIsa::kAvx512:
    case CpuIsa::kAmx: {
      const CpuFeatures f = detect_cpu_features();
      return qgemm_detail::avx512_kernels(f.avx512_vnni, f.avx512_bf16);
    }
  }
  return qgemm_detail::scalar_kernels();
}

void run(const KernelTable& t, DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end,
         const ActPack& x, int64_t r_begin, int64_t r_end, float* y, int64_t y_stride) {
  STRATA_DCHECK(x.w_type() == w_type || act_pack_shares_format(x.w_type(), w_type));
  STRATA_DCHECK(x.n_in() == n_in && 0 <= o_begin && o_begin <= o_end && y_stride >= o_end - o_begin);
  if (o_begin == o_end || r_begin == r_end) return;
  const qgemm_detail::GemmFn fn = t.fn[static_cast<uint32_t>(w_type)];
  STRATA_CHECK(fn != nullptr);
  const GemmArgs a{static_cast<const uint8_t*>(w),
                   static_cast<size_t>(dtype_row_bytes(w_type, static_cast<uint64_t>(n_in)).value_or(0)),
                   n_in, o_begin, o_end, &x, r_begin, r_end, y, y_stride};
  fn(a);
}

}  // namespace

std::string_view qgemm_variant_name(CpuIsa isa) { return table_for(isa).name; }

void qgemm_rows_isa(CpuIsa isa, DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end,
                    const ActPack& x, float* y, int64_t y_stride) {
  STRATA_DCHECK(y_stride >= o_end);
  run(table_for(isa), w_type, w, n_in, o_begin, o_end, x, 0, x.n_rows(), y + o_begin, y_stride);
}

void qgemm_rows(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x,
                float* y, int64_t y_stride) {
  qgemm_rows_isa(active_cpu_isa(), w_type, w, n_in, o_begin, o_end, x, y, y_stride);
}

void qgemm_swiglu_rows_isa(CpuIsa isa, DType gate_type, const void* gate, DType up_type, const void* up,
                           int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x_gate,
                           const ActPack& x_up, float* h, int64_t h_stride) {
  STRATA_DCHECK(x_gate.n_rows() == x_up.n_rows());
  const KernelTable& t = table_for(isa);
  // Tiles of at most kTile gate and up values on the stack: outputs in
  // groups of kOut, activation rows in groups of kTile / kOut. Each weight
  // row group is read once per row group; the kernels' results do not depend
  // on the tiling.
  constexpr int64_t kTile = 2048, kOut = 16;
  float g[kTile], u[kTile];
  const int64_t n_rows = x_gate.n_rows();
  const int64_t rows_per = kTile / kOut;
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kOut) {
    const int64_t o1 = std::min(o_end, o0 + kOut);
    for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per) {
      const int64_t r1 = std::min(n_rows, r0 + rows_per);
      run(t, gate_type, gate, n_in, o0, o1, x_gate, r0, r1, g, kOut);
      run(t, up_type, up, n_in, o0, o1, x_up, r0, r1, u, kOut);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t o = o0; o < o1; ++o) {
          const int64_t i = (r - r0) * kOut + (o - o0);
          h[r * h_stride + o] = silu(g[i]) * u[i];
        }
      }
    }
  }
}

void qgemm_swiglu_rows(DType gate_type, const void* gate, DType up_type, const void* up, int64_t n_in,
                       int64_t o_begin, int64_t o_end, const ActPack& x_gate, const ActPack& x_up, float* h,
                       int64_t h_stride) {
  qgemm_swiglu_rows_isa(active_cpu_isa(), gate_type, gate, up_type, up, n_in, o_begin, o_end, x_gate, x_up, h,
                        h_stride);
}

}  // namespace strata
