// Weight products on the GPU against matmul_ref on the same quantized bytes:
// GEMV for every weight type (odd n_out, 1..9 rows so the 4-row groups have
// remainders, stacked matrices, per-row matrix ids with skipped rows), the
// bf16 cuBLAS GEMM (tiles forced small), and the GPU-resident MoE experts
// against ffn_swiglu_ref. Errors are normalized per type.
#include <cstring>

#include "cpu_kernels/ffn_ref.h"
#include "cpu_kernels/matmul_ref.h"
#include "gpu_kernels/gemm.cuh"
#include "gpu_kernels/gemv.cuh"
#include "gpu_kernels/moe.cuh"
#include "tests/test_gpu_common.h"

namespace strata {
namespace {

using namespace gpu_test;

TEST(GpuArgs, GemvRejectsMisalignedOrMisshapenInputs) {
  float* x = reinterpret_cast<float*>(uintptr_t(4096));
  gpu::GemvArgs a;
  a.type = DType::kQ4_K;
  a.w = reinterpret_cast<void*>(uintptr_t(4096));
  a.n_in = 300;
  a.n_out = 4;
  a.x = x;
  a.x_stride = 300;
  a.y = x;
  a.y_stride = 4;
  a.n_rows = 1;
  EXPECT_EQ(gpu::gemv(a, nullptr).message(), "gemv: expected n_in to be a positive multiple of 256 for q4_k, got 300");
  a.n_in = 512;
  a.x_stride = 512;
  a.w = reinterpret_cast<void*>(uintptr_t(4098));
  EXPECT_EQ(gpu::gemv(a, nullptr).message(), "gemv: expected q4_k weights 16-byte aligned");
  a.w = reinterpret_cast<void*>(uintptr_t(4096));
  a.x = x + 1;
  EXPECT_NE(gpu::gemv(a, nullptr).message().find("x 16-byte aligned"), std::string::npos);
  a.type = DType::kQ4_0;
  EXPECT_EQ(gpu::gemv(a, nullptr).code(), StatusCode::kUnsupported);
  a.type = DType::kF16;
  a.n_in = 36;
  a.x = x;
  a.x_stride = 36;
  EXPECT_NE(gpu::gemv(a, nullptr).message().find("multiple of 8 for f16"), std::string::npos);
  EXPECT_EQ(gpu::gemm_bf16(nullptr, DType::kQ4_K, x, 512, 64, x, 512, 16, x, 64, nullptr, 0, nullptr).code(),
            StatusCode::kInvalidArgument);
}

std::vector<float> ref_product(const QuantMatrix& w, int64_t mat, int64_t n_out, const float* x, int64_t n_rows,
                               int64_t x_stride) {
  std::vector<float> y(static_cast<size_t>(n_rows * n_out));
  const uint64_t rb = dtype_row_bytes(w.type, uint64_t(w.n_in)).value();
  matmul_ref(w.type, w.bytes.data() + uint64_t(mat * n_out) * rb, w.n_in, n_out, x, x_stride, n_rows, y.data(), n_out);
  return y;
}

TEST(GpuGemv, EveryTypeMatchesReference) {
  STRATA_REQUIRE_CUDA();
  for (const TypeCase& tc : gpu_types()) {
    for (int64_t n_in : {256, 1280}) {
      const int64_t n_out = 37;
      QuantMatrix w = quant_matrix(tc.type, n_in, n_out, 31);
      DevBuf<uint8_t> dw(w.bytes);
      for (int64_t rows : {1, 2, 4, 5, 9}) {
        const int64_t x_stride = n_in + 4;
        std::vector<float> x = randn(static_cast<size_t>(rows * x_stride), 32 + uint64_t(rows));
        DevBuf<float> dx(x), dy(size_t(rows * (n_out + 3)));
        gpu::GemvArgs a;
        a.type = tc.type;
        a.w = dw.get();
        a.n_in = n_in;
        a.n_out = n_out;
        a.x = dx.get();
        a.x_stride = x_stride;
        a.y = dy.get();
        a.y_stride = n_out + 3;
        a.n_rows = rows;
        ASSERT_TRUE(gpu::gemv(a, nullptr).is_ok());
        const std::vector<float> got = dy.download();
        const std::vector<float> ref = ref_product(w, 0, n_out, x.data(), rows, x_stride);
        std::vector<float> g(ref.size());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < n_out; ++o) g[size_t(r * n_out + o)] = got[size_t(r * (n_out + 3) + o)];
        EXPECT_LT(normalized_error(g, ref), tc.gemv_tol) << dtype_name(tc.type) << " n_in " << n_in << " rows " << rows;
      }
    }
  }
}

// MLA's per-head products: row r uses matrix r % n_mat. MoE: row r uses
// matrix mat_ids[r] (-1: row skipped, y untouched) and x row r / x_row_div.
TEST(GpuGemv, StackedAndIndexedMatrices) {
  STRATA_REQUIRE_CUDA();
  for (const TypeCase& tc : gpu_types()) {
    const int64_t n_in = 256, n_out = 20, n_mat = 3;
    QuantMatrix w = quant_matrix(tc.type, n_in, n_out * n_mat, 41);
    DevBuf<uint8_t> dw(w.bytes);
    const int64_t rows = 7;
    std::vector<float> x = randn(static_cast<size_t>(rows * n_in), 42);
    DevBuf<float> dx(x);
    {
      DevBuf<float> dy(size_t(rows * n_out));
      gpu::GemvArgs a;
      a.type = tc.type;
      a.w = dw.get();
      a.n_in = n_in;
      a.n_out = n_out;
      a.n_mat = n_mat;
      a.x = dx.get();
      a.x_stride = n_in;
      a.y = dy.get();
      a.y_stride = n_out;
      a.n_rows = rows;
      ASSERT_TRUE(gpu::gemv(a, nullptr).is_ok());
      const std::vector<float> got = dy.download();
      for (int64_t r = 0; r < rows; ++r) {
        const std::vector<float> ref = ref_product(w, r % n_mat, n_out, x.data() + r * n_in, 1, n_in);
        const std::vector<float> g(got.begin() + r * n_out, got.begin() + (r + 1) * n_out);
        EXPECT_LT(normalized_error(g, ref), tc.gemv_tol) << dtype_name(tc.type) << " stacked row " << r;
      }
    }
    {
      const int32_t div = 2;  // slots (token, k): 2 per token
      const std::vector<int32_t> ids = {2, 0, -1, 1, 1, 2, 0, -1, 2, 2};
      const int64_t slots = int64_t(ids.size());
      DevBuf<int32_t> dids(ids);
      std::vector<float> sentinel(static_cast<size_t>(slots * n_out), 123.0f);
      DevBuf<float> dy(sentinel);
      gpu::GemvArgs a;
      a.type = tc.type;
      a.w = dw.get();
      a.n_in = n_in;
      a.n_out = n_out;
      a.n_mat = n_mat;
      a.mat_ids = dids.get();
      a.x_row_div = div;
      a.x = dx.get();
      a.x_stride = n_in;
      a.y = dy.get();
      a.y_stride = n_out;
      a.n_rows = slots;
      ASSERT_TRUE(gpu::gemv(a, nullptr).is_ok());
      const std::vector<float> got = dy.download();
      for (int64_t z = 0; z < slots; ++z) {
        const std::vector<float> g(got.begin() + z * n_out, got.begin() + (z + 1) * n_out);
        if (ids[size_t(z)] < 0) {
          EXPECT_EQ(g, std::vector<float>(static_cast<size_t>(n_out), 123.0f)) << "skipped slot " << z << " was written";
          continue;
        }
        const std::vector<float> ref = ref_product(w, ids[size_t(z)], n_out, x.data() + (z / div) * n_in, 1, n_in);
        EXPECT_LT(normalized_error(g, ref), tc.gemv_tol) << dtype_name(tc.type) << " slot " << z;
      }
    }
  }
}

TEST(GpuGemm, Bf16TilesMatchReference) {
  STRATA_REQUIRE_CUDA();
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  for (const TypeCase& tc : gpu_types()) {
    const int64_t n_in = 512, n_out = 300, rows = 37;
    QuantMatrix w = quant_matrix(tc.type, n_in, n_out, 51);
    DevBuf<uint8_t> dw(w.bytes);
    std::vector<float> x = randn(static_cast<size_t>(rows * n_in), 52);
    DevBuf<float> dx(x), dy(size_t(rows * n_out));
    // Room for X and 128 weight rows: three tiles (128, 128, 44).
    const size_t scratch_bytes = gpu::gemm_scratch_bytes(n_in, rows, 128);
    DevBuf<uint8_t> scratch(scratch_bytes);
    ASSERT_TRUE(gpu::gemm_bf16(h, tc.type, dw.get(), n_in, n_out, dx.get(), n_in, rows, dy.get(), n_out, scratch.get(),
                               scratch_bytes, nullptr)
                    .is_ok());
    const std::vector<float> ref = ref_product(w, 0, n_out, x.data(), rows, n_in);
    // X and W rounded to bf16 (8 significant bits): ~2^-8 relative per product term.
    EXPECT_LT(normalized_error(dy.download(), ref), 1e-2) << dtype_name(tc.type);
  }
  cublasDestroy(h);
}

TEST(GpuMoe, ResidentExpertsMatchReference) {
  STRATA_REQUIRE_CUDA();
  const int64_t n_embd = 256, n_ff = 512, n_expert = 8, rows = 3;
  const int32_t n_used = 3;
  for (DType t : {DType::kQ4_K, DType::kQ8_0}) {
    // Slots hold experts 5, 1, 6, 2, 0 (3, 4, 7 are on the CPU).
    const std::vector<int32_t> resident = {5, 1, 6, 2, 0};
    std::vector<int32_t> slot_of(static_cast<size_t>(n_expert), -1);
    for (size_t s = 0; s < resident.size(); ++s) slot_of[size_t(resident[s])] = int32_t(s);
    QuantMatrix gate = quant_matrix(t, n_embd, n_ff * n_expert, 61, 0.06f);
    QuantMatrix up = quant_matrix(t, n_embd, n_ff * n_expert, 62, 0.06f);
    QuantMatrix down = quant_matrix(t, n_ff, n_embd * n_expert, 63, 0.04f);
    auto slots_of = [&](const QuantMatrix& m, int64_t n_out) {
      const uint64_t eb = dtype_row_bytes(t, uint64_t(m.n_in)).value() * uint64_t(n_out);
      std::vector<uint8_t> out;
      for (int32_t e : resident) out.insert(out.end(), m.bytes.begin() + e * eb, m.bytes.begin() + (e + 1) * eb);
      return out;
    };
    DevBuf<uint8_t> dg(slots_of(gate, n_ff)), du(slots_of(up, n_ff)), dd(slots_of(down, n_embd));
    DevBuf<int32_t> dslot(slot_of);
    const std::vector<int32_t> ids = {5, 3, 1, 6, 0, 7, 4, 3, 7};  // row 2 has no resident expert
    const std::vector<float> wts = {0.5f, 0.3f, 0.2f, 0.6f, 0.25f, 0.15f, 0.4f, 0.4f, 0.2f};
    std::vector<float> x = randn(static_cast<size_t>(rows * n_embd), 64);
    DevBuf<int32_t> dids(ids);
    DevBuf<float> dw(wts), dx(x), dout(size_t(rows * n_embd));
    gpu::GpuExpertSet e;
    e.gate_type = e.up_type = e.down_type = t;
    e.gate = dg.get();
    e.up = du.get();
    e.down = dd.get();
    e.n_embd = n_embd;
    e.n_ff = n_ff;
    e.n_slots = int32_t(resident.size());
    e.n_expert = int32_t(n_expert);
    e.slot_of_expert = dslot.get();
    const size_t ws_floats = gpu::moe_experts_workspace_floats(e, rows, n_used);
    DevBuf<float> ws(ws_floats);
    ASSERT_TRUE(gpu::moe_experts(e, dx.get(), rows, n_used, dids.get(), dw.get(), dout.get(), false, ws.get(), ws_floats,
                                 nullptr)
                    .is_ok());
    std::vector<float> ref(static_cast<size_t>(rows * n_embd), 0.0f), one(static_cast<size_t>(n_embd)), scratch(static_cast<size_t>(2 * n_ff));
    const uint64_t gb = dtype_row_bytes(t, uint64_t(n_embd)).value() * uint64_t(n_ff);
    const uint64_t db = dtype_row_bytes(t, uint64_t(n_ff)).value() * uint64_t(n_embd);
    for (int64_t r = 0; r < rows; ++r) {
      for (int k = 0; k < n_used; ++k) {
        const int32_t ex = ids[size_t(r * n_used + k)];
        if (slot_of[size_t(ex)] < 0) continue;
        FfnMatrices m;
        m.gate_type = m.up_type = m.down_type = t;
        m.gate = gate.bytes.data() + ex * gb;
        m.up = up.bytes.data() + ex * gb;
        m.down = down.bytes.data() + ex * db;
        m.n_embd = n_embd;
        m.n_ff = n_ff;
        ffn_swiglu_ref(m, x.data() + r * n_embd, 1, one.data(), scratch.data());
        for (int64_t i = 0; i < n_embd; ++i) ref[size_t(r * n_embd + i)] += wts[size_t(r * n_used + k)] * one[size_t(i)];
      }
    }
    const std::vector<float> got = dout.download();
    for (int64_t i = 2 * n_embd; i < 3 * n_embd; ++i) EXPECT_EQ(got[size_t(i)], 0.0f);
    EXPECT_LT(normalized_error(got, ref), 5e-5) << dtype_name(t);
  }
}

}  // namespace
}  // namespace strata
