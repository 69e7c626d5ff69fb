// Synthetic model writer. Weight scales: every matrix has std 1/sqrt(fan_in)
// so each projection keeps unit-scale activations; projections that write
// into the residual stream (attn_output, ffn_down*) are further divided by
// sqrt(2 * n_layer) so the residual's variance grows to about 2x the
// embedding's after all layers instead of exploding (the GPT-2 init rule).
//
// Large quantized tensors are written as random *blocks*: random quant bytes
// with the block scale set so the dequantized values have the target std
// (calibrated by dequantizing a sample). That runs at memory speed, where
// quantizing random floats would take hours for a 671B preset.
#include "runtime/synth/mkmodel.h"

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "cpu_kernels/quant_ref.h"
#include "runtime/base/half.h"
#include "runtime/base/quant_blocks.h"
#include "runtime/base/rng.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/gguf/gguf_writer.h"

namespace strata::synth {
namespace {

// Weights come from the project's seeded generator plus Box-Muller normals.
class Rng : public Xoshiro256 {
 public:
  using Xoshiro256::Xoshiro256;
  float gaussian() {
    // Box-Muller; the spare value is dropped for simplicity.
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
};

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  return z ^ (z >> 31);
}

// Where a block type keeps its scale (d) and, for affine types, its min
// (dmin); `dmin_ratio` centres the values (dmin = ratio * d).
struct BlockScaleLayout {
  DType type;
  int d_off;  // kDInScaleWords: IQ1_M's d, in the top nibbles of its scale words
  int dmin_off;  // -1: none
  float dmin_ratio;
};

constexpr int kDInScaleWords = -2;

constexpr BlockScaleLayout kScaleLayouts[] = {
    {DType::kQ4_0, offsetof(BlockQ4_0, d), -1, 0.0f},
    {DType::kQ4_1, offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m), -7.5f},
    {DType::kQ5_0, offsetof(BlockQ5_0, d), -1, 0.0f},
    {DType::kQ5_1, offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m), -15.5f},
    {DType::kQ8_0, offsetof(BlockQ8_0, d), -1, 0.0f},
    {DType::kQ2_K, offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin), 1.5f},
    {DType::kQ3_K, offsetof(BlockQ3_K, d), -1, 0.0f},
    {DType::kQ4_K, offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin), 7.5f},
    {DType::kQ5_K, offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin), 15.5f},
    {DType::kQ6_K, offsetof(BlockQ6_K, d), -1, 0.0f},
    {DType::kIQ4_NL, offsetof(BlockIQ4_NL, d), -1, 0.0f},
    {DType::kIQ4_XS, offsetof(BlockIQ4_XS, d), -1, 0.0f},
    {DType::kIQ2_XXS, offsetof(BlockIQ2_XXS, d), -1, 0.0f},
    {DType::kIQ2_XS, offsetof(BlockIQ2_XS, d), -1, 0.0f},
    {DType::kIQ3_XXS, offsetof(BlockIQ3_XXS, d), -1, 0.0f},
    {DType::kIQ2_S, offsetof(BlockIQ2_S, d), -1, 0.0f},
    {DType::kIQ3_S, offsetof(BlockIQ3_S, d), -1, 0.0f},
    {DType::kIQ1_S, offsetof(BlockIQ1_S, d), -1, 0.0f},
    {DType::kIQ1_M, kDInScaleWords, -1, 0.0f},
};

const BlockScaleLayout* scale_layout(DType t) {
  for (const auto& l : kScaleLayouts) {
    if (l.type == t) return &l;
  }
  return nullptr;
}

void set_half(uint8_t* block, int off, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(block + off, &h, 2);
}

// Sets a block's scale to d (and its min to d * dmin_ratio).
void set_block_scale(uint8_t* block, const BlockScaleLayout& l, float d) {
  if (l.d_off == kDInScaleWords) {
    set_iq1m_d_bits(block + offsetof(BlockIQ1_M, scales), f32_to_f16(d));
  } else {
    set_half(block, l.d_off, d);
  }
  if (l.dmin_off >= 0) set_half(block, l.dmin_off, d * l.dmin_ratio);
}

// Std of the dequantized values of random blocks whose scale is 1.
Result<double> unit_std(const BlockScaleLayout& l) {
  static std::mutex mu;
  static std::map<DType, double> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(l.type); it != cache.end()) return it->second;
  const auto& tr = dtype_traits(l.type);
  const int n_blocks = 512;
  std::vector<uint8_t> blocks(static_cast<size_t>(n_blocks) * tr.block_bytes);
  Rng rng(12345);
  rng.fill(blocks.data(), blocks.size());
  for (int b = 0; b < n_blocks; ++b) set_block_scale(blocks.data() + static_cast<size_t>(b) * tr.block_bytes, l, 1.0f);
  std::vector<float> vals(static_cast<size_t>(n_blocks) * tr.block_elems);
  STRATA_RETURN_IF_ERROR(dequantize_row_ref(l.type, blocks.data(), vals.data(), static_cast<int64_t>(vals.size())));
  double sum = 0, sum2 = 0;
  for (float v : vals) {
    sum += v;
    sum2 += static_cast<double>(v) * v;
  }
  double mean = sum / vals.size();
  double sd = std::sqrt(std::max(sum2 / vals.size() - mean * mean, 1e-30));
  cache[l.type] = sd;
  return sd;
}

bool is_residual_output(const std::string& name) {
  return name.find("attn_output") != std::string::npos || name.find("ffn_down") != std::string::npos;
}

struct Writer {
  gguf::GgufWriter& w;
  const std::function<void(const MkModelProgress&)>& progress;
  MkModelProgress state;
  uint64_t next_report = 0;

  Status write(const void* p, size_t n) {
    STRATA_RETURN_IF_ERROR(w.write_data(p, n));
    state.bytes_done += n;
    if (progress && state.bytes_done >= next_report) {
      progress(state);
      next_report = state.bytes_done + (64ull << 20);
    }
    return Status::ok();
  }
};

constexpr size_t kChunkElems = size_t{1} << 22;  // floats generated per chunk

// The per-model random state that shapes routing: a direction `c` added to
// every embedding row, and per-expert popularity z_e that tilts router rows
// toward c. With skew 0 both vanish.
struct RoutingSkew {
  std::vector<float> c;      // [n_embd]
  std::vector<float> z;      // [n_expert]
  float skew = 0.0f;
};

Status write_float_tensor(Writer& out, const gguf::GgufWriter&, const TensorSpec& spec, DType type, float std_dev,
                          Rng& rng, const RoutingSkew& skew) {
  const uint64_t ne0 = spec.ne[0];
  uint64_t n_rows = 1;
  for (size_t d = 1; d < spec.ne.size(); ++d) n_rows *= spec.ne[d];
  const bool is_norm = spec.role == TensorRole::kNorm;
  const bool is_expert_bias = spec.name.find("exp_probs_b") != std::string::npos;
  const bool is_embd = spec.role == TensorRole::kEmbedding;
  const bool is_router = spec.name.find("ffn_gate_inp.weight") != std::string::npos;
  const uint64_t rows_per_chunk = std::max<uint64_t>(1, kChunkElems / ne0);
  std::vector<float> f;
  std::vector<uint8_t> q;
  const uint64_t row_bytes = *dtype_row_bytes(type, ne0);
  for (uint64_t r0 = 0; r0 < n_rows; r0 += rows_per_chunk) {
    const uint64_t nr = std::min(rows_per_chunk, n_rows - r0);
    f.resize(nr * ne0);
    for (uint64_t r = 0; r < nr; ++r) {
      float* row = f.data() + r * ne0;
      for (uint64_t i = 0; i < ne0; ++i) {
        if (is_norm) row[i] = 1.0f;
        else if (is_expert_bias) row[i] = skew.skew * 0.5f * (i < skew.z.size() ? skew.z[i] : 0.0f);
        else row[i] = std_dev * rng.gaussian();
      }
      if (skew.skew != 0.0f && is_embd) {
        for (uint64_t i = 0; i < ne0 && i < skew.c.size(); ++i) row[i] += skew.c[i];
      }
      if (skew.skew != 0.0f && is_router) {
        const uint64_t e = r0 + r;  // router row = expert
        const float tilt = 2.0f * skew.skew * (e < skew.z.size() ? skew.z[e] : 0.0f) / std::sqrt(float(ne0));
        for (uint64_t i = 0; i < ne0 && i < skew.c.size(); ++i) row[i] += tilt * skew.c[i] / 0.5f;
      }
    }
    if (type == DType::kF32) {
      STRATA_RETURN_IF_ERROR(out.write(f.data(), f.size() * sizeof(float)));
      continue;
    }
    q.resize(nr * row_bytes);
    // The reference k-quant search is slow (~10 M elements/s a core): spread rows over the cores.
    const unsigned n_threads = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), static_cast<unsigned>(nr)));
    std::vector<Status> status(n_threads);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < n_threads; ++t) {
      pool.emplace_back([&, t] {
        for (uint64_t r = t; r < nr; r += n_threads) {
          Status s = quantize_row_ref(type, f.data() + r * ne0, q.data() + r * row_bytes, static_cast<int64_t>(ne0));
          if (!s.is_ok()) { status[t] = s; return; }
        }
      });
    }
    for (auto& th : pool) th.join();
    for (const auto& s : status) STRATA_RETURN_IF_ERROR(s);
    STRATA_RETURN_IF_ERROR(out.write(q.data(), q.size()));
  }
  return Status::ok();
}

Status write_random_blocks(Writer& out, const TensorSpec& spec, DType type, const BlockScaleLayout& layout,
                           float std_dev, Rng& rng) {
  STRATA_ASSIGN_OR_RETURN(double sd1, unit_std(layout));
  const float d = static_cast<float>(std_dev / sd1);
  const auto& tr = dtype_traits(type);
  uint64_t n_elems = 1;
  for (uint64_t x : spec.ne) n_elems *= x;
  const uint64_t n_blocks = n_elems / tr.block_elems;
  const uint64_t blocks_per_chunk = std::max<uint64_t>(1, (size_t{16} << 20) / tr.block_bytes);
  std::vector<uint8_t> buf;
  for (uint64_t b0 = 0; b0 < n_blocks; b0 += blocks_per_chunk) {
    const uint64_t nb = std::min(blocks_per_chunk, n_blocks - b0);
    buf.resize(nb * tr.block_bytes);
    rng.fill(buf.data(), buf.size());
    for (uint64_t b = 0; b < nb; ++b) set_block_scale(buf.data() + b * tr.block_bytes, layout, d);
    STRATA_RETURN_IF_ERROR(out.write(buf.data(), buf.size()));
  }
  return Status::ok();
}

}  // namespace

bool can_write(DType t) {
  switch (t) {
    case DType::kQ8_1: case DType::kQ8_K: return false;
    case DType::kTQ1_0: case DType::kTQ2_0: case DType::kQ1_0: return false;
    default: return scale_layout(t) != nullptr || can_quantize(t);
  }
}

DType choose_type(const TypeChoice& types, TensorRole role, int n_dims, uint64_t ne0, bool* fell_back) {
  *fell_back = false;
  if (n_dims < 2 || role == TensorRole::kNorm) return DType::kF32;
  DType want = types.base;
  switch (role) {
    case TensorRole::kAttention: want = types.attn.value_or(types.base); break;
    case TensorRole::kRoutedExpert: want = types.routed.value_or(types.base); break;
    case TensorRole::kSharedExpert: want = types.shared.value_or(types.base); break;
    case TensorRole::kDenseFfn: want = types.dense.value_or(types.base); break;
    case TensorRole::kEmbedding: want = types.embd.value_or(types.base); break;
    case TensorRole::kOutput: want = types.output.value_or(types.base); break;
    case TensorRole::kRouter: want = types.router; break;
    default: break;
  }
  if (ne0 % dtype_traits(want).block_elems == 0) return want;
  // Rows that do not fit the block: as llama.cpp's quantizer, fall back to a
  // 32-element type, then to f16.
  *fell_back = true;
  if (ne0 % 32 == 0) return DType::kQ8_0;
  return DType::kF16;
}

Result<MkModelReport> make_model(const MkModelOptions& opt, const std::function<void(const MkModelProgress&)>& progress) {
  HParams hp = opt.hp;
  gguf::GgufWriter w;
  MkModelReport report;

  // Tokenizer first: its vocabulary size decides the embedding shape.
  std::vector<std::pair<std::string, gguf::Value>> tok_kv;
  if (!opt.vocab_from.empty()) {
    STRATA_ASSIGN_OR_RETURN(auto vocab, gguf::GgufModel::open(opt.vocab_from));
    const gguf::Value* tokens = vocab.find("tokenizer.ggml.tokens");
    if (!tokens || !tokens->is_array() || tokens->array_size() == 0) {
      return invalid_argument(opt.vocab_from + ": tokenizer.ggml.tokens: expected a non-empty string array, got none");
    }
    hp.n_vocab = static_cast<uint32_t>(tokens->array_size());
    for (const auto& [k, v] : vocab.first().kv) {
      if (k.rfind("tokenizer.", 0) == 0) tok_kv.emplace_back(k, v);
    }
  }
  if (hp.n_vocab == 0) return invalid_argument("vocabulary size is 0: give --vocab-from or a preset with a vocabulary");
  STRATA_RETURN_IF_ERROR(validate_hparams(hp));

  write_hparams(hp, w);
  w.set("general.type", gguf::Value::string("model"));
  w.set("general.description",
        gguf::Value::string("synthetic model with random weights (strata mkmodel, seed " + std::to_string(opt.seed) +
                            ", routing skew " + std::to_string(opt.routing_skew) + ")"));
  w.set("general.quantization_version", gguf::Value::u32(2));
  for (auto& [k, v] : tok_kv) w.set(k, v);

  std::vector<TensorSpec> specs = arch_tensors(hp);
  std::vector<DType> types;
  types.reserve(specs.size());
  for (const auto& s : specs) {
    bool fell_back = false;
    DType t = choose_type(opt.types, s.role, static_cast<int>(s.ne.size()), s.ne[0], &fell_back);
    if (fell_back) report.fallbacks.push_back(s.name + " -> " + std::string(dtype_name(t)));
    types.push_back(t);
    STRATA_RETURN_IF_ERROR(w.add_tensor(s.name, t, s.ne));
  }
  report.n_tensors = specs.size();
  report.tensor_bytes = w.tensor_bytes_total();
  report.n_vocab = hp.n_vocab;

  RoutingSkew skew;
  skew.skew = opt.routing_skew;
  if (opt.routing_skew != 0.0f) {
    Rng srng(mix(opt.seed, 0x5eed));
    skew.c.resize(hp.n_embd);
    for (auto& x : skew.c) x = 0.5f * srng.gaussian();
    skew.z.resize(hp.n_expert);
    for (auto& x : skew.z) x = srng.gaussian();
  }

  STRATA_RETURN_IF_ERROR(w.begin(opt.out_path));
  Writer out{w, progress, {}, 0};
  out.state.bytes_total = w.tensor_bytes_total();
  const float depth_scale = 1.0f / std::sqrt(2.0f * static_cast<float>(hp.n_layer));
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    out.state.tensor = s.name;
    Rng rng(mix(opt.seed, i + 1));
    float std_dev = 1.0f / std::sqrt(static_cast<float>(s.ne[0]));
    if (s.role == TensorRole::kEmbedding) std_dev = 1.0f;
    if (s.name.find(".bias") != std::string::npos) std_dev = 0.02f;
    if (s.name.find("ffn_gate_inp_shexp") != std::string::npos) std_dev = 1.0f / std::sqrt(static_cast<float>(hp.n_embd));
    if (is_residual_output(s.name)) std_dev *= depth_scale;
    const BlockScaleLayout* layout = scale_layout(types[i]);
    // Embedding and router carry the routing skew, so they go through floats
    // when the type has an encoder; 1-D tensors are f32.
    const bool wants_floats = (s.role == TensorRole::kEmbedding && opt.routing_skew != 0.0f) ||
                              s.role == TensorRole::kRouter || s.ne.size() < 2;
    const bool float_path = layout == nullptr || (wants_floats && can_quantize(types[i]));
    Status st = float_path ? write_float_tensor(out, w, s, types[i], std_dev, rng, skew)
                           : write_random_blocks(out, s, types[i], *layout, std_dev, rng);
    STRATA_RETURN_IF_ERROR(st);
  }
  STRATA_RETURN_IF_ERROR(w.finish());
  if (progress) progress(out.state);
  return report;
}

}  // namespace strata::synth
