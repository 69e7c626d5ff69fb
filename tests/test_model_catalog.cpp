// The model catalog against published parameter counts and against the
// runtime's own architecture tables; quantization schemes against the block
// sizes of their types and against sizes of files people download.
#include <gtest/gtest.h>

#include <cmath>

#include "offload/model_catalog.h"
#include "runtime/model/arch.h"

namespace strata {
namespace {

const CatalogModel& model(const char* key) {
  auto r = find_catalog_model(key);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return **r;
}

ModelDesc desc(const char* key, const char* quant) {
  auto r = catalog_model_desc(key, quant);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return std::move(r).value();
}

double billions(uint64_t n) { return double(n) / 1e9; }

// Published figures from the model cards (total, active parameters, billions).
struct Published {
  const char* key;
  double total, total_tol, active, active_tol;
  // Qwen, Mistral and dense cards count the whole embedding table as active;
  // DeepSeek's count what a token computes with (one row of it), as
  // active_params does.
  bool card_counts_embeddings;
};

TEST(ModelCatalog, ParameterCountsMatchModelCards) {
  const Published kCards[] = {
      {"deepseek-v3", 671.0, 0.005, 37.0, 0.02, false},     // 671B total, 37B activated (without the MTP module)
      {"kimi-k2", 1030.0, 0.015, 32.0, 0.02, false},        // "1T total, 32B activated" (1.03T counted)
      {"qwen3-235b-a22b", 235.0, 0.01, 22.0, 0.02, true},   // 235B / 22B
      {"qwen3-30b-a3b", 30.5, 0.01, 3.3, 0.02, true},       // 30.5B / 3.3B
      {"deepseek-v2-lite", 15.7, 0.01, 2.4, 0.03, false},   // 15.7B / 2.4B
      {"mixtral-8x22b", 141.0, 0.01, 39.0, 0.01, true},     // 141B / 39B
      {"llama-3.3-70b", 70.6, 0.01, 70.6, 0.01, true},      // dense
      {"deepseek-r1-distill-qwen-32b", 32.8, 0.01, 32.8, 0.01, true},
      {"deepseek-r1-distill-qwen-7b", 7.6, 0.01, 7.6, 0.01, true},
  };
  for (const Published& p : kCards) {
    ModelDesc m = desc(p.key, "BF16");
    EXPECT_NEAR(billions(m.total_params), p.total, p.total * p.total_tol) << p.key;
    const uint64_t rest_of_table = uint64_t{m.dims.n_embd} * (m.dims.n_vocab - 1);
    const uint64_t active = m.active_params + (p.card_counts_embeddings ? rest_of_table : 0);
    EXPECT_NEAR(billions(active), p.active, p.active * p.active_tol) << p.key;
  }
}

TEST(ModelCatalog, DeepSeekV3Arithmetic) {
  ModelDesc m = desc("deepseek-v3", "BF16");
  // 58 MoE layers x 256 experts x 3 matrices of 7168 x 2048.
  EXPECT_EQ(m.moe_layers.size(), 58u);
  EXPECT_EQ(m.moe_layers.front(), 3u);
  const uint64_t routed_params = 58ull * 256 * 3 * 7168 * 2048;
  EXPECT_EQ(m.routed_bytes, routed_params * 2);
  EXPECT_EQ(m.expert_bytes_per_layer[0], 3ull * 7168 * 2048 * 2);
  // MLA latent cache: (512 + 64) f16 per layer.
  EXPECT_EQ(m.kv_bytes_per_token, 61ull * 576 * 2);
  EXPECT_EQ(m.dims.attention(), AttentionKind::kMla);
  ModelDesc llama = desc("llama-3.3-70b", "BF16");
  EXPECT_EQ(llama.kv_bytes_per_token, 80ull * 2 * 8 * 128 * 2);
  EXPECT_EQ(llama.routed_bytes, 0u);
}

HParams to_hparams(const ModelDims& d) {
  HParams hp;
  hp.arch = *arch_from_name(d.arch);
  hp.n_vocab = d.n_vocab;
  hp.n_embd = d.n_embd;
  hp.n_layer = d.n_layer;
  hp.n_ff = d.n_ff;
  hp.n_head = d.n_head;
  hp.n_head_kv = d.n_head_kv;
  hp.n_embd_head_k = d.n_embd_head_k;
  hp.n_embd_head_v = d.n_embd_head_v;
  hp.n_rot = d.n_rot;
  hp.tied_embeddings = d.tied_embeddings;
  hp.qkv_bias = d.qkv_bias;
  hp.n_expert = d.n_expert;
  hp.n_expert_used = d.n_expert_used;
  hp.n_ff_exp = d.n_ff_exp;
  hp.n_expert_shared = d.n_expert_shared;
  hp.n_ff_shexp = d.n_ff_shexp;
  hp.n_layer_dense_lead = d.n_layer_dense_lead;
  hp.expert_gating = d.expert_bias ? ExpertGating::kSigmoid : ExpertGating::kSoftmax;
  hp.q_lora_rank = d.q_lora_rank;
  hp.kv_lora_rank = d.kv_lora_rank;
  hp.n_embd_head_k_mla = d.n_embd_head_k_mla;
  hp.n_embd_head_v_mla = d.n_embd_head_v_mla;
  return hp;
}

// offload/'s table and runtime/'s must describe the same tensors.
TEST(ModelCatalog, TensorTableMatchesArchitectureTables) {
  for (const CatalogModel& c : model_catalog()) {
    HParams hp = to_hparams(c.dims);
    ASSERT_TRUE(validate_hparams(hp).is_ok()) << c.key << ": " << validate_hparams(hp).message();
    std::vector<TensorSpec> want = arch_tensors(hp);
    ModelShape got = shape_from_dims(c.dims);
    ASSERT_EQ(got.tensors.size(), want.size()) << c.key;
    for (size_t i = 0; i < want.size(); ++i) {
      const TensorDesc& g = got.tensors[i];
      ASSERT_EQ(g.name, want[i].name) << c.key;
      EXPECT_EQ(g.role, want[i].role) << c.key << " " << g.name;
      EXPECT_EQ(g.layer, want[i].layer) << c.key << " " << g.name;
      ASSERT_EQ(static_cast<size_t>(g.n_dims), want[i].ne.size()) << c.key << " " << g.name;
      for (size_t k = 0; k < want[i].ne.size(); ++k) EXPECT_EQ(g.ne[k], want[i].ne[k]) << c.key << " " << g.name;
    }
  }
}

TEST(ModelCatalog, Q8_0BytesFollowTheBlockLayout) {
  ModelDesc m = desc("qwen3-30b-a3b", "Q8_0");
  uint64_t want = 0;
  for (const TensorDesc& t : m.shape.tensors) {
    const uint64_t n = tensor_elems(t);
    const bool matrix = t.n_dims >= 2 && t.role != TensorRole::kRouter;
    want += matrix ? n / 32 * 34 : n * 4;
    if (matrix) {
      EXPECT_EQ(t.dtype, DType::kQ8_0) << t.name;
    }
  }
  EXPECT_EQ(m.routed_bytes + m.resident_bytes, want);
}

TEST(ModelCatalog, Q4_K_MGivesMoreBitsWhereLlamaCppDoes) {
  ModelDesc m = desc("qwen3-30b-a3b", "Q4_K_M");
  auto type_of = [&](const std::string& name) {
    for (const TensorDesc& t : m.shape.tensors) {
      if (t.name == name) return t.dtype;
    }
    ADD_FAILURE() << name;
    return DType::kF32;
  };
  // 48 layers: the first and last 6 and every third between get q6_k.
  EXPECT_EQ(type_of("blk.0.ffn_down_exps.weight"), DType::kQ6_K);
  EXPECT_EQ(type_of("blk.6.ffn_down_exps.weight"), DType::kQ4_K);
  EXPECT_EQ(type_of("blk.8.ffn_down_exps.weight"), DType::kQ6_K);
  EXPECT_EQ(type_of("blk.47.attn_v.weight"), DType::kQ6_K);
  EXPECT_EQ(type_of("blk.10.ffn_up_exps.weight"), DType::kQ4_K);
  EXPECT_EQ(type_of("output.weight"), DType::kQ6_K);
  EXPECT_EQ(type_of("blk.3.ffn_gate_inp.weight"), DType::kF32);
  EXPECT_EQ(type_of("blk.3.attn_norm.weight"), DType::kF32);
  // Rows not a multiple of 256 fall back to a 32-element type
  // (DeepSeek-V2-Lite's 1408-wide experts, MLA's 128-wide attn_k_b).
  ModelDesc lite = desc("deepseek-v2-lite", "Q4_K_M");
  for (const TensorDesc& t : lite.shape.tensors) {
    if (t.name == "blk.6.ffn_down_exps.weight") {
      EXPECT_EQ(t.dtype, DType::kQ5_0);
    } else if (t.name == "blk.5.ffn_down_exps.weight") {
      EXPECT_EQ(t.dtype, DType::kQ8_0);  // a q6_k layer: q8_0
    } else if (t.name == "blk.5.attn_k_b.weight") {
      EXPECT_EQ(t.dtype, DType::kQ5_0);
    }
  }
}

// Sizes of files people download (GB = 1e9 bytes), within 4 %.
TEST(ModelCatalog, GgufMixesMatchPublishedFileSizes) {
  struct File {
    const char* model;
    const char* quant;
    double gb;
  } kFiles[] = {
      {"deepseek-v3", "Q4_K_M", 404},     // DeepSeek-R1 Q4_K_M, 9 parts
      {"deepseek-v3", "Q8_0", 713},       // DeepSeek-R1 Q8_0
      {"deepseek-v3", "Q2_K_XL", 212},    // DeepSeek-R1 UD-Q2_K_XL
      {"qwen3-30b-a3b", "Q4_K_M", 18.6},  // Qwen3-30B-A3B-Q4_K_M.gguf
      {"qwen3-30b-a3b", "Q8_0", 32.5},
      {"llama-3.3-70b", "Q4_K_M", 42.5},
      {"deepseek-r1-distill-qwen-7b", "Q4_K_M", 4.68},
  };
  for (const File& f : kFiles) {
    ModelDesc m = desc(f.model, f.quant);
    const double got = double(m.routed_bytes + m.resident_bytes) / 1e9;
    EXPECT_NEAR(got, f.gb, f.gb * 0.04) << f.model << " " << f.quant;
  }
}

TEST(ModelCatalog, CheckpointFormats) {
  ModelDesc fp8 = desc("deepseek-v3", "FP8");
  // ~1 byte per parameter plus bf16 embeddings/output and block scales.
  EXPECT_NEAR(double(fp8.routed_bytes + fp8.resident_bytes) / 1e9, 671 + 2 * 0.93 + 0.05 * 10, 10);
  ModelDesc int4 = desc("kimi-k2", "INT4");
  // Kimi-K2 INT4: experts at 4.5 bits, the rest bf16 (the released checkpoint is ~594 GB).
  EXPECT_NEAR(double(int4.routed_bytes + int4.resident_bytes) / 1e9, 594, 594 * 0.04);
  for (const TensorDesc& t : int4.shape.tensors) {
    if (t.role == TensorRole::kRoutedExpert) {
      EXPECT_EQ(t.dtype, DType::kQ4_0);
    }
  }
}

TEST(ModelCatalog, LookupErrorsNameTheField) {
  auto m = find_catalog_model("gpt-5");
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("--model: expected one of deepseek-v3"), std::string::npos);
  EXPECT_NE(m.status().message().find("got 'gpt-5'"), std::string::npos);
  auto q = find_quant_scheme("Q3_X");
  ASSERT_FALSE(q.is_ok());
  EXPECT_NE(q.status().message().find("--quant: expected one of"), std::string::npos);
  EXPECT_TRUE(find_catalog_model("DeepSeek-R1").is_ok());
  EXPECT_TRUE(find_quant_scheme("q4_k_m").is_ok());
}

TEST(ModelCatalog, BadDimsNameTheField) {
  ModelDims d = model("qwen3-30b-a3b").dims;
  d.n_expert_used = 300;
  Status s = validate_dims(d);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("n_expert_used: expected 1..128, got 300"), std::string::npos) << s.message();
  d = model("llama-3.3-70b").dims;
  d.n_head_kv = 7;
  s = validate_dims(d);
  EXPECT_NE(s.message().find("n_head_kv"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace strata
