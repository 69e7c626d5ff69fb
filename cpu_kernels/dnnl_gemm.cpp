// oneDNN matmul on dequantized weight tiles (see dnnl_gemm.h). Each calling
// thread keeps its own engine, stream, tile buffers and primitives (keyed by
// shape and strides); rows are multiplied in chunks of at most kMaxChunkRows
// so a stream of varying batch sizes creates a bounded set of primitives.
#include "cpu_kernels/dnnl_gemm.h"

#include <omp.h>

#include <algorithm>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/quant_ref.h"
#include "runtime/base/half.h"

namespace strata {
namespace {

constexpr int64_t kMaxChunkRows = 256;
// Primitives kept per thread; past this the cache starts over (a server's
// attention sees ever new lengths).
constexpr size_t kMaxPrimitives = 512;

// precision, m, k, n, lda, ldc, and B's strides (row i of k, column j of n)
using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

struct ThreadState {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Key, dnnl::matmul> prims;
  std::vector<float> w_f32;      // one tile of dequantized rows
  std::vector<uint16_t> w_bf16;  // the same rounded to bf16
  std::vector<float> gate, up;   // a tile's gate and up products (SwiGLU)
};

ThreadState& state() {
  // oneDNN (OpenMP build) would start a team per calling thread otherwise.
  thread_local bool single = (omp_set_num_threads(1), true);
  (void)single;
  thread_local ThreadState s;
  return s;
}

dnnl::memory::data_type dt_of(DnnlPrecision p) {
  return p == DnnlPrecision::kF32 ? dnnl::memory::data_type::f32 : dnnl::memory::data_type::bf16;
}

// The matmul m x k (row stride lda) times k x n (element (i, j) at
// i * b_row + j * b_col; weights are n rows of k: b_row 1, b_col k) into
// m x n f32 (row stride ldc).
Result<dnnl::matmul*> primitive(ThreadState& s, DnnlPrecision p, int64_t m, int64_t k, int64_t n, int64_t lda,
                                int64_t ldc, int64_t b_row, int64_t b_col) {
  const Key key{int(p), m, k, n, lda, ldc, b_row, b_col};
  auto it = s.prims.find(key);
  if (it != s.prims.end()) return &it->second;
  if (s.prims.size() >= kMaxPrimitives) s.prims.clear();
  try {
    const dnnl::memory::desc a({m, k}, dt_of(p), {lda, 1});
    const dnnl::memory::desc b({k, n}, dt_of(p), {b_row, b_col});
    const dnnl::memory::desc c({m, n}, dnnl::memory::data_type::f32, {ldc, 1});
    dnnl::matmul mm(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), s.engine));
    return &s.prims.emplace(key, std::move(mm)).first->second;
  } catch (const dnnl::error& e) {
    return unsupported(std::string("oneDNN has no ") + dnnl_precision_name(p) + " matmul for " + std::to_string(m) +
                       "x" + std::to_string(k) + " by " + std::to_string(k) + "x" + std::to_string(n) + ": " +
                       e.what());
  }
}

Status check(DType w_type, int64_t n_in, int64_t o_begin, int64_t o_end, const DnnlActs& x) {
  if (!dnnl_gemm_supports(w_type)) {
    return unsupported(std::string("oneDNN product: no dequantizer for type ") + std::string(dtype_name(w_type)));
  }
  if (x.n_in() != n_in || o_begin < 0 || o_end < o_begin || !dtype_row_bytes(w_type, n_in)) {
    return invalid_argument("oneDNN product: bad shape: n_in " + std::to_string(n_in) + ", activations " +
                            std::to_string(x.n_in()) + " wide, output rows [" + std::to_string(o_begin) + ", " +
                            std::to_string(o_end) + ")");
  }
  return Status::ok();
}

// Dequantizes weight rows [o, o + n) into the state's tile (f32, and bf16
// for that precision); returns the tile's data for oneDNN.
Result<void*> load_tile(ThreadState& s, DnnlPrecision p, DType w_type, const void* w, int64_t n_in, int64_t o, int64_t n) {
  const uint64_t row_bytes = *dtype_row_bytes(w_type, n_in);
  s.w_f32.resize(size_t(n * n_in));
  for (int64_t j = 0; j < n; ++j) {
    STRATA_RETURN_IF_ERROR(dequantize_row_ref(w_type, static_cast<const uint8_t*>(w) + uint64_t(o + j) * row_bytes,
                                              s.w_f32.data() + j * n_in, n_in));
  }
  if (p == DnnlPrecision::kF32) return static_cast<void*>(s.w_f32.data());
  s.w_bf16.resize(s.w_f32.size());
  for (size_t i = 0; i < s.w_f32.size(); ++i) s.w_bf16[i] = f32_to_bf16(s.w_f32[i]);
  return static_cast<void*>(s.w_bf16.data());
}

// out[r*ldc + j] = tile row j . x[r] for j < n, all rows of x, in row chunks.
Status multiply(ThreadState& s, const DnnlActs& x, void* tile, int64_t n, float* out, int64_t ldc) {
  const DnnlPrecision p = x.precision();
  const size_t elem = p == DnnlPrecision::kF32 ? sizeof(float) : sizeof(uint16_t);
  const int64_t k = x.n_in();
  try {
    dnnl::memory::desc bd({k, n}, dt_of(p), {1, k});
    dnnl::memory b(bd, s.engine, tile);
    for (int64_t r = 0; r < x.n_rows(); r += kMaxChunkRows) {
      const int64_t m = std::min(kMaxChunkRows, x.n_rows() - r);
      STRATA_ASSIGN_OR_RETURN(dnnl::matmul * mm, primitive(s, p, m, k, n, x.stride(), ldc, 1, k));
      const dnnl::memory::desc ad({m, k}, dt_of(p), {x.stride(), 1});
      const dnnl::memory::desc cd({m, n}, dnnl::memory::data_type::f32, {ldc, 1});
      dnnl::memory a(ad, s.engine, const_cast<uint8_t*>(static_cast<const uint8_t*>(x.data()) + size_t(r * x.stride()) * elem));
      dnnl::memory c(cd, s.engine, out + r * ldc);
      mm->execute(s.stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    }
    s.stream.wait();
  } catch (const dnnl::error& e) {
    return internal_error(std::string("oneDNN matmul failed: ") + e.what());
  }
  return Status::ok();
}

}  // namespace

const char* dnnl_precision_name(DnnlPrecision p) { return p == DnnlPrecision::kF32 ? "f32" : "bf16"; }

bool dnnl_precision_available(DnnlPrecision p) {
  static const bool ok[2] = {
      [] {
        return primitive(state(), DnnlPrecision::kF32, 16, 64, 16, 64, 16, 1, 64).is_ok();
      }(),
      [] {
        return primitive(state(), DnnlPrecision::kBF16, 16, 64, 16, 64, 16, 1, 64).is_ok();
      }(),
  };
  return ok[p == DnnlPrecision::kF32 ? 0 : 1];
}

std::string dnnl_cpu_isa() {
  switch (static_cast<unsigned>(dnnl_get_effective_cpu_isa())) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2-vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512-vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512-bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "amx";
    default: return "other";
  }
}

Status limit_dnnl_cpu_isa(CpuIsa isa) {
  const CpuFeatures f = detect_cpu_features();
  dnnl_cpu_isa_t max = dnnl_cpu_isa_all;
  switch (isa) {
    case CpuIsa::kScalar: max = dnnl_cpu_isa_sse41; break;
    case CpuIsa::kAvx2: max = f.avx_vnni ? dnnl_cpu_isa_avx2_vnni : dnnl_cpu_isa_avx2; break;
    case CpuIsa::kAvx512:
      max = !f.avx512_vnni ? dnnl_cpu_isa_avx512_core
            : f.avx512_bf16 ? dnnl_cpu_isa_avx512_core_bf16
                            : dnnl_cpu_isa_avx512_core_vnni;
      break;
    case CpuIsa::kAmx: break;
  }
  if (dnnl_set_max_cpu_isa(max) != dnnl_success) {
    return internal_error("oneDNN's instruction set can no longer be limited (oneDNN already ran)");
  }
  return Status::ok();
}

bool dnnl_gemm_supports(DType w) { return can_dequantize(w); }

int64_t dnnl_gemm_tile_rows(int64_t n_in) {
  const int64_t rows = (int64_t(256) << 10) / (std::max<int64_t>(1, n_in) * int64_t(sizeof(float)));
  return std::clamp<int64_t>(rows / 16 * 16, 16, 256);
}

void DnnlActs::prepare(DnnlPrecision p, const float* x, int64_t x_stride, int64_t n_in, int64_t n_rows) {
  precision_ = p;
  n_in_ = n_in;
  n_rows_ = n_rows;
  f32_ = x;
  f32_stride_ = x_stride;
  if (p == DnnlPrecision::kF32) return;
  bf16_.resize(size_t(n_in * n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t i = 0; i < n_in; ++i) bf16_[size_t(r * n_in + i)] = f32_to_bf16(x[r * x_stride + i]);
  }
}

const void* DnnlActs::data() const {
  return precision_ == DnnlPrecision::kF32 ? static_cast<const void*>(f32_) : static_cast<const void*>(bf16_.data());
}

Status dnnl_gemm_rows(DType w_type, const void* w, int64_t n_in, int64_t o_begin, int64_t o_end, const DnnlActs& x,
                      float* y, int64_t y_stride) {
  STRATA_RETURN_IF_ERROR(check(w_type, n_in, o_begin, o_end, x));
  ThreadState& s = state();
  const int64_t tile = dnnl_gemm_tile_rows(n_in);
  for (int64_t o = o_begin; o < o_end; o += tile) {
    const int64_t n = std::min(tile, o_end - o);
    STRATA_ASSIGN_OR_RETURN(void* t, load_tile(s, x.precision(), w_type, w, n_in, o, n));
    STRATA_RETURN_IF_ERROR(multiply(s, x, t, n, y + o, y_stride));
  }
  return Status::ok();
}

Status dnnl_gemm_swiglu_rows(DType gate_type, const void* gate, DType up_type, const void* up, int64_t n_in,
                             int64_t o_begin, int64_t o_end, const DnnlActs& x, float* h, int64_t h_stride) {
  STRATA_RETURN_IF_ERROR(check(gate_type, n_in, o_begin, o_end, x));
  STRATA_RETURN_IF_ERROR(check(up_type, n_in, o_begin, o_end, x));
  ThreadState& s = state();
  const int64_t tile = dnnl_gemm_tile_rows(n_in);
  for (int64_t o = o_begin; o < o_end; o += tile) {
    const int64_t n = std::min(tile, o_end - o);
    s.gate.resize(size_t(x.n_rows() * n));
    s.up.resize(size_t(x.n_rows() * n));
    STRATA_ASSIGN_OR_RETURN(void* tg, load_tile(s, x.precision(), gate_type, gate, n_in, o, n));
    STRATA_RETURN_IF_ERROR(multiply(s, x, tg, n, s.gate.data(), n));
    STRATA_ASSIGN_OR_RETURN(void* tu, load_tile(s, x.precision(), up_type, up, n_in, o, n));
    STRATA_RETURN_IF_ERROR(multiply(s, x, tu, n, s.up.data(), n));
    for (int64_t r = 0; r < x.n_rows(); ++r) swiglu(s.gate.data() + r * n, s.up.data() + r * n, h + r * h_stride + o, n);
  }
  return Status::ok();
}

}  // namespace strata

namespace strata {

Status dnnl_matmul_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t b_row,
                       int64_t b_col, float* c, int64_t ldc) {
  if (m < 0 || n < 0 || k < 0 || lda < k || ldc < n) {
    return invalid_argument("oneDNN matmul: bad shape " + std::to_string(m) + "x" + std::to_string(k) + " by " +
                            std::to_string(k) + "x" + std::to_string(n) + " (lda " + std::to_string(lda) + ", ldc " +
                            std::to_string(ldc) + ")");
  }
  if (m == 0 || n == 0) return Status::ok();
  ThreadState& s = state();
  STRATA_ASSIGN_OR_RETURN(dnnl::matmul * mm, primitive(s, DnnlPrecision::kF32, m, k, n, lda, ldc, b_row, b_col));
  try {
    const dnnl::memory::data_type f32 = dnnl::memory::data_type::f32;
    dnnl::memory am(dnnl::memory::desc({m, k}, f32, {lda, 1}), s.engine, const_cast<float*>(a));
    dnnl::memory bm(dnnl::memory::desc({k, n}, f32, {b_row, b_col}), s.engine, const_cast<float*>(b));
    dnnl::memory cm(dnnl::memory::desc({m, n}, f32, {ldc, 1}), s.engine, c);
    mm->execute(s.stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    s.stream.wait();
  } catch (const dnnl::error& e) {
    return internal_error(std::string("oneDNN matmul failed: ") + e.what());
  }
  return Status::ok();
}

}  // namespace strata
