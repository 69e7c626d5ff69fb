// Model loading: every tensor of the architecture's table is checked for
// presence, shape and a type its op can read before anything is bound, so a
// bad file fails at load time with the tensor's name, never mid-compute.
#include <algorithm>

#include "cpu_kernels/matmul_ref.h"
#include "cpu_kernels/qgemm_packed.h"
#include "cpu_kernels/quant_ref.h"
#include "runtime/base/bytes.h"
#include "runtime/base/check.h"
#include "runtime/base/system_memory.h"
#include "runtime/models/model.h"

namespace strata {
namespace {

bool is_vector_type(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

std::string shape_of(const std::vector<uint64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

std::string blk(uint32_t il, const char* what) { return "blk." + std::to_string(il) + "." + what; }

Status check_tensor(const std::string& path, const gguf::TensorInfo* t, const std::string& name,
                    const std::vector<uint64_t>& ne, std::string_view arch) {
  if (!t) {
    return not_found(path + ": " + name + ": expected a tensor of shape " + shape_of(ne) + " (" + std::string(arch) +
                     "), got none (missing)");
  }
  bool same = true;
  for (int d = 0; d < gguf::kMaxDims; ++d) same = same && t->ne[d] == (size_t(d) < ne.size() ? ne[size_t(d)] : 1);
  if (!same) return invalid_format(path + ": " + name + ": expected shape " + shape_of(ne) + ", got " + t->shape_string());
  if (!t->data) return invalid_format(path + ": " + name + ": expected tensor data, got none");
  if (ne.size() == 1) {
    if (!is_vector_type(t->dtype)) {
      return unsupported(path + ": " + name + ": type " + std::string(dtype_name(t->dtype)) +
                         " is not supported for a vector (norm, bias) weight (expected f32, f16 or bf16)");
    }
  } else if (!matmul_supports(t->dtype)) {
    return unsupported(path + ": " + name + ": type " + std::string(dtype_name(t->dtype)) +
                       " is not supported by the matrix kernels (expected a type with a dequantizer)");
  }
  return Status::ok();
}

Status check_tensors(const gguf::GgufModel& f, const HParams& hp) {
  const std::string& path = f.first().path;
  for (const TensorSpec& s : arch_tensors(hp)) {
    STRATA_RETURN_IF_ERROR(check_tensor(path, f.find_tensor(s.name), s.name, s.ne, arch_name(hp.arch)));
  }
  // Optional: per-pair RoPE frequency divisors (llama 3.1 and later).
  if (const gguf::TensorInfo* t = f.find_tensor("rope_freqs.weight")) {
    STRATA_RETURN_IF_ERROR(check_tensor(path, t, t->name, {hp.n_rot / 2}, arch_name(hp.arch)));
  }
  return Status::ok();
}

// Views of already-validated tensors.
class Binder {
 public:
  Binder(const gguf::GgufModel& f, ComputeContext* ctx) : f_(f), ctx_(ctx) {}

  const gguf::TensorInfo& info(const std::string& name) const {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    STRATA_CHECK(t != nullptr);  // check_tensors ran first
    return *t;
  }
  bool has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }

  Matrix mat(const std::string& name) const {
    const gguf::TensorInfo& t = info(name);
    Matrix m;
    m.type = t.dtype;
    m.data = t.data;
    m.n_in = int64_t(t.ne[0]);
    m.n_out = int64_t(t.ne[1]);
    m.n_mat = int64_t(t.ne[2]);
    m.row_bytes = dtype_row_bytes(t.dtype, t.ne[0]).value_or(0);
    m.ctx = ctx_;
    return m;
  }

  std::vector<float> vec(const std::string& name) const {
    const gguf::TensorInfo& t = info(name);
    std::vector<float> v(size_t(t.n_elems));
    Status s = dequantize_row_ref(t.dtype, t.data, v.data(), int64_t(t.n_elems));
    STRATA_CHECK(s.is_ok());
    return v;
  }
  std::vector<float> vec_if(const std::string& name) const { return has(name) ? vec(name) : std::vector<float>{}; }

  ExpertTensor experts(const std::string& name) const {
    const Matrix m = mat(name);
    ExpertTensor e;
    e.name = name;
    e.type = m.type;
    e.data = m.data;
    e.n_in = m.n_in;
    e.n_out = m.n_out;
    e.n_expert = m.n_mat;
    e.expert_bytes = uint64_t(m.n_out) * m.row_bytes;
    return e;
  }

  DenseFfnWeights ffn(uint32_t il, const char* gate, const char* up, const char* down) const {
    return {mat(blk(il, gate)), mat(blk(il, up)), mat(blk(il, down))};
  }

 private:
  const gguf::GgufModel& f_;
  ComputeContext* ctx_;
};

}  // namespace

void Batch::add_sequence(const std::vector<int32_t>& tokens, int32_t seq, int32_t pos0, bool all_logits) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    add(tokens[i], seq, pos0 + int32_t(i), all_logits || i + 1 == tokens.size());
  }
}

Result<std::unique_ptr<Model>> Model::load(gguf::GgufModel file, const ModelOptions& options) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::move(file);
  STRATA_ASSIGN_OR_RETURN(m->hp_, read_hparams(m->file_));
  STRATA_RETURN_IF_ERROR(check_tensors(m->file_, m->hp_));
  m->ctx_ = std::make_unique<ComputeContext>();
  m->ctx_->kernels = options.kernels;
  m->kv_type_ = options.kv_type;
  std::optional<Topology> topo = options.topology;
  if (options.pool) {
    if (options.n_threads != 0 && options.n_threads != options.pool->n_threads()) {
      return invalid_argument("model options: " + std::to_string(options.n_threads) +
                              " threads asked for, but the given pool has " + std::to_string(options.pool->n_threads()));
    }
    m->ctx_->pool = options.pool;
  } else {
    if (!topo) {
      STRATA_ASSIGN_OR_RETURN(topo, Topology::this_machine());
    }
    CpuPoolOptions po;
    po.n_threads = options.n_threads;
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<CpuPool> pool, CpuPool::create(*topo, po));
    m->ctx_->pool = std::move(pool);
  }
  if (options.experts) {
    m->experts_ = options.experts;
  } else {
    CpuExecutorOptions eo;
    eo.pool = m->ctx_->pool;
    eo.kernels = options.kernels;
    eo.topology = topo;
    eo.numa = options.numa && topo.has_value();
    eo.repack = options.repack;
    eo.progress = options.placement_progress;
    m->experts_ = make_cpu_expert_executor(std::move(eo));
  }
  STRATA_RETURN_IF_ERROR(m->bind());
  STRATA_RETURN_IF_ERROR(m->repack_matrices(options.repack, options.placement_progress));
  return m;
}

std::string Model::placement_summary() const {
  const std::string e = experts_ ? experts_->placement_summary() : std::string();
  return e.empty() || packed_summary_.empty() ? e + packed_summary_ : e + ", " + packed_summary_;
}

Status Model::repack_matrices(ExpertRepack mode, const std::function<void(uint64_t, uint64_t)>& progress) {
  if (mode == ExpertRepack::kOff || ctx_->kernels != CpuKernels::kFast) return Status::ok();
  // Whole 16-row groups: a matrix whose row count is not a multiple of 16
  // (an odd vocabulary's head) keeps its last rows in the file layout.
  std::vector<Matrix*> ms;
  std::vector<int64_t> rows;
  auto consider = [&](Matrix& m) {
    const int64_t n = m.n_out / kPackRows * kPackRows;
    if (!m.empty() && m.n_mat == 1 && n > 0 && qgemm_repacks(m.type, m.n_in, n)) {
      ms.push_back(&m);
      rows.push_back(n);
    }
  };
  consider(output_);
  for (Layer& l : layers_) {
    if (auto* g = std::get_if<GqaWeights>(&l.attn)) {
      for (Matrix* m : {&g->wq, &g->wk, &g->wv, &g->wo}) consider(*m);
    } else if (auto* a = std::get_if<MlaWeights>(&l.attn)) {
      for (Matrix* m : {&a->wq, &a->wq_a, &a->wq_b, &a->wkv_a_mqa, &a->wo}) consider(*m);
    }
    DenseFfnWeights* f = std::get_if<DenseFfnWeights>(&l.ffn);
    if (auto* moe = std::get_if<MoeWeights>(&l.ffn)) f = moe->shared ? &*moe->shared : nullptr;
    if (f) {
      for (Matrix* m : {&f->gate, &f->up, &f->down}) consider(*m);
    }
  }
  if (ms.empty()) return Status::ok();
  std::vector<uint64_t> offset;
  uint64_t total = 0, packed_bytes = 0;  // with and without alignment
  for (size_t i = 0; i < ms.size(); ++i) {
    offset.push_back(total);
    const uint64_t bytes = qgemm_packed_bytes(ms[i]->type, ms[i]->n_in, rows[i]);
    packed_bytes += bytes;
    total += (bytes + 63) / 64 * 64;
  }
  if (mode == ExpertRepack::kAuto && !fits_in_available_memory(total)) {
    packed_summary_ = "matrices not repacked: " + format_bytes(total) + " do not fit in available memory";
    return Status::ok();
  }
  void* mem = map_pages(total);
  if (!mem) {
    return out_of_memory("cannot allocate " + format_bytes(total) + " for repacked matrices (--repack off keeps the file's data)");
  }
  packed_ = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(mem), [total](uint8_t* p) { unmap_pages(p, total); });
  // Work in units of 256 rows, so one big matrix (the output head) is
  // spread over every thread.
  constexpr int64_t kUnit = 256;
  std::vector<std::pair<size_t, int64_t>> units;  // (matrix, first row)
  for (size_t i = 0; i < ms.size(); ++i) {
    for (int64_t o = 0; o < rows[i]; o += kUnit) units.push_back({i, o});
  }
  ByteProgress report(progress, packed_bytes);
  ctx_->pool->parallel_for(int64_t(units.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t u = b; u < e; ++u) {
      const size_t i = units[size_t(u)].first;
      const Matrix& m = *ms[i];
      const int64_t o = units[size_t(u)].second, o_end = std::min(rows[i], o + kUnit);
      qgemm_pack(m.type, m.data, m.n_in, o, o_end, packed_.get() + offset[i]);
      report.add(qgemm_packed_bytes(m.type, m.n_in, o_end - o));
    }
  });
  for (size_t i = 0; i < ms.size(); ++i) {
    ms[i]->packed = packed_.get() + offset[i];
    ms[i]->n_packed = rows[i];
  }
  packed_summary_ = std::to_string(ms.size()) + " matrices repacked (" + format_bytes(total) + ")";
  return Status::ok();
}

Status Model::bind() {
  const Binder b(file_, ctx_.get());
  cfg_ = arch_config(hp_);
  tok_embd_ = &b.info("token_embd.weight");
  output_norm_ = b.vec("output_norm.weight");
  output_ = b.mat(hp_.tied_embeddings ? "token_embd.weight" : "output.weight");
  rope_freqs_ = b.vec_if("rope_freqs.weight");
  const float* ff = rope_freqs_.empty() ? nullptr : rope_freqs_.data();
  cfg_.gqa.rope.freq_factors = ff;
  cfg_.mla.rope.freq_factors = ff;

  layers_.resize(hp_.n_layer);
  std::vector<ExpertLayer> expert_layers;
  for (uint32_t il = 0; il < hp_.n_layer; ++il) {
    Layer& L = layers_[il];
    L.attn_norm = b.vec(blk(il, "attn_norm.weight"));
    L.ffn_norm = b.vec(blk(il, "ffn_norm.weight"));
    if (cfg_.attn == AttnKind::kMla) {
      MlaWeights w;
      if (hp_.q_lora_rank) {
        w.wq_a = b.mat(blk(il, "attn_q_a.weight"));
        w.q_a_norm = b.vec(blk(il, "attn_q_a_norm.weight"));
        w.wq_b = b.mat(blk(il, "attn_q_b.weight"));
      } else {
        w.wq = b.mat(blk(il, "attn_q.weight"));
      }
      w.wkv_a_mqa = b.mat(blk(il, "attn_kv_a_mqa.weight"));
      w.kv_a_norm = b.vec(blk(il, "attn_kv_a_norm.weight"));
      w.wk_b = b.mat(blk(il, "attn_k_b.weight"));
      w.wv_b = b.mat(blk(il, "attn_v_b.weight"));
      w.wo = b.mat(blk(il, "attn_output.weight"));
      L.attn = std::move(w);
    } else {
      GqaWeights w;
      w.wq = b.mat(blk(il, "attn_q.weight"));
      w.wk = b.mat(blk(il, "attn_k.weight"));
      w.wv = b.mat(blk(il, "attn_v.weight"));
      w.wo = b.mat(blk(il, "attn_output.weight"));
      if (hp_.qkv_bias) {
        w.bq = b.vec(blk(il, "attn_q.bias"));
        w.bk = b.vec(blk(il, "attn_k.bias"));
        w.bv = b.vec(blk(il, "attn_v.bias"));
      }
      if (cfg_.qk_norm) {
        w.q_norm = b.vec(blk(il, "attn_q_norm.weight"));
        w.k_norm = b.vec(blk(il, "attn_k_norm.weight"));
      }
      L.attn = std::move(w);
    }
    if (!hp_.layer_is_moe(il)) {
      L.ffn = b.ffn(il, "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight");
      continue;
    }
    MoeWeights w;
    w.router = b.mat(blk(il, "ffn_gate_inp.weight"));
    w.exp_probs_b = b.vec_if(blk(il, "exp_probs_b.bias"));
    w.experts.layer = int(il);
    w.experts.gate = b.experts(blk(il, "ffn_gate_exps.weight"));
    w.experts.up = b.experts(blk(il, "ffn_up_exps.weight"));
    w.experts.down = b.experts(blk(il, "ffn_down_exps.weight"));
    if (b.has(blk(il, "ffn_gate_shexp.weight"))) {
      w.shared = b.ffn(il, "ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight");
    }
    w.shared_gate = b.vec_if(blk(il, "ffn_gate_inp_shexp.weight"));
    if (!w.exp_probs_b.empty() && int64_t(w.exp_probs_b.size()) != w.router.n_out) {
      return invalid_format(file_.first().path + ": " + blk(il, "exp_probs_b.bias") + ": expected " +
                            std::to_string(w.router.n_out) + " entries, got " + std::to_string(w.exp_probs_b.size()));
    }
    Status s = experts_->check_layer(w.experts);
    if (!s.is_ok()) return Status(s.code(), file_.first().path + ": " + s.message());
    expert_layers.push_back(w.experts);
    L.ffn = std::move(w);
  }
  Status s = experts_->place_layers(expert_layers);
  if (!s.is_ok()) return Status(s.code(), file_.first().path + ": " + s.message());
  return Status::ok();
}

KvCache Model::make_cache(uint32_t n_seq, uint32_t n_ctx) const {
  const uint32_t B = KvCache::kDefaultBlock;
  if (cfg_.attn == AttnKind::kMla) return KvCache(hp_.n_layer, mla_k_width(cfg_.mla), 0, n_seq, n_ctx, B, 0, kv_type_);
  return KvCache(hp_.n_layer, gqa_k_width(cfg_.gqa), gqa_v_width(cfg_.gqa), n_seq, n_ctx, B, 0, kv_type_,
                 uint32_t(cfg_.gqa.n_head_kv));
}

}  // namespace strata
