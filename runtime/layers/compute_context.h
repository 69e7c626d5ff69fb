// What the layers compute matrix products with: the thread pool, the kernel
// choice, and the activation scratch reused by every product. A model owns
// one and its Matrix views point at it; products through one context run one
// at a time (one forward pass at a time per model).
#pragma once

#include <memory>
#include <vector>

#include "cpu_kernels/dnnl_gemm.h"
#include "cpu_kernels/qgemm.h"
#include "offload/cpu_pool.h"
#include "offload/expert_executor.h"

namespace strata {

struct ComputeContext {
  std::shared_ptr<CpuPool> pool;           // null: the calling thread only
  CpuKernels kernels = CpuKernels::kFast;  // kReference: matmul_ref everywhere
  ActPack act, act2, act3;                 // the current product's prepared activations
  DnnlActs dnnl_act;                       // the same for a product on oneDNN (gemm_choice.h)
  std::vector<float> h;                    // fused FFN intermediates (dense and shared FFN)
};

// Prepares n_rows rows of x (x_stride floats apart) into `a` for weights of
// type w_type (qgemm_supports(w_type)): on the calling thread for a few rows,
// split over the pool for a prompt batch.
void pack_activations(ComputeContext& ctx, ActPack& a, DType w_type, int64_t n_in, const float* x, int64_t x_stride,
                      int64_t n_rows);

// fn(begin, end) over output rows [0, n_out), split over the pool in ranges of
// a multiple of 16 rows (about four per thread), or in one call on the
// calling thread when the product (n_out x macs_per_row multiply-adds) is
// too small to pay for waking the threads, or without a pool.
void for_output_rows(ComputeContext* ctx, int64_t n_out, int64_t macs_per_row, FnRef<void(int64_t, int64_t)> fn);

// fn(item, scratch) for items [0, n) that are independent of each other
// (attention heads of a batch), each call with a private scratch of
// `scratch_floats` floats: split over the pool when the work (n x
// macs_per_item) pays for waking the threads, else on the calling thread.
// Results do not depend on the split.
void for_each_item(ComputeContext* ctx, int64_t n, int64_t macs_per_item, int64_t scratch_floats,
                   FnRef<void(int64_t, float*)> fn);

// The attention of n_tokens tokens, each with n_groups groups of `group` query
// heads that share their keys and values: fn(token, group, first head, end
// head, scratch) over runs of a group's heads, split over the pool as
// for_each_item. A run is the whole group unless splitting groups is needed
// to give every thread of the pool work; the scratch holds
// scratch_floats_per_head floats per head of the run.
void for_head_runs(ComputeContext* ctx, int64_t n_tokens, int64_t n_groups, int64_t group, int64_t macs_per_head,
                   int64_t scratch_floats_per_head, FnRef<void(int64_t, int64_t, int64_t, int64_t, float*)> fn);

}  // namespace strata
