// `strata perplexity`: perplexity of a model over a text file, and the KL
// divergence of its distributions from a base model's (saved with
// --kl-divergence-base, compared with --kl-divergence), as llama.cpp's
// perplexity tool computes them and in its file format.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "runtime/eval/logits_file.h"
#include "runtime/eval/perplexity.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/compute_options.h"

namespace strata::tools {
namespace {

struct PerplexityArgs {
  std::string model, text_file, base_file;
  std::optional<int32_t> n_ctx;
  int32_t n_chunks = -1;
  int32_t n_batch = 512;
  bool kl_divergence = false;
  ComputeArgs compute;
};

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": cannot open the text file");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return io_error(path + ": read failed");
  return s.str();
}

using Clock = std::chrono::steady_clock;

// Prints how long the first window took and what the whole run will take.
void print_eta(Clock::time_point t0, int32_t n_chunk) {
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::fprintf(stderr, "perplexity: %.2f s per window, about %.1f min for %d\n", s, s * n_chunk / 60.0, n_chunk);
}

Status run_perplexity(Model& model, const std::optional<Tokenizer>& tok, const PerplexityArgs& a) {
  if (a.text_file.empty()) return invalid_argument("perplexity: expected -f TEXT (or --kl-divergence with a base file)");
  if (!tok) return invalid_argument(a.model + ": perplexity of a text needs the model's tokenizer (tokenizer.ggml.*), got none");
  STRATA_ASSIGN_OR_RETURN(std::string text, read_file(a.text_file));
  std::vector<int32_t> tokens = tok->tokenize(text);
  if (tok->add_eos() && !tokens.empty() && tokens.back() == tok->eos()) tokens.pop_back();
  const int32_t n_ctx = a.n_ctx.value_or(512);
  if (n_ctx < 4) return invalid_argument("-c: expected at least 4 tokens per window, got " + std::to_string(n_ctx));
  if (int64_t(tokens.size()) < 2 * int64_t(n_ctx)) {
    return invalid_argument(a.text_file + ": expected at least " + std::to_string(2 * int64_t(n_ctx)) +
                            " tokens (two windows of -c " + std::to_string(n_ctx) + "), got " +
                            std::to_string(tokens.size()));
  }
  int64_t n_chunk = int64_t(tokens.size()) / n_ctx;
  if (a.n_chunks > 0) n_chunk = std::min<int64_t>(n_chunk, a.n_chunks);
  const int32_t n_vocab = int32_t(model.hparams().n_vocab);
  const size_t n_text_tokens = tokens.size();
  tokens.resize(size_t(n_chunk * n_ctx));

  WindowOptions w;
  w.n_ctx = n_ctx;
  w.n_chunk = int32_t(n_chunk);
  w.bos = tok->add_bos() ? tok->bos() : -1;
  w.n_batch = a.n_batch;
  std::fprintf(stderr, "perplexity: %zu tokens in the text, %d windows of %d, %d scored per window%s\n", n_text_tokens,
               w.n_chunk, n_ctx, scored_per_window(n_ctx), w.bos >= 0 ? ", BOS first" : "");

  std::optional<LogitsFileWriter> out;
  if (!a.base_file.empty()) {
    STRATA_ASSIGN_OR_RETURN(LogitsFileWriter wr, LogitsFileWriter::create(a.base_file, n_ctx, n_vocab, w.n_chunk, tokens));
    out.emplace(std::move(wr));
    std::fprintf(stderr, "perplexity: saving log-probabilities to %s\n", a.base_file.c_str());
  }
  NllStats stats;
  const auto t0 = Clock::now();
  auto on_row = [&](int32_t, int32_t, const float* logits, int32_t next) -> Status {
    stats.add(token_nll(logits, n_vocab, next));
    if (out) return out->add_row(logits);
    return Status::ok();
  };
  auto on_window = [&](int32_t c) -> Status {
    if (c == 0) print_eta(t0, w.n_chunk);
    std::printf("[%d]%.4f,", c + 1, stats.ppl());
    std::fflush(stdout);
    return Status::ok();
  };
  STRATA_RETURN_IF_ERROR(run_windows(model, tokens, w, on_row, on_window));
  if (out) STRATA_RETURN_IF_ERROR(out->finish());
  std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", stats.ppl(), stats.ppl_error());
  return Status::ok();
}

Status run_kl_divergence(Model& model, const std::optional<Tokenizer>& tok, const PerplexityArgs& a) {
  if (a.base_file.empty()) return invalid_argument("--kl-divergence: expected --kl-divergence-base FILE to compare with");
  STRATA_ASSIGN_OR_RETURN(LogitsFileReader in, LogitsFileReader::open(a.base_file));
  const int32_t n_vocab = int32_t(model.hparams().n_vocab);
  if (in.n_vocab() != n_vocab) {
    return invalid_argument(a.base_file + ": expected log-probabilities over this model's " + std::to_string(n_vocab) +
                            " tokens, got " + std::to_string(in.n_vocab()) + " (a base file of another vocabulary)");
  }
  if (a.n_ctx && *a.n_ctx != in.n_ctx()) {
    return invalid_argument("-c: expected " + std::to_string(in.n_ctx()) + " as in " + a.base_file + ", got " +
                            std::to_string(*a.n_ctx));
  }
  if (!a.text_file.empty()) std::fprintf(stderr, "perplexity: the tokens come from the base file; -f is not read\n");
  WindowOptions w;
  w.n_ctx = in.n_ctx();
  w.n_chunk = a.n_chunks > 0 ? std::min(a.n_chunks, in.n_chunk()) : in.n_chunk();
  w.bos = tok && tok->add_bos() ? tok->bos() : -1;
  w.n_batch = a.n_batch;
  std::fprintf(stderr, "perplexity: KL divergence against %s: %d windows of %d, %d scored per window\n",
               a.base_file.c_str(), w.n_chunk, w.n_ctx, scored_per_window(w.n_ctx));

  KldStats kld;
  const auto t0 = Clock::now();
  auto on_row = [&](int32_t, int32_t, const float* logits, int32_t next) -> Status {
    STRATA_ASSIGN_OR_RETURN(LogProbRow base, in.next_row());
    kld.add(logits, n_vocab, base, next);
    return Status::ok();
  };
  auto on_window = [&](int32_t c) -> Status {
    if (c == 0) {
      print_eta(t0, w.n_chunk);
      std::printf("%5s  %-22s  %-24s  %-24s  %-18s  %s\n", "chunk", "PPL(Q)", "ln(PPL(Q)/PPL(base))", "KLD",
                  "RMS dp", "same top");
    }
    const MeanError r = kld.log_ppl_ratio(), d = kld.kld(), p = kld.rms_p_diff(), s = kld.same_top();
    std::printf("%5d  %9.4f +/- %-8.4f  %10.5f +/- %-9.5f  %10.5f +/- %-9.5f  %6.3f +/- %-5.3f%%  %7.3f +/- %.3f%%\n",
                c + 1, kld.nll.ppl(), kld.nll.ppl_error(), r.mean, r.error, d.mean, d.error, 100 * p.mean,
                100 * p.error, 100 * s.mean, 100 * s.error);
    std::fflush(stdout);
    return Status::ok();
  };
  STRATA_RETURN_IF_ERROR(run_windows(model, in.tokens(), w, on_row, on_window));

  std::vector<float> v = kld.kld_values;
  std::sort(v.begin(), v.end());
  const MeanError r = kld.log_ppl_ratio(), d = kld.kld(), p = kld.rms_p_diff(), s = kld.same_top();
  std::printf("\n");
  std::printf("Mean PPL(Q)                : %10.6f +/- %10.6f\n", kld.nll.ppl(), kld.nll.ppl_error());
  std::printf("Mean PPL(base)             : %10.6f +/- %10.6f\n", kld.nll_base.ppl(), kld.nll_base.ppl_error());
  std::printf("Mean ln(PPL(Q)/PPL(base))  : %10.6f +/- %10.6f\n", r.mean, r.error);
  std::printf("Mean KLD                   : %.6g +/- %.6g\n", d.mean, d.error);
  std::printf("Maximum KLD                : %.6g\n", double(v.back()));
  std::printf("99.9%%   KLD                : %.6g\n", percentile(v, 0.999));
  std::printf("99.0%%   KLD                : %.6g\n", percentile(v, 0.99));
  std::printf("Median  KLD                : %.6g\n", percentile(v, 0.5));
  std::printf("Minimum KLD                : %.6g\n", double(v.front()));
  std::printf("RMS dp                     : %10.4f +/- %.4f %%\n", 100 * p.mean, 100 * p.error);
  std::printf("Max |dp|                   : %10.4f %%\n", 100 * kld.max_abs_p_diff);
  std::printf("Same top token             : %10.4f +/- %.4f %% (%lld of %lld)\n", 100 * s.mean, 100 * s.error,
              (long long)kld.n_same_top, (long long)kld.count);
  return Status::ok();
}

void run(const PerplexityArgs& a) {
  auto file = gguf::GgufModel::open(a.model);
  if (!file.is_ok()) return fail(file.status());
  auto mo = model_options(a.compute);
  if (!mo.is_ok()) return fail(mo.status());
  auto model = Model::load(std::move(file.value()), *mo);
  if (!model.is_ok()) return fail(model.status());
  std::optional<Tokenizer> tok;
  if ((*model)->file().find("tokenizer.ggml.tokens")) {
    auto t = Tokenizer::from_gguf((*model)->file());
    if (!t.is_ok()) return fail(t.status());
    tok = std::move(t.value());
  }
  const Status st = a.kl_divergence ? run_kl_divergence(**model, tok, a) : run_perplexity(**model, tok, a);
  if (!st.is_ok()) {
    std::fflush(stdout);
    return fail(st);
  }
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity", "Perplexity over a text, or KL divergence from a base model (llama.cpp's method and file format)");
  cmd->add_option("-m,--model", a->model, "GGUF model file (any part of a split model)")->required();
  cmd->add_option("-f,--file", a->text_file, "Text file to score");
  cmd->add_option("-c,--ctx-size", a->n_ctx, "Tokens per window (default 512; with --kl-divergence, the base file's)");
  cmd->add_option("--chunks", a->n_chunks, "Score at most this many windows (default: all)")->check(CLI::Range(1, 1 << 30));
  cmd->add_option("-b,--batch-size", a->n_batch, "Tokens per forward pass (default 512)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--kl-divergence-base", a->base_file,
                  "Log-probability file: written while scoring -f, or read with --kl-divergence");
  cmd->add_flag("--kl-divergence", a->kl_divergence,
                "Compare with the base file's log-probabilities (its tokens are evaluated; -f is not needed)");
  add_compute_options(cmd, a->compute);
  cmd->callback([a] { run(*a); });
}

}  // namespace strata::tools
