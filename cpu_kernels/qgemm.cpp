// qgemm dispatch: picks the kernel table of the active CPU path, and the
// fused SwiGLU built on the same kernels in stack-sized tiles.
#include "cpu_kernels/qgemm.h"

#include <algorithm>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/qgemm_internal.h"
#include "cpu_kernels/qgemm_packed.h"
#include "runtime/base/check.h"

namespace strata {
namespace {

using qgemm_detail::GemmArgs;
using qgemm_detail::KernelTable;

}  // namespace

const KernelTable& qgemm_detail::kernel_table(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return qgemm_detail::scalar_kernels();
    case CpuIsa::kAvx2: return qgemm_detail::avx2_kernels(detect_cpu_features().avx_vnni);
    case CpuIsa::kAvx512: {
      const CpuFeatures f = detect_cpu_features();
      return qgemm_detail::avx512_kernels(f.avx512_vnni, f.avx512_bf16);
    }
    case CpuIsa::kAmx: return qgemm_detail::amx_kernels(false);
  }
  return qgemm_detail::scalar_kernels();
}

namespace {

using qgemm_detail::kernel_table;

// `packed`: w is in the layout of qgemm_packed.h.
void run(const KernelTable& t, bool packed, DType w_type, const void* w, int64_t n_in, int64_t o_begin,
         int64_t o_end, const ActPack& x, int64_t r_begin, int64_t r_end, float* y, int64_t y_stride) {
  STRATA_DCHECK(x.w_type() == w_type || act_pack_shares_format(x.w_type(), w_type));
  STRATA_DCHECK(x.n_in() == n_in && 0 <= o_begin && o_begin <= o_end && y_stride >= o_end - o_begin);
  if (o_begin == o_end || r_begin == r_end) return;
  qgemm_detail::GemmFn fn = (packed ? t.packed : t.fn)[static_cast<uint32_t>(w_type)];
  // Packed weights stay computable on a path without a SIMD kernel for them.
  if (packed && fn == nullptr) fn = qgemm_detail::scalar_kernels().packed[static_cast<uint32_t>(w_type)];
  STRATA_CHECK(fn != nullptr);
  STRATA_CHECK(!packed || (o_begin % kPackRows == 0 && o_end % kPackRows == 0));
  const size_t row_bytes = packed ? qgemm_packed_bytes(w_type, n_in, kPackRows)
                                  : size_t(dtype_row_bytes(w_type, static_cast<uint64_t>(n_in)).value_or(0));
  const GemmArgs a{static_cast<const uint8_t*>(w), row_bytes, n_in, o_begin, o_end, &x, r_begin, r_end, y, y_stride};
  fn(a);
}

// h = silu(gate . x) * (up . x) in tiles of 16 outputs that fit the stack.
void swiglu(const KernelTable& t, bool packed, DType gate_type, const void* gate, DType up_type, const void* up,
            int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x_gate, const ActPack& x_up, float* h,
            int64_t h_stride) {
  STRATA_DCHECK(x_gate.n_rows() == x_up.n_rows());
  // Per tile of 16 outputs x up to 128 rows: gate and up into stack buffers,
  // then combined; an output's value depends only on its own dot products.
  constexpr int64_t kTile = 2048, kOut = kPackRows;
  float g[kTile], u[kTile];
  const int64_t n_rows = x_gate.n_rows();
  const int64_t rows_per = kTile / kOut;
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kOut) {
    const int64_t o1 = std::min(o_end, o0 + kOut);
    for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per) {
      const int64_t r1 = std::min(n_rows, r0 + rows_per);
      run(t, packed, gate_type, gate, n_in, o0, o1, x_gate, r0, r1, g, kOut);
      run(t, packed, up_type, up, n_in, o0, o1, x_up, r0, r1, u, kOut);
      for (int64_t r = r0; r < r1; ++r) {
        strata::swiglu(g + (r - r0) * kOut, u + (r - r0) * kOut, h + r * h_stride + o0, o1 - o0);
      }
    }
  }
}

}  // namespace

std::string_view qgemm_variant_name(CpuIsa isa) { return kernel_table(isa).name; }

void qgemm_rows_isa(CpuIsa isa, DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end,
                    const ActPack& x, float* y, int64_t y_stride) {
  STRATA_DCHECK(y_stride >= o_end);
  run(kernel_table(isa), false, w_type, w, n_in, o_begin, o_end, x, 0, x.n_rows(), y + o_begin, y_stride);
}

void qgemm_rows(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x,
                float* y, int64_t y_stride) {
  qgemm_rows_isa(active_cpu_isa(), w_type, w, n_in, o_begin, o_end, x, y, y_stride);
}

void qgemm_swiglu_rows_isa(CpuIsa isa, DType gate_type, const void* gate, DType up_type, const void* up,
                           int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x_gate,
                           const ActPack& x_up, float* h, int64_t h_stride) {
  swiglu(kernel_table(isa), false, gate_type, gate, up_type, up, n_in, o_begin, o_end, x_gate, x_up, h, h_stride);
}

void qgemm_swiglu_rows(DType gate_type, const void* gate, DType up_type, const void* up, int64_t n_in,
                       int64_t o_begin, int64_t o_end, const ActPack& x_gate, const ActPack& x_up, float* h,
                       int64_t h_stride) {
  qgemm_swiglu_rows_isa(active_cpu_isa(), gate_type, gate, up_type, up, n_in, o_begin, o_end, x_gate, x_up, h,
                        h_stride);
}

void qgemm_packed_rows_isa(CpuIsa isa, DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end,
                           const ActPack& x, float* y, int64_t y_stride) {
  STRATA_DCHECK(y_stride >= o_end);
  run(kernel_table(isa), true, w_type, w, n_in, o_begin, o_end, x, 0, x.n_rows(), y + o_begin, y_stride);
}

void qgemm_packed_rows(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, const ActPack& x,
                       float* y, int64_t y_stride) {
  qgemm_packed_rows_isa(active_cpu_isa(), w_type, w, n_in, o_begin, o_end, x, y, y_stride);
}

void qgemm_packed_swiglu_rows_isa(CpuIsa isa, DType w_type, const void* gate, const void* up, int64_t n_in,
                                  int64_t o_begin, int64_t o_end, const ActPack& x, float* h, int64_t h_stride) {
  swiglu(kernel_table(isa), true, w_type, gate, w_type, up, n_in, o_begin, o_end, x, x, h, h_stride);
}

void qgemm_packed_swiglu_rows(DType w_type, const void* gate, const void* up, int64_t n_in, int64_t o_begin,
                              int64_t o_end, const ActPack& x, float* h, int64_t h_stride) {
  qgemm_packed_swiglu_rows_isa(active_cpu_isa(), w_type, gate, up, n_in, o_begin, o_end, x, h, h_stride);
}

}  // namespace strata
