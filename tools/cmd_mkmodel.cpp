// `strata mkmodel`: write a synthetic GGUF model with a real model's shapes.
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "runtime/base/bytes.h"
#include "runtime/synth/mkmodel.h"
#include "runtime/synth/presets.h"
#include "tools/commands.h"

namespace strata::tools {
namespace {

struct MkModelArgs {
  std::string preset, out, vocab_from;
  std::string type = "q4_k", attn_type, expert_type, shared_type, dense_type, embd_type, output_type,
              router_type = "f32";
  std::optional<uint32_t> layers, experts, experts_used, hidden, ctx, heads, kv_heads, ff, expert_ff;
  uint64_t seed = 42;
  float routing_skew = 0.0f;
  bool quiet = false;
  bool list = false;
};

Result<DType> parse_type(const std::string& flag, const std::string& s) {
  auto t = dtype_from_name(s);
  if (!t || !synth::can_write(*t)) {
    std::string names;
    for (uint32_t id = 0; id < kDTypeIdLimit; ++id) {
      const auto type = static_cast<DType>(id);
      if (!dtype_id_is_known(id) || !synth::can_write(type)) continue;
      names += (names.empty() ? "" : ", ") + std::string(dtype_name(type));
    }
    return invalid_argument(flag + ": expected one of " + names + ", got '" + s + "'");
  }
  return *t;
}

Result<std::optional<DType>> parse_opt_type(const std::string& flag, const std::string& s) {
  if (s.empty()) return std::optional<DType>{};
  STRATA_ASSIGN_OR_RETURN(DType t, parse_type(flag, s));
  return std::optional<DType>{t};
}

// Apply --layers/--hidden/... to a preset. Head widths stay as the preset
// has them; where the architecture derives head width from the embedding
// width, --hidden must stay divisible by the head count.
Status apply_overrides(const MkModelArgs& a, HParams& hp) {
  if (a.layers) {
    hp.n_layer = *a.layers;
    if (hp.n_layer_dense_lead > hp.n_layer) hp.n_layer_dense_lead = hp.n_layer;
  }
  if (a.heads) hp.n_head = *a.heads;
  if (a.kv_heads) hp.n_head_kv = *a.kv_heads;
  if (a.hidden) hp.n_embd = *a.hidden;
  bool derived_heads = hp.arch == Arch::kLlama || hp.arch == Arch::kQwen2 || hp.arch == Arch::kQwen2Moe;
  if (derived_heads && (a.hidden || a.heads)) {
    if (hp.n_head == 0 || hp.n_embd % hp.n_head != 0) {
      return invalid_argument("--hidden " + std::to_string(hp.n_embd) + ": expected a multiple of the head count " +
                              std::to_string(hp.n_head) + " (" + std::string(arch_name(hp.arch)) +
                              " derives the head width from it)");
    }
    hp.n_embd_head_k = hp.n_embd_head_v = hp.n_rot = hp.n_embd / hp.n_head;
  }
  if (a.ctx) hp.n_ctx_train = *a.ctx;
  if (a.ff) hp.n_ff = *a.ff;
  if (a.expert_ff) {
    if (hp.arch == Arch::kLlama) hp.n_ff = *a.expert_ff;
    else hp.n_ff_exp = *a.expert_ff;
  }
  if (a.experts) {
    if (!hp.is_moe()) return invalid_argument("--experts: preset has no experts (a dense model)");
    hp.n_expert = *a.experts;
    if (hp.n_expert_groups > 1 && hp.n_expert % hp.n_expert_groups != 0) {
      hp.n_expert_groups = hp.n_group_used = 1;  // grouping no longer divides: route ungrouped
    }
  }
  if (a.experts_used) {
    if (!hp.is_moe()) return invalid_argument("--experts-used: preset has no experts (a dense model)");
    hp.n_expert_used = *a.experts_used;
  }
  return validate_hparams(hp);
}

class ProgressBar {
 public:
  explicit ProgressBar(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO)), start_(clock::now()) {}
  void update(const synth::MkModelProgress& p) {
    if (quiet_ || p.bytes_total == 0) return;
    double frac = static_cast<double>(p.bytes_done) / p.bytes_total;
    double secs = std::chrono::duration<double>(clock::now() - start_).count();
    double rate = secs > 0 ? p.bytes_done / secs : 0;
    double eta = rate > 0 ? (p.bytes_total - p.bytes_done) / rate : 0;
    int pct = static_cast<int>(frac * 100);
    if (!tty_ && pct < last_pct_ + 10 && p.bytes_done != p.bytes_total) return;
    last_pct_ = pct;
    const int width = 30;
    int fill = static_cast<int>(frac * width);
    std::string bar(fill, '=');
    if (fill < width) bar += '>' + std::string(width - fill - 1, ' ');
    std::fprintf(stderr, "%s[%s] %3d%% %s / %s  %s/s  eta %.0fs  %s%s", tty_ ? "\r" : "", bar.c_str(), pct,
                 format_bytes(p.bytes_done).c_str(), format_bytes(p.bytes_total).c_str(),
                 format_bytes(static_cast<uint64_t>(rate)).c_str(), eta, p.tensor.c_str(), tty_ ? "\033[K" : "\n");
    if (tty_ && p.bytes_done == p.bytes_total) std::fprintf(stderr, "\n");
  }

 private:
  using clock = std::chrono::steady_clock;
  bool quiet_, tty_;
  clock::time_point start_;
  int last_pct_ = -10;
};

void run_mkmodel(const MkModelArgs& a) {
  if (a.list) {
    for (const auto& p : synth::presets()) {
      std::printf("%-30s %-10s %s\n", std::string(p.name).c_str(), std::string(arch_name(p.hp.arch)).c_str(),
                  std::string(p.description).c_str());
    }
    return;
  }
  if (a.preset.empty() || a.out.empty()) {
    return fail(invalid_argument("mkmodel: expected --preset NAME and -o FILE (see --list-presets)"));
  }
  const synth::Preset* preset = synth::find_preset(a.preset);
  if (!preset) return fail(invalid_argument("--preset: expected one of " + synth::preset_list() + ", got '" + a.preset + "'"));

  synth::MkModelOptions opt;
  opt.out_path = a.out;
  opt.hp = preset->hp;
  opt.vocab_from = a.vocab_from;
  opt.seed = a.seed;
  opt.routing_skew = a.routing_skew;
  if (Status s = apply_overrides(a, opt.hp); !s.is_ok()) return fail(s);
  auto base = parse_type("--type", a.type);
  if (!base.is_ok()) return fail(base.status());
  opt.types.base = *base;
  struct { const char* flag; const std::string& value; std::optional<DType>* slot; } per_role[] = {
      {"--attn-type", a.attn_type, &opt.types.attn},       {"--expert-type", a.expert_type, &opt.types.routed},
      {"--shared-type", a.shared_type, &opt.types.shared}, {"--dense-type", a.dense_type, &opt.types.dense},
      {"--embd-type", a.embd_type, &opt.types.embd},       {"--output-type", a.output_type, &opt.types.output},
  };
  for (auto& r : per_role) {
    auto t = parse_opt_type(r.flag, r.value);
    if (!t.is_ok()) return fail(t.status());
    *r.slot = *t;
  }
  auto router = parse_type("--router-type", a.router_type);
  if (!router.is_ok()) return fail(router.status());
  opt.types.router = *router;

  ProgressBar bar(a.quiet);
  auto report = synth::make_model(opt, [&](const synth::MkModelProgress& p) { bar.update(p); });
  if (!report.is_ok()) return fail(report.status());
  if (!a.quiet) {
    for (const auto& f : report->fallbacks) {
      std::fprintf(stderr, "note: %s (row length does not fit the requested type's block)\n", f.c_str());
    }
  }
  std::printf("wrote %s: %s (%s), %u layers, %llu tensors, %s of tensor data, vocabulary %u\n", a.out.c_str(),
              std::string(preset->name).c_str(), std::string(arch_name(opt.hp.arch)).c_str(), opt.hp.n_layer,
              static_cast<unsigned long long>(report->n_tensors), format_bytes(report->tensor_bytes).c_str(),
              report->n_vocab);
}

}  // namespace

void register_mkmodel(CLI::App& app) {
  auto a = std::make_shared<MkModelArgs>();
  CLI::App* cmd = app.add_subcommand("mkmodel", "Write a synthetic GGUF model with a real model's shapes and random weights");
  cmd->add_option("--preset", a->preset, "Shape preset (see --list-presets)");
  cmd->add_option("-o,--output", a->out, "Output GGUF file");
  cmd->add_flag("--list-presets", a->list, "List the presets and exit");
  cmd->add_option("--vocab-from", a->vocab_from, "Copy the tokenizer from this GGUF (e.g. a vocabulary file)");
  cmd->add_option("--type", a->type, "Type of every weight matrix (default q4_k)");
  cmd->add_option("--attn-type", a->attn_type, "Type of attention projections");
  cmd->add_option("--expert-type", a->expert_type, "Type of routed experts");
  cmd->add_option("--shared-type", a->shared_type, "Type of shared experts");
  cmd->add_option("--dense-type", a->dense_type, "Type of dense FFN layers");
  cmd->add_option("--embd-type", a->embd_type, "Type of the token embedding");
  cmd->add_option("--output-type", a->output_type, "Type of the output head");
  cmd->add_option("--router-type", a->router_type, "Type of router weights (default f32)");
  cmd->add_option("--layers", a->layers, "Number of layers");
  cmd->add_option("--experts", a->experts, "Routed experts per MoE layer");
  cmd->add_option("--experts-used", a->experts_used, "Experts each token is routed to");
  cmd->add_option("--hidden", a->hidden, "Embedding width");
  cmd->add_option("--heads", a->heads, "Attention heads");
  cmd->add_option("--kv-heads", a->kv_heads, "Key/value heads");
  cmd->add_option("--ff", a->ff, "Dense FFN width");
  cmd->add_option("--expert-ff", a->expert_ff, "Expert FFN width");
  cmd->add_option("--ctx", a->ctx, "Training context length written to the metadata");
  cmd->add_option("--seed", a->seed, "Random seed (same seed, same file)");
  cmd->add_option("--routing-skew", a->routing_skew, "Make some experts far more popular (0 = uniform; 1-2 = like real models)")
      ->check(CLI::Range(0.0f, 8.0f));
  cmd->add_flag("-q,--quiet", a->quiet, "No progress output");
  cmd->callback([a] { run_mkmodel(*a); });
}

}  // namespace strata::tools
