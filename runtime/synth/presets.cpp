// Model shape presets. Figures are the models' published config.json values
// mapped to GGUF hyper-parameters the way the community converter maps them.
#include "runtime/synth/presets.h"

namespace strata::synth {
namespace {

HParams base(Arch arch, const char* name, uint32_t vocab, uint32_t ctx, uint32_t embd, uint32_t layers, uint32_t ff,
             uint32_t heads, uint32_t kv_heads, uint32_t head_dim, float eps, float rope_base) {
  HParams hp;
  hp.arch = arch;
  hp.name = name;
  hp.n_vocab = vocab;
  hp.n_ctx_train = ctx;
  hp.n_embd = embd;
  hp.n_layer = layers;
  hp.n_ff = ff;
  hp.n_head = heads;
  hp.n_head_kv = kv_heads;
  hp.n_embd_head_k = hp.n_embd_head_v = hp.n_rot = head_dim;
  hp.rms_eps = eps;
  hp.rope_freq_base = rope_base;
  return hp;
}

// DeepSeek-V2/V3 family: MLA in the split layout (attn_k_b / attn_v_b, one
// latent "kv head" of kv_lora + rope width), YaRN, leading dense layers.
HParams deepseek(const char* name, uint32_t vocab, uint32_t embd, uint32_t layers, uint32_t ff, uint32_t heads,
                 uint32_t q_lora, uint32_t kv_lora, uint32_t experts, uint32_t used, uint32_t shared, uint32_t ff_exp,
                 uint32_t dense_lead, ExpertGating gating, uint32_t groups, uint32_t groups_used, float scale, bool norm,
                 float rope_base, float yarn_factor, float mscale_all_dim, uint32_t ctx) {
  const uint32_t nope = 128, rope = 64, v = 128;
  HParams hp = base(Arch::kDeepseek2, name, vocab, ctx, embd, layers, ff, heads, 1, kv_lora + rope, 1e-6f, rope_base);
  hp.n_embd_head_v = kv_lora;
  hp.n_rot = rope;
  hp.q_lora_rank = q_lora;
  hp.kv_lora_rank = kv_lora;
  hp.n_embd_head_k_mla = nope + rope;
  hp.n_embd_head_v_mla = v;
  hp.n_expert = experts;
  hp.n_expert_used = used;
  hp.n_expert_shared = shared;
  hp.n_ff_exp = ff_exp;
  hp.n_layer_dense_lead = dense_lead;
  hp.expert_gating = gating;
  hp.n_expert_groups = groups;
  hp.n_group_used = groups_used;
  hp.expert_weights_scale = scale;
  hp.expert_weights_norm = norm;
  hp.rope_scaling_type = "yarn";
  hp.rope_scaling_factor = yarn_factor;
  hp.rope_scaling_orig_ctx = 4096;
  hp.rope_yarn_log_mul = 0.1f * mscale_all_dim;
  return hp;
}

HParams moe(HParams hp, uint32_t experts, uint32_t used, uint32_t ff_exp) {
  hp.n_expert = experts;
  hp.n_expert_used = used;
  hp.n_ff_exp = ff_exp;
  return hp;
}

HParams with_bias(HParams hp) {
  hp.qkv_bias = true;
  return hp;
}

HParams tied(HParams hp) {
  hp.tied_embeddings = true;
  return hp;
}

std::vector<Preset> make_presets() {
  using G = ExpertGating;
  std::vector<Preset> p;
  p.push_back({"deepseek-v3", "DeepSeek-V3/R1 671B",
               deepseek("DeepSeek-V3", 129280, 7168, 61, 18432, 128, 1536, 512, 256, 8, 1, 2048, 3, G::kSigmoid, 8, 4,
                        2.5f, true, 10000.0f, 40.0f, 1.0f, 163840)});
  p.push_back({"deepseek-r1", "DeepSeek-R1 671B (same shapes as V3)",
               deepseek("DeepSeek-R1", 129280, 7168, 61, 18432, 128, 1536, 512, 256, 8, 1, 2048, 3, G::kSigmoid, 8, 4,
                        2.5f, true, 10000.0f, 40.0f, 1.0f, 163840)});
  p.push_back({"kimi-k2", "Kimi-K2 1T",
               deepseek("Kimi-K2", 163840, 7168, 61, 18432, 64, 1536, 512, 384, 8, 1, 2048, 1, G::kSigmoid, 1, 1,
                        2.827f, true, 50000.0f, 32.0f, 1.0f, 131072)});
  p.push_back({"deepseek-v2", "DeepSeek-V2 236B",
               deepseek("DeepSeek-V2", 102400, 5120, 60, 12288, 128, 1536, 512, 160, 6, 2, 1536, 1, G::kSoftmax, 8, 3,
                        16.0f, false, 10000.0f, 40.0f, 0.707f, 163840)});
  p.push_back({"deepseek-v2-lite", "DeepSeek-V2-Lite 16B",
               deepseek("DeepSeek-V2-Lite", 102400, 2048, 27, 10944, 16, 0, 512, 64, 6, 2, 1408, 1, G::kSoftmax, 1, 1,
                        1.0f, false, 10000.0f, 40.0f, 0.707f, 163840)});
  HParams q3_235 = base(Arch::kQwen3Moe, "Qwen3-235B-A22B", 151936, 40960, 4096, 94, 12288, 64, 4, 128, 1e-6f, 1e6f);
  p.push_back({"qwen3-235b-a22b", "Qwen3-235B-A22B", moe(q3_235, 128, 8, 1536)});
  HParams q3_30 = base(Arch::kQwen3Moe, "Qwen3-30B-A3B", 151936, 40960, 2048, 48, 6144, 32, 4, 128, 1e-6f, 1e6f);
  p.push_back({"qwen3-30b-a3b", "Qwen3-30B-A3B", moe(q3_30, 128, 8, 768)});
  HParams q2_57 =
      with_bias(base(Arch::kQwen2Moe, "Qwen2-57B-A14B", 151936, 32768, 3584, 28, 18944, 28, 4, 128, 1e-6f, 1e6f));
  q2_57 = moe(q2_57, 64, 8, 2560);
  q2_57.n_ff_shexp = 20480;
  p.push_back({"qwen2-57b-a14b", "Qwen2-57B-A14B", q2_57});
  HParams mix7 = base(Arch::kLlama, "Mixtral-8x7B", 32000, 32768, 4096, 32, 14336, 32, 8, 128, 1e-5f, 1e6f);
  mix7.n_expert = 8;
  mix7.n_expert_used = 2;
  p.push_back({"mixtral-8x7b", "Mixtral-8x7B", mix7});
  HParams mix22 = base(Arch::kLlama, "Mixtral-8x22B", 32768, 65536, 6144, 56, 16384, 48, 8, 128, 1e-5f, 1e6f);
  mix22.n_expert = 8;
  mix22.n_expert_used = 2;
  p.push_back({"mixtral-8x22b", "Mixtral-8x22B", mix22});
  p.push_back({"llama-3.1-8b", "Llama-3.1-8B",
               base(Arch::kLlama, "Llama-3.1-8B", 128256, 131072, 4096, 32, 14336, 32, 8, 128, 1e-5f, 500000.0f)});
  p.push_back({"llama-3.3-70b", "Llama-3.3-70B",
               base(Arch::kLlama, "Llama-3.3-70B", 128256, 131072, 8192, 80, 28672, 64, 8, 128, 1e-5f, 500000.0f)});
  p.push_back({"qwen2.5-7b", "Qwen2.5-7B",
               with_bias(base(Arch::kQwen2, "Qwen2.5-7B", 152064, 32768, 3584, 28, 18944, 28, 4, 128, 1e-6f, 1e6f))});
  p.push_back({"deepseek-r1-distill-qwen-32b", "DeepSeek-R1-Distill-Qwen-32B",
               with_bias(base(Arch::kQwen2, "DeepSeek-R1-Distill-Qwen-32B", 152064, 131072, 5120, 64, 27648, 40, 8, 128,
                              1e-5f, 1e6f))});
  p.push_back({"qwen3-8b", "Qwen3-8B",
               base(Arch::kQwen3, "Qwen3-8B", 151936, 40960, 4096, 36, 12288, 32, 8, 128, 1e-6f, 1e6f)});
  p.push_back({"qwen3-0.6b", "Qwen3-0.6B (tied embeddings)",
               tied(base(Arch::kQwen3, "Qwen3-0.6B", 151936, 40960, 1024, 28, 3072, 16, 8, 128, 1e-6f, 1e6f))});

  // Tiny models for tests: every structural feature, small enough to run in
  // milliseconds. Widths are multiples of 256 so k-quants apply.
  p.push_back({"tiny-deepseek2", "tiny deepseek2: MLA with q-LoRA, 1 dense + 2 MoE layers, sigmoid, groups",
               deepseek("tiny-deepseek2", 512, 256, 3, 512, 4, 256, 256, 8, 2, 1, 256, 1, G::kSigmoid, 4, 2, 2.5f,
                        true, 10000.0f, 4.0f, 1.0f, 4096)});
  p.push_back({"tiny-deepseek2-lite", "tiny deepseek2 without q-LoRA, softmax gating",
               deepseek("tiny-deepseek2-lite", 512, 256, 2, 512, 4, 0, 256, 8, 2, 2, 256, 1, G::kSoftmax, 1, 1, 1.0f,
                        false, 10000.0f, 4.0f, 0.707f, 4096)});
  p.push_back({"tiny-qwen3moe", "tiny qwen3moe",
               moe(base(Arch::kQwen3Moe, "tiny-qwen3moe", 512, 4096, 256, 2, 768, 4, 2, 64, 1e-6f, 1e6f), 8, 2, 256)});
  HParams tq2 = with_bias(base(Arch::kQwen2Moe, "tiny-qwen2moe", 512, 4096, 256, 2, 512, 4, 2, 64, 1e-6f, 1e6f));
  tq2 = moe(tq2, 8, 2, 256);
  tq2.n_ff_shexp = 512;
  p.push_back({"tiny-qwen2moe", "tiny qwen2moe with a gated shared expert", tq2});
  HParams tmix = base(Arch::kLlama, "tiny-mixtral", 512, 4096, 256, 2, 512, 4, 2, 64, 1e-5f, 1e6f);
  tmix.n_expert = 4;
  tmix.n_expert_used = 2;
  p.push_back({"tiny-mixtral", "tiny llama with Mixtral-style experts", tmix});
  p.push_back({"tiny-llama", "tiny dense llama",
               base(Arch::kLlama, "tiny-llama", 512, 4096, 256, 2, 512, 4, 2, 64, 1e-5f, 10000.0f)});
  p.push_back({"tiny-qwen2", "tiny qwen2 with qkv bias",
               with_bias(base(Arch::kQwen2, "tiny-qwen2", 512, 4096, 256, 2, 512, 4, 2, 64, 1e-6f, 1e6f))});
  p.push_back({"tiny-qwen3", "tiny qwen3 with q/k norms, tied embeddings",
               tied(base(Arch::kQwen3, "tiny-qwen3", 512, 4096, 256, 2, 512, 4, 2, 64, 1e-6f, 1e6f))});
  return p;
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> kPresets = make_presets();
  return kPresets;
}

const Preset* find_preset(std::string_view name) {
  for (const auto& p : presets()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string preset_list() {
  std::string s;
  for (const auto& p : presets()) {
    if (!s.empty()) s += ", ";
    s += p.name;
  }
  return s;
}

}  // namespace strata::synth
