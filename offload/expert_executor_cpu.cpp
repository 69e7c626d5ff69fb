// CPU expert executor. One call runs in four steps over the pool:
//   1. rows grouped by expert (counting sort, rows keep their order), each
//      group's activations gathered and prepared for the kernels;
//   2. work items (expert, range of n_ff rows) of gate+up -> h; the thread
//      finishing an expert's last item prepares its h for the down product;
//   3. work items (expert, range of n_embd rows) of down -> y;
//   4. out[r] = sum of weight * y over r's experts in expert-id order.
// Items are sized so every thread of a node gets several, whatever the spread
// of rows over experts. An expert with a prompt batch of rows may run on
// oneDNN instead of qgemm (gemm_choice.h decides per shape and row count).
// Otherwise output values depend only on a row's own activations and experts
// (qgemm is range- and batch-invariant and the sum order is fixed), so
// batched decode equals single decode bit for bit.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "cpu_kernels/activation.h"
#include "cpu_kernels/dnnl_gemm.h"
#include "cpu_kernels/gemm_choice.h"
#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/qgemm_packed.h"
#include "offload/cpu_pool.h"
#include "offload/expert_executor.h"
#include "offload/numa_partition.h"
#include "runtime/base/bytes.h"
#include "runtime/base/system_memory.h"

namespace strata {
namespace {

std::string shape(const ExpertTensor& t) {
  return "[" + std::to_string(t.n_in) + ", " + std::to_string(t.n_out) + ", " + std::to_string(t.n_expert) + "]";
}

// Output rows per work item are a multiple of this (kernels work on a few
// rows at a time; tiny ranges only add scheduling cost).
constexpr int64_t kRowAlign = 16;

// Where one layer's experts live and which node computes each.
struct LayerPlace {
  const void* gate_src = nullptr;  // the tensors this was made for (guards a mismatched run())
  int64_t n_expert = 0;
  // gate and up, or down, repacked (cpu_kernels/qgemm_packed.h).
  bool gu_packed = false, down_packed = false;
  std::vector<int> node;  // per expert
  std::vector<const uint8_t*> gate, up, down;
};

// Every expert of `l` where the file has it, computed by node 0.
void point_at_file(LayerPlace& p, const ExpertLayer& l) {
  p.gate_src = l.gate.data;
  p.gu_packed = p.down_packed = false;
  p.n_expert = l.n_expert();
  p.node.assign(size_t(p.n_expert), 0);
  p.gate.resize(size_t(p.n_expert));
  p.up.resize(size_t(p.n_expert));
  p.down.resize(size_t(p.n_expert));
  for (int64_t e = 0; e < p.n_expert; ++e) {
    p.gate[size_t(e)] = static_cast<const uint8_t*>(l.gate.data) + uint64_t(e) * l.gate.expert_bytes;
    p.up[size_t(e)] = static_cast<const uint8_t*>(l.up.data) + uint64_t(e) * l.up.expert_bytes;
    p.down[size_t(e)] = static_cast<const uint8_t*>(l.down.data) + uint64_t(e) * l.down.expert_bytes;
  }
}

// Bytes of one expert's gate, up and down as placed.
struct PlacedBytes {
  uint64_t gate, up, down;
  uint64_t total() const { return gate + up + down; }
};
PlacedBytes placed_bytes(const ExpertLayer& l, bool gu_packed, bool down_packed) {
  return {gu_packed ? qgemm_packed_bytes(l.gate.type, l.n_embd(), l.n_ff()) : l.gate.expert_bytes,
          gu_packed ? qgemm_packed_bytes(l.up.type, l.n_embd(), l.n_ff()) : l.up.expert_bytes,
          down_packed ? qgemm_packed_bytes(l.down.type, l.n_ff(), l.n_embd()) : l.down.expert_bytes};
}

// One unit of work: output rows [o_begin, o_end) of expert e.
struct Item {
  int32_t e;
  int32_t o_begin, o_end;
};

class CpuExpertExecutor final : public ExpertExecutor {
 public:
  explicit CpuExpertExecutor(CpuExecutorOptions o) : o_(std::move(o)) {}
  ~CpuExpertExecutor() override {
    for (const auto& b : blocks_) unmap_pages(b.first, b.second);  // node-bound ones are mmap'd too
  }

  Status check_layer(const ExpertLayer& l) const override {
    for (const ExpertTensor* t : {&l.gate, &l.up, &l.down}) {
      if (!matmul_supports(t->type)) {
        return unsupported(t->name + ": type " + std::string(dtype_name(t->type)) +
                           " has no CPU expert kernel (expected a type with a dequantizer)");
      }
      if (!t->data || t->n_expert <= 0) return invalid_argument(t->name + ": expected expert data, got none");
    }
    const bool ok = l.up.n_in == l.gate.n_in && l.up.n_out == l.gate.n_out && l.down.n_in == l.gate.n_out &&
                    l.down.n_out == l.gate.n_in && l.up.n_expert == l.gate.n_expert &&
                    l.down.n_expert == l.gate.n_expert;
    if (!ok) {
      return invalid_argument("layer " + std::to_string(l.layer) + ": expert shapes disagree: gate " + shape(l.gate) +
                              ", up " + shape(l.up) + ", down " + shape(l.down));
    }
    return Status::ok();
  }

  Status place_layers(std::span<const ExpertLayer> layers) override;
  std::string placement_summary() const override { return summary_; }
  Status run(const ExpertLayer& l, const ExpertRouting& r, float* out) override;

 private:
  bool numa_active() const {
    return o_.numa && o_.pool && o_.topology && o_.topology->numa_nodes().size() > 1 && o_.pool->n_nodes() > 1;
  }
  bool fast(const ExpertLayer& l) const {
    return o_.kernels == CpuKernels::kFast && qgemm_supports(l.gate.type) && qgemm_supports(l.up.type) &&
           qgemm_supports(l.down.type);
  }
  // Repacking pays where this CPU path has a packed kernel for the type.
  bool packs_gate_up(const ExpertLayer& l) const {
    return fast(l) && l.up.type == l.gate.type && qgemm_repacks(l.gate.type, l.n_embd(), l.n_ff());
  }
  bool packs_down(const ExpertLayer& l) const { return fast(l) && qgemm_repacks(l.down.type, l.n_ff(), l.n_embd()); }
  int n_nodes() const { return o_.pool ? o_.pool->n_nodes() : 1; }
  int threads_on(int node) const {
    if (!o_.pool) return 1;
    const int n = int(o_.pool->threads_of_node(node).size());
    return n > 0 ? n : o_.pool->n_threads();  // a node without threads is served by all
  }
  const LayerPlace& place_for(const ExpertLayer& l);
  // Splits each active expert's n_out rows into items on its node's list,
  // about four items per thread of the node.
  void make_items(const LayerPlace& p, int64_t n_out, std::vector<std::vector<Item>>& items) const;
  template <class Fn>
  void for_items(const std::vector<std::vector<Item>>& items, Fn fn);
  template <class Fn>
  void for_range(int64_t n, int64_t grain, Fn fn);

  CpuExecutorOptions o_;
  std::vector<LayerPlace> places_;  // by layer index
  LayerPlace scratch_place_;        // for a layer place_layers did not see
  std::vector<std::pair<void*, size_t>> blocks_;  // copies (mmap'd, node-bound with NUMA)
  std::string summary_;

  // Per-call buffers, grown only.
  std::vector<int64_t> count_, fill_, order_, pos_of_pair_;
  std::vector<float> xg_, h_, u_, y_;
  std::vector<ActPack> x_gate_, x_up_, h_pack_;
  ActPack tok_gate_, tok_up_;  // each token's activations prepared once, copied to its experts' groups
  std::vector<GemmPath> gu_path_, down_path_;  // per expert, this call
  std::vector<DnnlActs> x_dnnl_, h_dnnl_;      // for experts on oneDNN
  std::unique_ptr<std::atomic<int32_t>[]> left_;  // per expert: gate/up items not yet done
  int64_t left_size_ = 0;
  std::vector<std::vector<Item>> items_;
  std::vector<int64_t> n_items_;
};

Status CpuExpertExecutor::place_layers(std::span<const ExpertLayer> layers) {
  uint64_t packed_total = 0, total = 0;
  int n_packed = 0;
  for (const ExpertLayer& l : layers) {
    if (l.layer < 0) return invalid_argument("expert executor: expected a layer index >= 0, got " + std::to_string(l.layer));
    if (size_t(l.layer) >= places_.size()) places_.resize(size_t(l.layer) + 1);
    LayerPlace& p = places_[size_t(l.layer)];
    point_at_file(p, l);
    if (o_.repack != ExpertRepack::kOff) {
      p.gu_packed = packs_gate_up(l);
      p.down_packed = packs_down(l);
    }
    n_packed += (p.gu_packed ? 2 : 0) + (p.down_packed ? 1 : 0);
    packed_total += placed_bytes(l, p.gu_packed, p.down_packed).total() * uint64_t(l.n_expert());
  }
  summary_.clear();
  if (n_packed > 0 && o_.repack == ExpertRepack::kAuto && !fits_in_available_memory(packed_total)) {
    // Repacking copies the experts out of the file's pages: keep the file
    // data when the copies would not fit (the pages then come from disk).
    for (const ExpertLayer& l : layers) point_at_file(places_[size_t(l.layer)], l);
    summary_ = "experts not repacked: " + format_bytes(packed_total) + " do not fit in available memory";
    n_packed = 0;
  }
  const bool numa = numa_active();
  if ((!numa && n_packed == 0) || layers.empty()) return Status::ok();

  // Node of each expert, in layer order: partitioned when NUMA is active
  // (node weights are the pool's threads there; a node without threads takes
  // experts only when the others are full), else all on one.
  std::vector<int> node_of;
  size_t n_groups = 1;
  if (numa) {
    const Topology& topo = *o_.topology;
    std::vector<NumaNodeBudget> nodes = numa_budgets(topo);
    for (size_t n = 0; n < nodes.size(); ++n) {
      const size_t t = int(n) < o_.pool->n_nodes() ? o_.pool->threads_of_node(int(n)).size() : 0;
      nodes[n].weight = t > 0 ? double(t) : 1e-3;
    }
    std::vector<ExpertBytes> experts;
    for (const ExpertLayer& l : layers) {
      const LayerPlace& p = places_[size_t(l.layer)];
      const uint64_t b = placed_bytes(l, p.gu_packed, p.down_packed).total();
      for (int64_t e = 0; e < l.n_expert(); ++e) experts.push_back({l.layer, int(e), b, -1.0});
    }
    STRATA_ASSIGN_OR_RETURN(NumaPartition part, partition_experts(nodes, experts));
    node_of = std::move(part.node_of);
    n_groups = nodes.size();
  } else {
    for (const ExpertLayer& l : layers) node_of.insert(node_of.end(), size_t(l.n_expert()), 0);
  }

  // One block per (layer, node) holding that node's experts of the layer,
  // gate | up | down per expert, copied or packed by the node's own threads.
  struct Copy {
    const ExpertLayer* l;
    int64_t e;
    uint8_t* dst;
  };
  std::vector<std::vector<Copy>> copies(n_groups);
  size_t k = 0;
  for (const ExpertLayer& l : layers) {
    LayerPlace& p = places_[size_t(l.layer)];
    const PlacedBytes pb = placed_bytes(l, p.gu_packed, p.down_packed);
    std::vector<int64_t> on(n_groups, 0);
    for (int64_t e = 0; e < l.n_expert(); ++e) ++on[size_t(node_of[k + size_t(e)])];
    std::vector<uint8_t*> cursor(n_groups, nullptr);
    for (size_t n = 0; n < n_groups; ++n) {
      if (on[n] == 0) continue;
      const size_t bytes = size_t(on[n]) * pb.total();
      void* mem = numa ? o_.topology->alloc_on_node(bytes, int(n)) : map_pages(bytes);
      if (!mem) {
        return out_of_memory("expert executor: cannot allocate " + format_bytes(bytes) +
                             (numa ? " on NUMA node " + std::to_string(n) : std::string()) + " for layer " +
                             std::to_string(l.layer) + "'s experts" + (n_packed ? " (--repack off keeps the file's data)" : ""));
      }
      blocks_.push_back({mem, bytes});
      cursor[n] = static_cast<uint8_t*>(mem);
    }
    for (int64_t e = 0; e < l.n_expert(); ++e, ++k) {
      const int n = node_of[k];
      p.node[size_t(e)] = n;
      copies[size_t(n)].push_back({&l, e, cursor[size_t(n)]});
      p.gate[size_t(e)] = cursor[size_t(n)];
      p.up[size_t(e)] = cursor[size_t(n)] + pb.gate;
      p.down[size_t(e)] = cursor[size_t(n)] + pb.gate + pb.up;
      cursor[size_t(n)] += pb.total();
      total += pb.total();
    }
  }
  ByteProgress progress(o_.progress, total);
  auto place_one = [&](const Copy& c) {
    const ExpertLayer& l = *c.l;
    const LayerPlace& p = places_[size_t(l.layer)];
    const PlacedBytes pb = placed_bytes(l, p.gu_packed, p.down_packed);
    auto put = [&](const ExpertTensor& t, bool packed, uint8_t* dst) {
      const uint8_t* src = static_cast<const uint8_t*>(t.data) + uint64_t(c.e) * t.expert_bytes;
      if (packed) {
        qgemm_pack(t.type, src, t.n_in, 0, t.n_out, dst);
      } else {
        std::memcpy(dst, src, t.expert_bytes);
      }
    };
    put(l.gate, p.gu_packed, c.dst);
    put(l.up, p.gu_packed, c.dst + pb.gate);
    put(l.down, p.down_packed, c.dst + pb.gate + pb.up);
    progress.add(pb.total());
  };
  if (numa) {
    std::vector<int64_t> n_per_node;
    for (const auto& c : copies) n_per_node.push_back(int64_t(c.size()));
    o_.pool->parallel_for_nodes(n_per_node, [&](int node, int64_t i, int) { place_one(copies[size_t(node)][size_t(i)]); });
  } else if (o_.pool) {
    o_.pool->parallel_for(int64_t(copies[0].size()), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) place_one(copies[0][size_t(i)]);
    });
  } else {
    for (const Copy& c : copies[0]) place_one(c);
  }
  if (n_packed > 0) summary_ = "experts repacked (" + std::to_string(n_packed) + " tensors, 16-row groups)";
  if (numa) summary_ += std::string(summary_.empty() ? "" : ", ") + "experts on " + std::to_string(n_groups) + " NUMA nodes";
  return Status::ok();
}

const LayerPlace& CpuExpertExecutor::place_for(const ExpertLayer& l) {
  if (l.layer >= 0 && size_t(l.layer) < places_.size()) {
    const LayerPlace& p = places_[size_t(l.layer)];
    if (p.gate_src == l.gate.data && p.n_expert == l.n_expert()) return p;
  }
  // Not placed (an executor used without place_layers): the bytes where they are.
  LayerPlace& p = scratch_place_;
  point_at_file(p, l);
  return p;
}

void CpuExpertExecutor::make_items(const LayerPlace& p, int64_t n_out, std::vector<std::vector<Item>>& items) const {
  const int nn = n_nodes();
  items.resize(size_t(nn));
  for (auto& v : items) v.clear();
  // Work of a node in (row of x) x (output row) units.
  std::vector<int64_t> work(size_t(nn), 0);
  for (int64_t e = 0; e < p.n_expert; ++e) {
    const int64_t m = count_[size_t(e) + 1] - count_[size_t(e)];
    if (m) work[size_t(std::min(p.node[size_t(e)], nn - 1))] += m * n_out;
  }
  const int64_t max_chunks = std::max<int64_t>(1, (n_out + kRowAlign - 1) / kRowAlign);
  for (int64_t e = 0; e < p.n_expert; ++e) {
    const int64_t m = count_[size_t(e) + 1] - count_[size_t(e)];
    if (!m) continue;
    const int node = std::min(p.node[size_t(e)], nn - 1);
    const int64_t target = std::max<int64_t>(1, work[size_t(node)] / (4 * int64_t(threads_on(node))));
    const int64_t n_chunks = std::clamp<int64_t>((m * n_out + target - 1) / target, 1, max_chunks);
    int64_t step = (n_out + n_chunks - 1) / n_chunks;
    step = (step + kRowAlign - 1) / kRowAlign * kRowAlign;
    for (int64_t o = 0; o < n_out; o += step) {
      items[size_t(node)].push_back({int32_t(e), int32_t(o), int32_t(std::min(n_out, o + step))});
    }
  }
}

template <class Fn>
void CpuExpertExecutor::for_items(const std::vector<std::vector<Item>>& items, Fn fn) {
  n_items_.resize(items.size());
  for (size_t n = 0; n < items.size(); ++n) n_items_[n] = int64_t(items[n].size());
  if (!o_.pool) {
    for (const auto& v : items) {
      for (const Item& it : v) fn(it);
    }
    return;
  }
  o_.pool->parallel_for_nodes(n_items_, [&](int node, int64_t i, int) { fn(items[size_t(node)][size_t(i)]); });
}

template <class Fn>
void CpuExpertExecutor::for_range(int64_t n, int64_t grain, Fn fn) {
  if (!o_.pool || n <= grain) {
    fn(int64_t(0), n);
    return;
  }
  o_.pool->parallel_for(n, grain, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

Status CpuExpertExecutor::run(const ExpertLayer& l, const ExpertRouting& r, float* out) {
  const int64_t n_embd = l.n_embd(), n_ff = l.n_ff(), n_expert = l.n_expert();
  const int64_t n_pairs = r.n_rows * r.n_used;
  // Bucket (row, slot) pairs by expert: counting sort keeps rows in order.
  count_.assign(size_t(n_expert) + 1, 0);
  for (int64_t i = 0; i < n_pairs; ++i) {
    const int32_t e = r.ids[i];
    if (e < 0 || e >= n_expert) {
      return internal_error("layer " + std::to_string(l.layer) + ": expert id " + std::to_string(e) +
                            " out of range 0.." + std::to_string(n_expert - 1));
    }
    ++count_[size_t(e) + 1];
  }
  for (int64_t e = 0; e < n_expert; ++e) count_[size_t(e) + 1] += count_[size_t(e)];
  order_.resize(size_t(n_pairs));
  pos_of_pair_.resize(size_t(n_pairs));
  fill_.assign(count_.begin(), count_.end() - 1);
  for (int64_t i = 0; i < n_pairs; ++i) {
    const int64_t pos = fill_[size_t(r.ids[i])]++;
    order_[size_t(pos)] = i;
    pos_of_pair_[size_t(i)] = pos;
  }
  const LayerPlace& p = place_for(l);
  const bool use_fast = fast(l);
  auto begin_of = [&](int64_t e) { return count_[size_t(e)]; };
  auto rows_of = [&](int64_t e) { return count_[size_t(e) + 1] - count_[size_t(e)]; };

  // Step 1: gather each group's rows (grouped order), prepare them.
  xg_.resize(size_t(n_pairs * n_embd));
  h_.resize(size_t(n_pairs * n_ff));
  y_.resize(size_t(n_pairs * n_embd));
  const bool share = use_fast && act_pack_shares_format(l.gate.type, l.up.type);
  if (use_fast) {
    if (int64_t(x_gate_.size()) < n_expert) {
      x_gate_.resize(size_t(n_expert));
      x_up_.resize(size_t(n_expert));
      h_pack_.resize(size_t(n_expert));
      x_dnnl_.resize(size_t(n_expert));
      h_dnnl_.resize(size_t(n_expert));
    }
    gu_path_.assign(size_t(n_expert), GemmPath::kNative);
    down_path_.assign(size_t(n_expert), GemmPath::kNative);
    for (int64_t e = 0; e < n_expert; ++e) {
      const int64_t m = rows_of(e);
      if (!m) continue;
      // Packed weights stay on qgemm: its packed kernel outran oneDNN's f32
      // at every batch size measured (README, Measured).
      if (m >= kDnnlMinRows && !p.gu_packed) {
        const GemmPath g = choose_gemm_path(l.gate.type, p.gate[size_t(e)], n_embd, n_ff, m);
        // gate and up share the activations, so they share the path.
        gu_path_[size_t(e)] = l.up.type == l.gate.type ? g : GemmPath::kNative;
      }
      if (m >= kDnnlMinRows && !p.down_packed) {
        down_path_[size_t(e)] = choose_gemm_path(l.down.type, p.down[size_t(e)], n_ff, n_embd, m);
      }
      if (gu_path_[size_t(e)] == GemmPath::kNative) {
        act_pack_prepare(x_gate_[size_t(e)], l.gate.type, n_embd, m);
        if (!share) act_pack_prepare(x_up_[size_t(e)], l.up.type, n_embd, m);
      }
      if (down_path_[size_t(e)] == GemmPath::kNative) act_pack_prepare(h_pack_[size_t(e)], l.down.type, n_ff, m);
    }
  } else {
    u_.resize(size_t(n_pairs * n_ff));
  }
  // A token routed to k experts on qgemm is prepared once, not k times.
  const bool any_native = use_fast && std::any_of(gu_path_.begin(), gu_path_.begin() + n_expert, [&](GemmPath g) {
    return g == GemmPath::kNative;
  });
  if (any_native) {
    act_pack_prepare(tok_gate_, l.gate.type, n_embd, r.n_rows);
    if (!share) act_pack_prepare(tok_up_, l.up.type, n_embd, r.n_rows);
    for_range(r.n_rows, 4, [&](int64_t b, int64_t end) {
      act_pack_rows(tok_gate_, r.x, n_embd, b, end);
      if (!share) act_pack_rows(tok_up_, r.x, n_embd, b, end);
    });
  }
  // Pairs in grouped order, chunked; a chunk may span experts. Groups on
  // qgemm get the prepared rows; the others (oneDNN, the reference) and the
  // fallback read the float rows.
  for_range(n_pairs, 16, [&](int64_t b, int64_t end) {
    int64_t e = std::upper_bound(count_.begin(), count_.end(), b) - count_.begin() - 1;
    for (int64_t pos = b; pos < end; ++e) {
      const int64_t stop = std::min(end, count_[size_t(e) + 1]);
      const bool native = use_fast && gu_path_[size_t(e)] == GemmPath::kNative;
      for (; pos < stop; ++pos) {
        const int64_t tok = order_[size_t(pos)] / r.n_used;
        if (!native) {
          std::memcpy(xg_.data() + pos * n_embd, r.x + tok * n_embd, size_t(n_embd) * sizeof(float));
          continue;
        }
        act_pack_copy_row(x_gate_[size_t(e)], pos - begin_of(e), tok_gate_, tok);
        if (!share) act_pack_copy_row(x_up_[size_t(e)], pos - begin_of(e), tok_up_, tok);
      }
    }
  });

  if (use_fast) {
    for (int64_t e = 0; e < n_expert; ++e) {
      if (gu_path_[size_t(e)] == GemmPath::kNative) continue;
      x_dnnl_[size_t(e)].prepare(dnnl_precision_of(gu_path_[size_t(e)]), xg_.data() + begin_of(e) * n_embd, n_embd, n_embd,
                                 rows_of(e));
    }
  }
  // Products oneDNN could not run (it reports an error) fall back to the
  // reference kernel for that range, so an answer is never lost.
  auto ref_gate_up = [&](const Item& it, float* h, float* u, const float* xe, int64_t m) {
    const uint64_t gate_row = l.gate.expert_bytes / uint64_t(n_ff), up_row = l.up.expert_bytes / uint64_t(n_ff);
    const int64_t no = it.o_end - it.o_begin;
    matmul_ref(l.gate.type, p.gate[size_t(it.e)] + uint64_t(it.o_begin) * gate_row, n_embd, no, xe, n_embd, m,
               h + it.o_begin, n_ff);
    matmul_ref(l.up.type, p.up[size_t(it.e)] + uint64_t(it.o_begin) * up_row, n_embd, no, xe, n_embd, m,
               u + it.o_begin, n_ff);
    for (int64_t j = 0; j < m; ++j) swiglu(h + j * n_ff + it.o_begin, u + j * n_ff + it.o_begin, h + j * n_ff + it.o_begin, no);
  };
  auto ref_down = [&](const Item& it, float* y, int64_t m, int64_t b) {
    const uint64_t down_row = l.down.expert_bytes / uint64_t(n_embd);
    matmul_ref(l.down.type, p.down[size_t(it.e)] + uint64_t(it.o_begin) * down_row, n_ff, it.o_end - it.o_begin,
               h_.data() + b * n_ff, n_ff, m, y + it.o_begin, n_embd);
  };
  // Only the fallback of a oneDNN gate/up product writes u_.
  if (use_fast && std::any_of(gu_path_.begin(), gu_path_.end(), [](GemmPath g) { return g != GemmPath::kNative; })) {
    u_.resize(size_t(n_pairs * n_ff));
  }

  // Step 2: gate+up, h = silu(gate x) * up x per (expert, n_ff range).
  make_items(p, n_ff, items_);
  if (left_size_ < n_expert) {
    left_.reset(new std::atomic<int32_t>[size_t(n_expert)]);
    left_size_ = n_expert;
  }
  for (int64_t e = 0; e < n_expert; ++e) left_[size_t(e)].store(0, std::memory_order_relaxed);
  for (const auto& v : items_) {
    for (const Item& it : v) left_[size_t(it.e)].fetch_add(1, std::memory_order_relaxed);
  }
  for_items(items_, [&](const Item& it) {
    const int64_t e = it.e, m = rows_of(e), b = begin_of(e);
    float* h = h_.data() + b * n_ff;
    float* u = u_.size() >= size_t((b + m) * n_ff) ? u_.data() + b * n_ff : nullptr;  // sized when a fallback may run
    const float* xe = xg_.data() + b * n_embd;
    if (!use_fast) return ref_gate_up(it, h, u, xe, m);
    if (p.gu_packed) {
      qgemm_packed_swiglu_rows(l.gate.type, p.gate[size_t(e)], p.up[size_t(e)], n_embd, it.o_begin, it.o_end,
                               x_gate_[size_t(e)], h, n_ff);
    } else if (gu_path_[size_t(e)] == GemmPath::kNative) {
      const ActPack& xu = share ? x_gate_[size_t(e)] : x_up_[size_t(e)];
      qgemm_swiglu_rows(l.gate.type, p.gate[size_t(e)], l.up.type, p.up[size_t(e)], n_embd, it.o_begin, it.o_end,
                        x_gate_[size_t(e)], xu, h, n_ff);
    } else if (!dnnl_gemm_swiglu_rows(l.gate.type, p.gate[size_t(e)], l.up.type, p.up[size_t(e)], n_embd, it.o_begin,
                                      it.o_end, x_dnnl_[size_t(e)], h, n_ff)
                    .is_ok()) {
      ref_gate_up(it, h, u, xe, m);
    }
    // The last item of this expert prepares h for the down product.
    if (left_[size_t(e)].fetch_sub(1, std::memory_order_acq_rel) == 1) {
      if (down_path_[size_t(e)] == GemmPath::kNative) {
        act_pack_rows(h_pack_[size_t(e)], h, n_ff, 0, m);
      } else {
        h_dnnl_[size_t(e)].prepare(dnnl_precision_of(down_path_[size_t(e)]), h, n_ff, n_ff, m);
      }
    }
  });

  // Step 3: down, y = W_down h per (expert, n_embd range).
  make_items(p, n_embd, items_);
  for_items(items_, [&](const Item& it) {
    const int64_t e = it.e, m = rows_of(e), b = begin_of(e);
    float* y = y_.data() + b * n_embd;
    if (!use_fast) return ref_down(it, y, m, b);
    if (p.down_packed) {
      qgemm_packed_rows(l.down.type, p.down[size_t(e)], n_ff, it.o_begin, it.o_end, h_pack_[size_t(e)], y, n_embd);
    } else if (down_path_[size_t(e)] == GemmPath::kNative) {
      qgemm_rows(l.down.type, p.down[size_t(e)], n_ff, it.o_begin, it.o_end, h_pack_[size_t(e)], y, n_embd);
    } else if (!dnnl_gemm_rows(l.down.type, p.down[size_t(e)], n_ff, it.o_begin, it.o_end, h_dnnl_[size_t(e)], y, n_embd)
                    .is_ok()) {
      ref_down(it, y, m, b);
    }
  });

  // Step 4: each row sums its experts' weighted outputs in expert-id order
  // (0 + w_a y_a + w_b y_b ..., the order the single-threaded loop used).
  const int64_t row_grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n_embd * r.n_used));
  for_range(r.n_rows, row_grain, [&](int64_t b, int64_t end) {
    int32_t slot[64];
    std::vector<int32_t> slot_big;
    int32_t* s = slot;
    if (r.n_used > 64) {
      slot_big.resize(size_t(r.n_used));
      s = slot_big.data();
    }
    for (int64_t row = b; row < end; ++row) {
      const int32_t* ids = r.ids + row * r.n_used;
      for (int32_t k = 0; k < r.n_used; ++k) s[k] = k;
      std::sort(s, s + r.n_used, [&](int32_t a, int32_t c) { return ids[a] < ids[c]; });
      float* dst = out + row * n_embd;
      std::fill(dst, dst + n_embd, 0.0f);
      for (int32_t k = 0; k < r.n_used; ++k) {
        const int64_t pair = row * r.n_used + s[k];
        const float w = r.weights[pair];
        const float* y = y_.data() + pos_of_pair_[size_t(pair)] * n_embd;
        for (int64_t c = 0; c < n_embd; ++c) dst[c] += w * y[c];
      }
    }
  });
  return Status::ok();
}

}  // namespace

std::unique_ptr<ExpertExecutor> make_cpu_expert_executor(CpuExecutorOptions options) {
  return std::make_unique<CpuExpertExecutor>(std::move(options));
}

std::unique_ptr<ExpertExecutor> make_cpu_expert_executor() {
  CpuExecutorOptions o;
  o.kernels = CpuKernels::kReference;
  return std::make_unique<CpuExpertExecutor>(std::move(o));
}

}  // namespace strata
