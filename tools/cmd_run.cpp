// `strata run`: load a model, run a prompt (text through the model's
// tokenizer, or token ids), generate, and report prompt and generation speed.
#include <bit>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <sstream>

#include "offload/model_shape.h"
#include "runtime/base/bytes.h"
#include "runtime/models/generate.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/compute_options.h"

namespace strata::tools {
namespace {

struct RunArgs {
  std::string model, prompt, tokens;
  int32_t n_predict = 32;
  SamplerParams sampling;
  std::optional<uint64_t> seed;
  bool ignore_eos = false;
  std::string dump_logits;  // file for every prompt position's logits; empty: none
  ComputeArgs compute;
};

Result<std::vector<int32_t>> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::istringstream in(s);
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const long v = std::strtol(word.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > INT32_MAX) {
      return invalid_argument("--tokens: expected token ids separated by spaces, got '" + word + "'");
    }
    ids.push_back(int32_t(v));
  }
  if (ids.empty()) return invalid_argument("--tokens: expected at least one token id, got none");
  return ids;
}

// Runs the prompt on a cache of its own with logits for every position and
// writes them as raw little-endian f32, n_prompt rows of n_vocab: the view an
// independent implementation's logits are compared against.
Status dump_prompt_logits(Model& m, const std::vector<int32_t>& prompt, const std::string& path) {
  static_assert(std::endian::native == std::endian::little, "--dump-logits writes the host's float layout");
  KvCache cache = m.make_cache(1, uint32_t(prompt.size()));
  Batch batch;
  batch.add_sequence(prompt, 0, 0, /*all_logits=*/true);
  STRATA_ASSIGN_OR_RETURN(Logits logits, m.forward(batch, cache));
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return io_error("--dump-logits: cannot create '" + path + "'");
  const size_t n = logits.data.size();
  const bool ok = std::fwrite(logits.data.data(), sizeof(float), n, f) == n;
  if (std::fclose(f) != 0 || !ok) return io_error("--dump-logits: cannot write '" + path + "'");
  return Status::ok();
}

void run(const RunArgs& a) {
  if (a.prompt.empty() == a.tokens.empty()) {
    return fail(invalid_argument("run: expected exactly one of -p TEXT or --tokens \"ID ID ...\""));
  }
  const auto t_load = std::chrono::steady_clock::now();
  auto file = gguf::GgufModel::open(a.model);
  if (!file.is_ok()) return fail(file.status());
  auto mo = model_options(a.compute);
  if (!mo.is_ok()) return fail(mo.status());
  auto model = Model::load(std::move(file.value()), *mo);
  if (!model.is_ok()) return fail(model.status());
  Model& m = **model;
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();

  std::optional<Tokenizer> tok;
  if (m.file().find("tokenizer.ggml.tokens")) {
    auto t = Tokenizer::from_gguf(m.file());
    if (!t.is_ok()) return fail(t.status());
    tok = std::move(t.value());
  }
  std::vector<int32_t> prompt;
  if (!a.prompt.empty()) {
    if (!tok) return fail(invalid_argument(a.model + ": -p needs a tokenizer in the file (tokenizer.ggml.*), got none; use --tokens"));
    prompt = tok->tokenize(a.prompt);
    if (prompt.empty()) return fail(invalid_argument("-p: the text gives no tokens"));
  } else {
    auto ids = parse_ids(a.tokens);
    if (!ids.is_ok()) return fail(ids.status());
    prompt = std::move(ids.value());
  }
  if (!a.dump_logits.empty()) {
    if (Status s = dump_prompt_logits(m, prompt, a.dump_logits); !s.is_ok()) return fail(s);
  }

  GenerateOptions opt;
  opt.n_predict = a.n_predict;
  opt.sampling = a.sampling;
  opt.sampling.seed = a.seed ? *a.seed : std::random_device{}();
  if (tok && !a.ignore_eos) opt.is_stop = [&](int32_t id) { return tok->is_eog(id); };

  std::optional<StreamingDetokenizer> detok;
  if (!a.prompt.empty()) {
    detok.emplace(*tok);
    std::fputs(a.prompt.c_str(), stdout);
  }
  bool first = true;
  auto st = generate(m, prompt, opt, [&](int32_t id) {
    if (detok) {
      std::fputs(detok->push(id).c_str(), stdout);
    } else {
      std::printf(first ? "%d" : " %d", id);
    }
    first = false;
    std::fflush(stdout);
    return true;
  });
  if (detok) std::fputs(detok->flush().c_str(), stdout);
  std::printf("\n");
  if (!st.is_ok()) return fail(st.status());

  // Weight bytes one decode step reads (routed experts at their expected
  // share under uniform routing), for the achieved-bandwidth figure.
  const RoleSummary roles = summarize_roles(describe_model(m.file(), m.hparams()));
  const double gbps = st->decode_tok_s() * double(roles.active_bytes_per_token) / 1e9;
  std::fprintf(stderr,
               "strata run: load %.2f s | prompt %lld tok in %.1f ms (%.1f tok/s) | generation %lld tok, %lld decode "
               "steps in %.1f ms (%.1f tok/s, ~%.2f GB/s of weights at %s/tok) | time to first token %.1f ms | %s\n",
               load_s, (long long)st->n_prompt, st->prompt_s * 1e3, st->prompt_tok_s(), (long long)st->n_generated,
               (long long)st->n_decode_steps, st->decode_s * 1e3, st->decode_tok_s(), gbps,
               format_bytes(roles.active_bytes_per_token).c_str(), st->first_token_s * 1e3,
               opt.sampling.temp <= 0 ? "greedy" : ("seed " + std::to_string(opt.sampling.seed)).c_str());
}

}  // namespace

void register_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text (or token ids) from a prompt, CPU only for now");
  cmd->add_option("-m,--model", a->model, "GGUF model file (any part of a split model)")->required();
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text (needs the model's tokenizer)");
  cmd->add_option("--tokens", a->tokens, "Prompt as token ids, e.g. \"1 2 3\"; prints generated ids");
  cmd->add_option("-n,--n-predict", a->n_predict, "Tokens to generate (default 32)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temp", a->sampling.temp, "Temperature; 0 = greedy (default 0.8)");
  cmd->add_option("--top-k", a->sampling.top_k, "Keep the k most likely tokens; 0 = all (default 40)");
  cmd->add_option("--top-p", a->sampling.top_p, "Keep the smallest set with this probability mass; 1 = off (default 0.95)");
  cmd->add_option("--min-p", a->sampling.min_p, "Drop tokens below min-p times the best one's probability (default 0.05)");
  cmd->add_option("--seed", a->seed, "Sampling seed (default: random, printed with the stats)");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at end-of-generation tokens");
  cmd->add_option("--dump-logits", a->dump_logits,
                  "Write the logits of every prompt position to FILE (raw little-endian f32, n_prompt x n_vocab)");
  add_compute_options(cmd, a->compute);
  cmd->callback([a] { run(*a); });
}

}  // namespace strata::tools
