// Architecture tables and synthetic models: every tiny preset writes a file
// whose metadata reads back to the same hyper-parameters and whose tensors
// are exactly the architecture's table; weights keep activations finite.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "cpu_kernels/quant_ref.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/model/arch.h"
#include "runtime/synth/mkmodel.h"
#include "runtime/synth/presets.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("strata_test_mkmodel_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

Result<gguf::GgufModel> make(const std::string& preset, const std::string& file, synth::TypeChoice types = {},
                             uint32_t layers = 0, uint64_t seed = 42, float skew = 0.0f) {
  const synth::Preset* p = synth::find_preset(preset);
  if (!p) return not_found(preset);
  synth::MkModelOptions opt;
  opt.hp = p->hp;
  if (layers) {
    opt.hp.n_layer = layers;
    opt.hp.n_layer_dense_lead = std::min(opt.hp.n_layer_dense_lead, layers);
  }
  opt.out_path = (temp_dir() / file).string();
  opt.types = types;
  opt.seed = seed;
  opt.routing_skew = skew;
  STRATA_ASSIGN_OR_RETURN(auto report, synth::make_model(opt));
  (void)report;
  return gguf::GgufModel::open(opt.out_path);
}

class TinyPresets : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyPresets, WritesTheArchitectureTable) {
  const synth::Preset* p = synth::find_preset(GetParam());
  ASSERT_NE(p, nullptr);
  auto model = make(GetParam(), GetParam() + ".gguf");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();

  auto hp = read_hparams(*model);
  ASSERT_TRUE(hp.is_ok()) << hp.status().to_string();
  EXPECT_EQ(hp->arch, p->hp.arch);
  EXPECT_EQ(hp->n_layer, p->hp.n_layer);
  EXPECT_EQ(hp->n_embd, p->hp.n_embd);
  EXPECT_EQ(hp->n_head, p->hp.n_head);
  EXPECT_EQ(hp->n_head_kv, p->hp.n_head_kv);
  EXPECT_EQ(hp->n_embd_head_k, p->hp.n_embd_head_k);
  EXPECT_EQ(hp->n_embd_head_v, p->hp.n_embd_head_v);
  EXPECT_EQ(hp->n_rot, p->hp.n_rot);
  EXPECT_EQ(hp->n_expert, p->hp.n_expert);
  EXPECT_EQ(hp->n_expert_used, p->hp.n_expert_used);
  EXPECT_EQ(hp->n_ff_exp, p->hp.n_ff_exp);
  EXPECT_EQ(hp->n_ff_shexp, p->hp.n_ff_shexp);
  EXPECT_EQ(hp->n_expert_shared, p->hp.n_expert_shared);
  EXPECT_EQ(hp->n_layer_dense_lead, p->hp.n_layer_dense_lead);
  EXPECT_EQ(hp->kv_lora_rank, p->hp.kv_lora_rank);
  EXPECT_EQ(hp->q_lora_rank, p->hp.q_lora_rank);
  EXPECT_EQ(hp->n_embd_head_k_mla, p->hp.n_embd_head_k_mla);
  EXPECT_EQ(hp->expert_gating, p->hp.expert_gating);
  EXPECT_EQ(hp->n_expert_groups, p->hp.n_expert_groups);
  EXPECT_FLOAT_EQ(hp->expert_weights_scale, p->hp.expert_weights_scale);
  EXPECT_EQ(hp->tied_embeddings, p->hp.tied_embeddings);
  EXPECT_EQ(hp->qkv_bias, p->hp.qkv_bias);
  EXPECT_EQ(hp->rope_scaling_type, p->hp.rope_scaling_type);

  auto specs = arch_tensors(*hp);
  ASSERT_EQ(specs.size(), model->tensors().size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& t = model->tensors()[i];
    EXPECT_EQ(t.name, specs[i].name);
    ASSERT_EQ(static_cast<size_t>(t.n_dims), specs[i].ne.size()) << t.name;
    for (int d = 0; d < t.n_dims; ++d) EXPECT_EQ(t.ne[d], specs[i].ne[d]) << t.name;
    int layer = -2;
    EXPECT_EQ(tensor_role_from_name(t.name, &layer), specs[i].role) << t.name;
    EXPECT_EQ(layer, specs[i].layer) << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(All, TinyPresets,
                         ::testing::Values("tiny-deepseek2", "tiny-deepseek2-lite", "tiny-qwen3moe", "tiny-qwen2moe",
                                           "tiny-mixtral", "tiny-llama", "tiny-qwen2", "tiny-qwen3"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) if (c == '-') c = '_';
                           return s;
                         });

TEST(MkModel, SameSeedSameBytesOtherSeedOtherBytes) {
  auto read = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  ASSERT_TRUE(make("tiny-qwen3moe", "a.gguf", {}, 0, 7, 1.0f).is_ok());
  ASSERT_TRUE(make("tiny-qwen3moe", "b.gguf", {}, 0, 7, 1.0f).is_ok());
  ASSERT_TRUE(make("tiny-qwen3moe", "c.gguf", {}, 0, 8, 1.0f).is_ok());
  auto a = read((temp_dir() / "a.gguf").string());
  EXPECT_EQ(a, read((temp_dir() / "b.gguf").string()));
  EXPECT_NE(a, read((temp_dir() / "c.gguf").string()));
}

TEST(MkModel, PrefaultReadsEveryTensorByte) {
  auto model = make("tiny-qwen2moe", "prefault.gguf");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  uint64_t last_done = 0, last_total = 0;
  int calls = 0;
  model->prefault([&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, last_done);
    last_done = done;
    last_total = total;
    ++calls;
  });
  EXPECT_GE(calls, 1);
  EXPECT_EQ(last_total, model->total_tensor_bytes());
  EXPECT_EQ(last_done, last_total);
}

TEST(MkModel, TypesPerRoleAndFallback) {
  synth::TypeChoice types;
  types.base = DType::kQ4_K;
  types.routed = DType::kQ2_K;
  types.attn = DType::kQ8_0;
  auto model = make("tiny-deepseek2", "types.gguf", types);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_EQ(model->find_tensor("blk.1.ffn_up_exps.weight")->dtype, DType::kQ2_K);
  EXPECT_EQ(model->find_tensor("blk.1.attn_q_b.weight")->dtype, DType::kQ8_0);
  EXPECT_EQ(model->find_tensor("blk.0.ffn_up.weight")->dtype, DType::kQ4_K);
  EXPECT_EQ(model->find_tensor("blk.1.ffn_gate_inp.weight")->dtype, DType::kF32);
  EXPECT_EQ(model->find_tensor("blk.0.attn_norm.weight")->dtype, DType::kF32);
  bool fell_back = false;
  EXPECT_EQ(synth::choose_type(types, TensorRole::kDenseFfn, 2, 128, &fell_back), DType::kQ8_0);  // 128 % 256 != 0
  EXPECT_TRUE(fell_back);
  EXPECT_EQ(synth::choose_type(types, TensorRole::kDenseFfn, 2, 48, &fell_back), DType::kF16);
}

// Dequantize a whole tensor (rows of ne[0]) to floats.
std::vector<float> weights(const gguf::TensorInfo& t) {
  std::vector<float> out(t.n_elems);
  const uint64_t row_bytes = t.n_bytes / t.n_rows();
  for (uint64_t r = 0; r < t.n_rows(); ++r) {
    Status s = dequantize_row_ref(t.dtype, t.data + r * row_bytes, out.data() + r * t.ne[0], static_cast<int64_t>(t.ne[0]));
    EXPECT_TRUE(s.is_ok()) << s.to_string();
  }
  return out;
}

// y[n_out] = W x for a GGUF matrix W with ne = {n_in, n_out}.
std::vector<float> matvec(const std::vector<float>& w, const std::vector<float>& x, size_t n_out) {
  const size_t n_in = x.size();
  std::vector<float> y(n_out, 0.0f);
  for (size_t o = 0; o < n_out; ++o) {
    double acc = 0;
    for (size_t i = 0; i < n_in; ++i) acc += static_cast<double>(w[o * n_in + i]) * x[i];
    y[o] = static_cast<float>(acc);
  }
  return y;
}

float rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return static_cast<float>(std::sqrt(s / v.size()));
}

std::vector<float> rmsnorm(const std::vector<float>& h, const std::vector<float>& w) {
  float r = rms(h) + 1e-6f;
  std::vector<float> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) out[i] = h[i] / r * w[i];
  return out;
}

// Types without a quantizer are written as random blocks scaled to the
// spread the quantized types get: the routed experts' values have about
// the same RMS whichever way they were made.
TEST(MkModel, RandomBlockTypesMatchTheQuantizedSpread) {
  auto rms_of = [](DType routed) {
    synth::TypeChoice types;
    types.routed = routed;
    auto model = make("tiny-deepseek2", "spread.gguf", types);
    EXPECT_TRUE(model.is_ok()) << model.status().to_string();
    if (!model.is_ok()) return 0.0f;
    const gguf::TensorInfo* t = model->find_tensor("blk.1.ffn_up_exps.weight");
    EXPECT_EQ(t->dtype, routed);
    const std::vector<float> w = weights(*t);
    for (float v : w) EXPECT_TRUE(std::isfinite(v));
    return rms(w);
  };
  const float want = rms_of(DType::kQ4_K);
  ASSERT_GT(want, 0.0f);
  for (DType t : {DType::kIQ4_XS, DType::kIQ2_XXS, DType::kIQ2_XS, DType::kIQ3_XXS, DType::kIQ2_S, DType::kIQ3_S,
                  DType::kIQ1_S, DType::kIQ1_M}) {
    const float got = rms_of(t);
    EXPECT_GT(got, 0.8f * want) << dtype_name(t);
    EXPECT_LT(got, 1.25f * want) << dtype_name(t);
  }
}

// A single token's forward pass is exact without a KV cache: attention over
// one position returns V. So a 64-layer dense model can be run here with
// plain loops to check the weight scaling keeps the residual stream finite
// and of order one, as the mkmodel contract promises.
TEST(MkModel, ActivationsStayFiniteThrough64Layers) {
  auto model = make("tiny-llama", "deep.gguf", {}, 64);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto hp = read_hparams(*model);
  ASSERT_TRUE(hp.is_ok());
  const size_t E = hp->n_embd, F = hp->n_ff, dh = hp->n_embd_head_v, group = hp->n_head / hp->n_head_kv;
  auto embd = weights(*model->find_tensor("token_embd.weight"));
  std::vector<float> h(embd.begin() + 17 * E, embd.begin() + 18 * E);
  const float rms0 = rms(h);
  auto t = [&](uint32_t il, const char* n) { return weights(*model->find_tensor("blk." + std::to_string(il) + "." + n)); };
  for (uint32_t il = 0; il < hp->n_layer; ++il) {
    auto x = rmsnorm(h, t(il, "attn_norm.weight"));
    auto v = matvec(t(il, "attn_v.weight"), x, hp->n_head_kv * dh);
    std::vector<float> attn(hp->n_head * dh);
    for (size_t hd = 0; hd < hp->n_head; ++hd) {
      for (size_t i = 0; i < dh; ++i) attn[hd * dh + i] = v[(hd / group) * dh + i];
    }
    auto o = matvec(t(il, "attn_output.weight"), attn, E);
    for (size_t i = 0; i < E; ++i) h[i] += o[i];
    x = rmsnorm(h, t(il, "ffn_norm.weight"));
    auto g = matvec(t(il, "ffn_gate.weight"), x, F);
    auto u = matvec(t(il, "ffn_up.weight"), x, F);
    for (size_t i = 0; i < F; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    auto d = matvec(t(il, "ffn_down.weight"), g, E);
    for (size_t i = 0; i < E; ++i) h[i] += d[i];
    ASSERT_TRUE(std::isfinite(rms(h))) << "layer " << il;
  }
  const float growth = rms(h) / rms0;
  EXPECT_GT(growth, 1.0f);
  EXPECT_LT(growth, 4.0f);  // about sqrt(2) by construction
  auto logits = matvec(weights(*model->find_tensor("output.weight")), rmsnorm(h, weights(*model->find_tensor("output_norm.weight"))),
                       hp->n_vocab);
  const float lr = rms(logits);
  EXPECT_TRUE(std::isfinite(lr));
  EXPECT_GT(lr, 0.1f);
  EXPECT_LT(lr, 10.0f);
}

TEST(Arch, RoleOfNames) {
  int layer = 0;
  EXPECT_EQ(tensor_role_from_name("token_embd.weight", &layer), TensorRole::kEmbedding);
  EXPECT_EQ(layer, -1);
  EXPECT_EQ(tensor_role_from_name("output.weight", &layer), TensorRole::kOutput);
  EXPECT_EQ(tensor_role_from_name("output_norm.weight", &layer), TensorRole::kNorm);
  EXPECT_EQ(tensor_role_from_name("blk.12.ffn_down_exps.weight", &layer), TensorRole::kRoutedExpert);
  EXPECT_EQ(layer, 12);
  EXPECT_EQ(tensor_role_from_name("blk.3.ffn_gate_inp_shexp.weight", &layer), TensorRole::kSharedExpert);
  EXPECT_EQ(tensor_role_from_name("blk.3.ffn_gate_inp.weight", &layer), TensorRole::kRouter);
  EXPECT_EQ(tensor_role_from_name("blk.3.exp_probs_b.bias", &layer), TensorRole::kRouter);
  EXPECT_EQ(tensor_role_from_name("blk.0.attn_kv_a_norm.weight", &layer), TensorRole::kNorm);
  EXPECT_EQ(tensor_role_from_name("blk.0.attn_k_b.weight", &layer), TensorRole::kAttention);
  EXPECT_EQ(tensor_role_from_name("blk.0.ffn_up.weight", &layer), TensorRole::kDenseFfn);
  EXPECT_EQ(tensor_role_from_name("rope_freqs.weight", &layer), TensorRole::kOther);
}

TEST(Arch, RoleSummaryArithmetic) {
  ModelShape s;
  s.n_layer = 2;
  s.n_expert = 8;
  s.n_expert_used = 2;
  auto add = [&](const char* name, TensorRole role, int layer, uint64_t bytes, uint64_t ne1) {
    TensorDesc d;
    d.name = name;
    d.role = role;
    d.layer = layer;
    d.n_bytes = bytes;
    d.ne[1] = ne1;
    s.tensors.push_back(d);
  };
  add("token_embd.weight", TensorRole::kEmbedding, -1, 1000 * 64, 1000);
  add("blk.1.ffn_up_exps.weight", TensorRole::kRoutedExpert, 1, 8000, 1);
  add("blk.1.attn_q.weight", TensorRole::kAttention, 1, 500, 1);
  add("output.weight", TensorRole::kOutput, -1, 64000, 1);
  RoleSummary r = summarize_roles(s);
  EXPECT_EQ(r.of(TensorRole::kRoutedExpert), 8000u);
  EXPECT_EQ(r.routed_bytes_per_layer.at(1), 8000u);
  EXPECT_EQ(r.routed_bytes_per_layer.at(0), 0u);
  EXPECT_EQ(r.total_bytes, 64000u + 8000u + 500u + 64000u);
  EXPECT_EQ(r.active_bytes_per_token, 64u + 8000u * 2 / 8 + 500u + 64000u);
}

TEST(Arch, ValidateRejectsInconsistentShapes) {
  HParams hp = synth::find_preset("tiny-qwen3moe")->hp;
  EXPECT_TRUE(validate_hparams(hp).is_ok());
  HParams bad = hp;
  bad.n_expert_used = bad.n_expert + 1;
  EXPECT_EQ(validate_hparams(bad).code(), StatusCode::kInvalidFormat);
  bad = hp;
  bad.n_head_kv = 3;  // does not divide 4 heads
  EXPECT_FALSE(validate_hparams(bad).is_ok());
  bad = hp;
  bad.n_layer = 0;
  EXPECT_FALSE(validate_hparams(bad).is_ok());
}

TEST(Arch, RealPresetArithmetic) {
  // DeepSeek-V3: 58 MoE layers x 256 experts x 3 matrices of 7168 x 2048.
  HParams hp = synth::find_preset("deepseek-v3")->hp;
  uint64_t routed = 0, params = 0;
  for (const auto& t : arch_tensors(hp)) {
    uint64_t n = 1;
    for (uint64_t x : t.ne) n *= x;
    params += n;
    if (t.role == TensorRole::kRoutedExpert) routed += n;
  }
  EXPECT_EQ(routed, 58ull * 256 * 3 * 7168 * 2048);
  // 671B total in the published count includes the MTP layer strata does not write (~12B).
  EXPECT_GT(params, 650'000'000'000ull);
  EXPECT_LT(params, 675'000'000'000ull);
}

}  // namespace
}  // namespace strata

namespace {
// Remove the files the tests wrote.
class TempCleanup : public ::testing::Environment {
 public:
  void TearDown() override { std::filesystem::remove_all(strata::temp_dir()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new TempCleanup);
}  // namespace
