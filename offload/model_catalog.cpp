// The model catalog (published config.json values mapped to GGUF
// hyper-parameters) and the quantization schemes that type its tensors.
#include "offload/model_catalog.h"

#include <algorithm>
#include <cctype>

namespace strata {
namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

ModelDims gqa(const char* arch, uint32_t vocab, uint32_t ctx, uint32_t embd, uint32_t layers, uint32_t ff,
              uint32_t heads, uint32_t kv_heads, uint32_t head_dim) {
  ModelDims d;
  d.arch = arch;
  d.n_vocab = vocab;
  d.n_ctx_train = ctx;
  d.n_embd = embd;
  d.n_layer = layers;
  d.n_ff = ff;
  d.n_head = heads;
  d.n_head_kv = kv_heads;
  d.n_embd_head_k = d.n_embd_head_v = d.n_rot = head_dim;
  return d;
}

// DeepSeek-V2/V3 family (and Kimi-K2): MLA with 128 nope + 64 rope dims per
// head, 128-wide values, leading dense layers, shared experts.
ModelDims mla(uint32_t vocab, uint32_t ctx, uint32_t embd, uint32_t layers, uint32_t ff, uint32_t heads,
              uint32_t q_lora, uint32_t kv_lora, uint32_t experts, uint32_t used, uint32_t shared, uint32_t ff_exp,
              uint32_t dense_lead, bool sigmoid_bias) {
  ModelDims d = gqa("deepseek2", vocab, ctx, embd, layers, ff, heads, 1, kv_lora + 64);
  d.n_embd_head_v = kv_lora;
  d.n_rot = 64;
  d.q_lora_rank = q_lora;
  d.kv_lora_rank = kv_lora;
  d.n_embd_head_k_mla = 128 + 64;
  d.n_embd_head_v_mla = 128;
  d.n_expert = experts;
  d.n_expert_used = used;
  d.n_expert_shared = shared;
  d.n_ff_exp = ff_exp;
  d.n_layer_dense_lead = dense_lead;
  d.expert_bias = sigmoid_bias;
  return d;
}

ModelDims with_experts(ModelDims d, uint32_t experts, uint32_t used, uint32_t ff_exp) {
  d.n_expert = experts;
  d.n_expert_used = used;
  d.n_ff_exp = ff_exp;
  return d;
}

std::vector<CatalogModel> make_catalog() {
  std::vector<CatalogModel> c;
  c.push_back({"deepseek-v3", "DeepSeek-V3/R1 671B", {"deepseek-r1", "deepseek-v3.1", "deepseek-r1-0528"},
               mla(129280, 163840, 7168, 61, 18432, 128, 1536, 512, 256, 8, 1, 2048, 3, true), "FP8", 671, 37});
  c.push_back({"kimi-k2", "Kimi-K2 1T", {"kimi-k2-instruct"},
               mla(163840, 131072, 7168, 61, 18432, 64, 1536, 512, 384, 8, 1, 2048, 1, true), "FP8", 1040, 32});
  c.push_back({"qwen3-235b-a22b", "Qwen3-235B-A22B", {"qwen3-235b"},
               with_experts(gqa("qwen3moe", 151936, 40960, 4096, 94, 12288, 64, 4, 128), 128, 8, 1536), "BF16", 235,
               22});
  c.push_back({"qwen3-30b-a3b", "Qwen3-30B-A3B", {"qwen3-30b"},
               with_experts(gqa("qwen3moe", 151936, 40960, 2048, 48, 6144, 32, 4, 128), 128, 8, 768), "BF16", 30.5,
               3.3});
  c.push_back({"deepseek-v2-lite", "DeepSeek-V2-Lite 16B", {},
               mla(102400, 163840, 2048, 27, 10944, 16, 0, 512, 64, 6, 2, 1408, 1, false), "BF16", 15.7, 2.4});
  ModelDims mix22 = gqa("llama", 32768, 65536, 6144, 56, 16384, 48, 8, 128);
  mix22.n_expert = 8;
  mix22.n_expert_used = 2;
  c.push_back({"mixtral-8x22b", "Mixtral-8x22B", {}, mix22, "BF16", 141, 39});
  c.push_back({"llama-3.3-70b", "Llama-3.3-70B", {"llama-3.1-70b"},
               gqa("llama", 128256, 131072, 8192, 80, 28672, 64, 8, 128), "BF16", 70.6, 0});
  ModelDims d32 = gqa("qwen2", 152064, 131072, 5120, 64, 27648, 40, 8, 128);
  d32.qkv_bias = true;
  c.push_back({"deepseek-r1-distill-qwen-32b", "DeepSeek-R1-Distill-Qwen-32B", {"r1-distill-32b"}, d32, "BF16", 32.8,
               0});
  ModelDims d7 = gqa("qwen2", 152064, 131072, 3584, 28, 18944, 28, 4, 128);
  d7.qkv_bias = true;
  c.push_back({"deepseek-r1-distill-qwen-7b", "DeepSeek-R1-Distill-Qwen-7B", {"r1-distill-7b"}, d7, "BF16", 7.6, 0});
  return c;
}

// llama.cpp's rule for giving some layers' attn_v / ffn_down more bits: the
// first and last eighth of the layers and every third layer between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

bool is_k_or_iq(DType t) {
  switch (t) {
    case DType::kQ2_K: case DType::kQ3_K: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
    case DType::kIQ2_XXS: case DType::kIQ2_XS: case DType::kIQ2_S: case DType::kIQ3_XXS: case DType::kIQ3_S:
    case DType::kIQ1_S: case DType::kIQ1_M: case DType::kIQ4_XS:
      return true;
    default:
      return false;
  }
}

// Rows whose length is not a multiple of 256 cannot hold a 256-element
// super-block; llama.cpp falls back to a 32-element type of similar size.
DType fallback_for_row(DType t, uint64_t ne0) {
  if (!is_k_or_iq(t) || ne0 % 256 == 0) return t;
  switch (t) {
    case DType::kQ4_K: return DType::kQ5_0;
    case DType::kQ5_K: return DType::kQ5_1;
    case DType::kQ6_K: return DType::kQ8_0;
    default: return DType::kIQ4_NL;
  }
}

bool has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

struct SchemeDef {
  const char* name;
  const char* description;
  bool gguf;
};

constexpr SchemeDef kSchemes[] = {
    {"Q8_0", "every matrix q8_0 (norms, routers, biases f32)", true},
    {"Q6_K", "every matrix q6_k", true},
    {"Q5_K_M", "q5_k; attn_v and ffn_down (dense, shared, routed) q6_k in llama.cpp's 'more bits' layers; output q6_k",
     true},
    {"Q4_K_M",
     "q4_k; attn_v and ffn_down (dense, shared, routed) q6_k in llama.cpp's 'more bits' layers (first and last 1/8, "
     "every 3rd between); output q6_k; 8-expert models attn_k/attn_v q8_0",
     true},
    {"Q3_K_M", "q3_k; attn_v, attn_output q4_k; ffn_down q5_k in the first 1/16 layers, q4_k in 'more bits' layers; "
               "output q6_k",
     true},
    {"Q2_K_XL",
     "dynamic-style 2-bit (as the community's UD-Q2_K_XL): routed gate/up iq2_xs, routed down q2_k (dense models: "
     "the FFN); attention, shared experts, dense layers q4_k (down q6_k in 'more bits' layers); embeddings q4_k; "
     "output q6_k",
     true},
    {"IQ4_XS", "every matrix iq4_xs; output q6_k", true},
    {"IQ3_XXS", "routed experts (dense models: every FFN and attention matrix) iq3_xxs; the rest q4_k; output q6_k",
     true},
    {"IQ2_XXS", "routed experts (dense models: every FFN and attention matrix) iq2_xxs; the rest q4_k; output q6_k",
     true},
    {"IQ1_S", "routed experts (dense models: every FFN and attention matrix) iq1_s; the rest q4_k; output q6_k",
     true},
    {"BF16", "every matrix bf16", true},
    {"F16", "every matrix f16", true},
    {"FP8",
     "checkpoint format: matrices fp8 e4m3 with one f32 scale per 128x128 block, embeddings and output bf16; CPU "
     "kernel rate of q8_0",
     false},
    {"INT8",
     "checkpoint format: matrices int8 with one bf16 scale per row, embeddings and output bf16; CPU kernel rate of "
     "q8_0",
     false},
    {"INT4",
     "checkpoint format: routed experts (dense models: every FFN and attention matrix) int4 in groups of 32 with a "
     "bf16 scale (4.5 bits), the rest bf16; CPU kernel rate of q4_0",
     false},
};

uint64_t gguf_bytes(DType t, const TensorDesc& x) {
  const uint64_t ne0 = x.ne[0];
  const uint64_t rows = ne0 ? tensor_elems(x) / ne0 : 0;
  auto rb = dtype_row_bytes(t, ne0);
  return rb ? *rb * rows : tensor_elems(x) * 4;
}

// Type a GGUF scheme gives one tensor, before the row-length fallback.
DType gguf_type(const std::string& s, const ModelDims& d, const TensorDesc& t) {
  const int n = static_cast<int>(d.n_layer);
  const int il = t.layer;
  const bool routed = t.role == TensorRole::kRoutedExpert;
  const bool attn_v = has(t.name, "attn_v.") || has(t.name, "attn_v_b.");
  const bool down = has(t.name, "ffn_down");
  const bool more = il >= 0 && use_more_bits(il, n);
  const bool output = t.role == TensorRole::kOutput;
  if (s == "Q8_0") return DType::kQ8_0;
  if (s == "Q6_K") return DType::kQ6_K;
  if (s == "BF16") return DType::kBF16;
  if (s == "F16") return DType::kF16;
  if (s == "IQ4_XS") return output ? DType::kQ6_K : DType::kIQ4_XS;
  if (s == "Q5_K_M") return output || ((attn_v || down) && more) ? DType::kQ6_K : DType::kQ5_K;
  if (s == "Q4_K_M") {
    if (output) return DType::kQ6_K;
    if (d.n_expert == 8 && (attn_v || has(t.name, "attn_k."))) return DType::kQ8_0;
    return (attn_v || down) && more ? DType::kQ6_K : DType::kQ4_K;
  }
  if (s == "Q3_K_M") {
    if (output) return DType::kQ6_K;
    if (attn_v || has(t.name, "attn_output")) return DType::kQ4_K;
    if (down) return il >= 0 && il < n / 16 ? DType::kQ5_K : more ? DType::kQ4_K : DType::kQ3_K;
    return DType::kQ3_K;
  }
  if (s == "Q2_K_XL") {
    if (output) return DType::kQ6_K;
    // Dense models: the FFN takes the experts' place as the bulk.
    if (routed || (!d.is_moe() && t.role == TensorRole::kDenseFfn)) return down ? DType::kQ2_K : DType::kIQ2_XS;
    return down && more ? DType::kQ6_K : DType::kQ4_K;
  }
  // IQ3_XXS, IQ2_XXS, IQ1_S: the low-bit type on what dominates the bytes.
  const DType low = s == "IQ3_XXS" ? DType::kIQ3_XXS : s == "IQ2_XXS" ? DType::kIQ2_XXS : DType::kIQ1_S;
  if (output) return DType::kQ6_K;
  const bool bulk = d.is_moe() ? routed
                               : t.role == TensorRole::kDenseFfn || t.role == TensorRole::kAttention;
  return bulk ? low : DType::kQ4_K;
}

}  // namespace

const std::vector<CatalogModel>& model_catalog() {
  static const std::vector<CatalogModel> kCatalog = make_catalog();
  return kCatalog;
}

std::string catalog_model_list() {
  std::string s;
  for (const auto& m : model_catalog()) s += (s.empty() ? "" : ", ") + m.key;
  return s;
}

Result<const CatalogModel*> find_catalog_model(std::string_view name) {
  const std::string n = lower(name);
  for (const auto& m : model_catalog()) {
    if (m.key == n) return &m;
    for (const auto& a : m.aliases) {
      if (a == n) return &m;
    }
  }
  return not_found("--model: expected one of " + catalog_model_list() + ", got '" + std::string(name) + "'");
}

std::vector<QuantScheme> quant_schemes() {
  std::vector<QuantScheme> v;
  for (const auto& s : kSchemes) v.push_back({s.name, s.description, s.gguf});
  return v;
}

std::string quant_scheme_list() {
  std::string s;
  for (const auto& q : kSchemes) s += std::string(s.empty() ? "" : ", ") + q.name;
  return s;
}

Result<QuantScheme> find_quant_scheme(std::string_view name) {
  std::string n = lower(name);
  for (const auto& s : kSchemes) {
    if (lower(s.name) == n) return QuantScheme{s.name, s.description, s.gguf};
  }
  // Common spellings: "q4_k" means the usual Q4_K_M mix, "ud-q2_k_xl" the dynamic one.
  if (n == "q4_k" || n == "q4") return find_quant_scheme("Q4_K_M");
  if (n == "q8") return find_quant_scheme("Q8_0");
  if (n == "ud-q2_k_xl") return find_quant_scheme("Q2_K_XL");
  return not_found("--quant: expected one of " + quant_scheme_list() + ", got '" + std::string(name) + "'");
}

TensorFormat tensor_format(const QuantScheme& scheme, const ModelDims& d, const TensorDesc& t) {
  const uint64_t elems = tensor_elems(t);
  // Vectors (norms, biases, the router's score bias) and the router matrix
  // stay f32 in every GGUF mix; checkpoints keep them in f32 too.
  const bool matrix = t.n_dims >= 2 && t.role != TensorRole::kRouter && t.role != TensorRole::kNorm;
  if (!matrix) {
    const bool bf16 = !scheme.gguf && t.role == TensorRole::kRouter && t.n_dims >= 2;
    return {bf16 ? DType::kBF16 : DType::kF32, elems * (bf16 ? 2 : 4)};
  }
  if (scheme.gguf) {
    const DType ty = fallback_for_row(gguf_type(scheme.name, d, t), t.ne[0]);
    return {ty, gguf_bytes(ty, t)};
  }
  const bool table = t.role == TensorRole::kEmbedding || t.role == TensorRole::kOutput;
  if (table) return {DType::kBF16, elems * 2};
  const uint64_t rows = t.ne[0] ? elems / t.ne[0] : 0;
  if (scheme.name == "FP8") {
    const uint64_t blocks = ((t.ne[0] + 127) / 128) * ((rows + 127) / 128);
    return {DType::kQ8_0, elems + blocks * 4};
  }
  if (scheme.name == "INT8") return {DType::kQ8_0, elems + rows * 2};
  // INT4: the bulk in int4 groups of 32 (4 bits + a 16-bit scale per 32), the rest bf16.
  const bool bulk = d.is_moe() ? t.role == TensorRole::kRoutedExpert
                               : t.role == TensorRole::kDenseFfn || t.role == TensorRole::kAttention;
  if (!bulk) return {DType::kBF16, elems * 2};
  return {DType::kQ4_0, elems / 2 + ((elems + 31) / 32) * 2};
}

ModelDesc catalog_model_desc(const CatalogModel& model, const QuantScheme& scheme) {
  ModelShape shape = shape_from_dims(model.dims);
  for (TensorDesc& t : shape.tensors) {
    TensorFormat f = tensor_format(scheme, model.dims, t);
    t.dtype = f.kernel_type;
    t.n_bytes = f.n_bytes;
  }
  auto r = describe_for_plan(model.name, scheme.name, "catalog", model.dims, std::move(shape));
  // Catalog dims are fixed and valid; a failure here is a bug in the table.
  ModelDesc m = std::move(r).value();
  m.notes.push_back(scheme.name + ": " + scheme.description);
  m.notes.push_back("hyper-parameters of " + model.name + " from its published config (" + model.native_format +
                    " checkpoint)");
  return m;
}

Result<ModelDesc> catalog_model_desc(std::string_view model, std::string_view quant) {
  STRATA_ASSIGN_OR_RETURN(const CatalogModel* m, find_catalog_model(model));
  STRATA_ASSIGN_OR_RETURN(QuantScheme q, find_quant_scheme(quant));
  return catalog_model_desc(*m, q);
}

}  // namespace strata
