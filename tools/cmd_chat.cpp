// `strata chat`: an interactive conversation in the terminal. Reads lines
// (a line editor with history on a terminal, plain lines from a pipe),
// handles slash commands, and streams answers from runtime/chat/session.h.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "runtime/base/bytes.h"
#include "runtime/base/system_memory.h"
#include "runtime/chat/session.h"
#include "runtime/models/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/compute_options.h"
#include "tools/line_editor.h"
#include "tools/load_progress.h"

namespace strata::tools {
namespace {

// Set by SIGINT; the session checks it before every token. A signal handler
// can only reach a global.
std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct ChatArgs {
  std::string model, template_file, system;
  uint32_t n_ctx = 4096;
  int32_t max_tokens = 1024;
  SamplerParams sampling;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  std::vector<std::string> logit_bias;  // "ID=BIAS"
  ComputeArgs compute;
};

// "ID=BIAS" (BIAS a number, or -inf to ban the token).
Status parse_logit_bias(const std::vector<std::string>& items, SamplerParams* p) {
  for (const std::string& item : items) {
    const size_t eq = item.find('=');
    char* end = nullptr;
    const long id = eq == std::string::npos ? -1 : std::strtol(item.c_str(), &end, 10);
    if (eq == std::string::npos || end != item.c_str() + eq || id < 0) {
      return invalid_argument("--logit-bias: expected ID=BIAS, got '" + item + "'");
    }
    const std::string v = item.substr(eq + 1);
    const float bias = v == "-inf" ? -INFINITY : std::strtof(v.c_str(), &end);
    if (v != "-inf" && (v.empty() || *end != '\0')) {
      return invalid_argument("--logit-bias: expected a number or -inf after '=', got '" + item + "'");
    }
    p->logit_bias[int32_t(id)] = bias;
  }
  return Status::ok();
}

const char* kHelp =
    "commands:\n"
    "  /help                 this list\n"
    "  /clear                forget the conversation (keeps the system prompt)\n"
    "  /system TEXT          set the system prompt (empty: none)\n"
    "  /set NAME VALUE       temp, top_p, top_k, min_p, seed, max, repeat_penalty,\n"
    "                        presence_penalty, frequency_penalty, repeat_last_n\n"
    "  /show                 model, template and settings\n"
    "  /save FILE, /load FILE  the conversation as JSON\n"
    "  /stats                timings of the last answer and context use\n"
    "  /regen                answer the last message again\n"
    "  /bye                  exit (also Ctrl-D)\n"
    "  \"\"\"                   start and end a multi-line message\n"
    "Ctrl-C stops an answer and keeps the conversation.\n";

class Chat {
 public:
  Chat(const ChatArgs& a, Model& m, chat::ChatSession& s)
      : args_(a), model_(m), s_(s), tty_in_(isatty(0)), tty_out_(isatty(1)), editor_(0, 1) {
    editor_.set_interrupt_hint("(Ctrl-D or /bye to exit)");
  }

  void loop() {
    if (tty_in_) std::printf("strata chat: /help for commands, Ctrl-D or /bye to exit\n");
    for (;;) {
      std::string line;
      if (!read_message(&line)) break;
      if (line.empty()) continue;
      if (sanitize_utf8(line) != line) {
        std::printf("error: the input is not valid UTF-8; ignored\n");
        continue;
      }
      if (line[0] == '/' && line.rfind("//", 0) != 0) {
        if (!command(line)) break;
        continue;
      }
      run_turn([&](const chat::ChatSession::Sink& sink) { return s_.send(line, sink, &g_interrupted); });
    }
  }

 private:
  // One message: a line, or a """ block. False at end of input.
  bool read_message(std::string* msg) {
    std::string line;
    if (!read_line(tty_in_ ? ">>> " : "", &line)) return false;
    if (line.rfind("\"\"\"", 0) != 0) {
      *msg = line;
      return true;
    }
    std::string text = line.substr(3);
    bool closed = false;
    auto close_in = [&](std::string& l) {
      if (l.size() >= 3 && l.compare(l.size() - 3, 3, "\"\"\"") == 0) {
        l.resize(l.size() - 3);
        return true;
      }
      return false;
    };
    if (close_in(text)) closed = true;
    while (!closed) {
      if (!read_line(tty_in_ ? "... " : "", &line)) break;
      closed = close_in(line);
      text += (text.empty() ? "" : "\n") + line;
    }
    *msg = text;
    return true;
  }

  bool read_line(const std::string& prompt, std::string* line) {
    if (!tty_in_) {
      if (!std::getline(std::cin, *line)) return false;
      if (!line->empty() && line->back() == '\r') line->pop_back();
      return true;
    }
    for (;;) {
      std::fflush(stdout);
      switch (editor_.read_line(prompt, line)) {
        case ReadResult::kLine:
          editor_.add_history(*line);
          return true;
        case ReadResult::kEof:
          return false;
        case ReadResult::kInterrupt:
          break;
      }
    }
  }

  template <typename F>
  void run_turn(F&& start) {
    g_interrupted.store(false);
    bool dim = false;
    auto sink = [&](chat::TextKind kind, std::string_view text) {
      const bool want_dim = kind == chat::TextKind::kReasoning && tty_out_;
      if (want_dim != dim) {
        std::fputs(want_dim ? "\x1b[2m" : "\x1b[0m", stdout);
        dim = want_dim;
      }
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    auto st = start(sink);
    if (dim) std::fputs("\x1b[0m", stdout);
    std::printf("\n");
    g_interrupted.store(false);
    if (!st.is_ok()) {
      std::printf("error: %s\n", st.status().message().c_str());
      std::fflush(stdout);
      return;
    }
    if (st->interrupted) std::printf("[interrupted]\n");
    if (st->context_full) std::printf("[context full: %u tokens; /clear to start over]\n", s_.n_ctx());
    if (st->hit_max) std::printf("[stopped at %d tokens; /set max N to change]\n", s_.options().max_tokens);
    print_stats(*st);
  }

  void print_stats(const chat::TurnStats& st) {
    std::fflush(stdout);  // the answer comes before its stats when both streams go to one place
    std::fprintf(stderr, "%s[prompt %lld tok (%lld cached), %.1f tok/s | answer %lld tok, %.1f tok/s | context %lld/%u]%s\n",
                 tty_out_ ? "\x1b[2m" : "", (long long)st.n_prompt, (long long)st.n_reused, st.prompt_tok_s(),
                 (long long)st.n_generated, st.gen_tok_s(), (long long)s_.n_cached(), s_.n_ctx(),
                 tty_out_ ? "\x1b[0m" : "");
  }

  // False: leave the chat.
  bool command(const std::string& line) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    std::string rest;
    std::getline(in, rest);
    if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
    if (cmd == "/bye" || cmd == "/exit" || cmd == "/quit") return false;
    if (cmd == "/help" || cmd == "/?") {
      std::fputs(kHelp, stdout);
    } else if (cmd == "/clear") {
      s_.clear();
      std::printf("conversation cleared\n");
    } else if (cmd == "/system") {
      s_.set_system(rest);
      std::printf(rest.empty() ? "system prompt removed\n" : "system prompt set\n");
    } else if (cmd == "/set") {
      set(rest);
    } else if (cmd == "/show") {
      show();
    } else if (cmd == "/save") {
      save(rest);
    } else if (cmd == "/load") {
      load(rest);
    } else if (cmd == "/stats") {
      print_stats(s_.last_stats());
    } else if (cmd == "/regen") {
      run_turn([&](const chat::ChatSession::Sink& sink) { return s_.regenerate(sink, &g_interrupted); });
    } else {
      std::printf("unknown command '%s'; /help lists them\n", cmd.c_str());
    }
    std::fflush(stdout);
    return true;
  }

  void set(const std::string& args) {
    std::istringstream in(args);
    std::string name, value;
    if (!(in >> name >> value)) {
      std::printf("usage: /set temp|top_p|top_k|min_p|seed|max|repeat_penalty|presence_penalty|frequency_penalty|"
                  "repeat_last_n VALUE\n");
      return;
    }
    SamplerParams& p = s_.options().sampling;
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (*end != '\0' || value.empty()) {
      std::printf("/set %s: expected a number, got '%s'\n", name.c_str(), value.c_str());
      return;
    }
    if (name == "temp" || name == "temperature") p.temp = float(v);
    else if (name == "top_p") p.top_p = float(v);
    else if (name == "top_k") p.top_k = int32_t(v);
    else if (name == "min_p") p.min_p = float(v);
    else if (name == "seed") p.seed = uint64_t(v);
    else if (name == "max" || name == "max_tokens") s_.options().max_tokens = int32_t(v);
    else if (name == "repeat_penalty") p.repeat_penalty = float(v);
    else if (name == "presence_penalty") p.presence_penalty = float(v);
    else if (name == "frequency_penalty") p.frequency_penalty = float(v);
    else if (name == "repeat_last_n") p.penalty_last_n = int32_t(v);
    else {
      std::printf("/set: unknown setting '%s'\n", name.c_str());
      return;
    }
    std::printf("%s = %s\n", name.c_str(), value.c_str());
  }

  void show() {
    const SamplerParams& p = s_.options().sampling;
    std::printf("model: %s (%s)\n", args_.model.c_str(), std::string(arch_name(model_.hparams().arch)).c_str());
    std::printf("template: %s\n", !args_.template_file.empty() ? args_.template_file.c_str()
                                  : s_.template_key().empty()  ? "ChatML (fallback)"
                                                               : s_.template_key().c_str());
    std::printf("context: %lld/%u tokens, %zu messages\n", (long long)s_.n_cached(), s_.n_ctx(), s_.messages().size());
    std::printf("temp %g, top_k %d, top_p %g, min_p %g, seed %llu, max %d, repeat_penalty %g (last %d), "
                "presence_penalty %g, frequency_penalty %g\n",
                p.temp, p.top_k, p.top_p, p.min_p, (unsigned long long)p.seed, s_.options().max_tokens,
                p.repeat_penalty, p.penalty_last_n, p.presence_penalty, p.frequency_penalty);
    const std::string sys = s_.system();
    std::printf("system: %s\n", sys.empty() ? "(none)" : sys.c_str());
  }

  void save(const std::string& path) {
    if (path.empty()) return (void)std::printf("usage: /save FILE\n");
    std::ofstream f(path);
    nlohmann::ordered_json doc = {{"messages", s_.messages()}};
    f << doc.dump(2) << "\n";
    if (!f.good()) return (void)std::printf("error: cannot write '%s'\n", path.c_str());
    std::printf("saved %zu messages to %s\n", s_.messages().size(), path.c_str());
  }

  void load(const std::string& path) {
    if (path.empty()) return (void)std::printf("usage: /load FILE\n");
    std::ifstream f(path);
    if (!f) return (void)std::printf("error: cannot open '%s'\n", path.c_str());
    auto doc = nlohmann::ordered_json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return (void)std::printf("error: '%s' is not JSON\n", path.c_str());
    if (doc.is_object() && doc.contains("messages")) doc = doc["messages"];
    if (Status st = s_.set_messages(doc); !st.is_ok()) {
      return (void)std::printf("error: %s: %s\n", path.c_str(), st.message().c_str());
    }
    std::printf("loaded %zu messages from %s\n", s_.messages().size(), path.c_str());
  }

  const ChatArgs& args_;
  Model& model_;
  chat::ChatSession& s_;
  bool tty_in_, tty_out_;
  LineEditor editor_;
};

void run_chat(const ChatArgs& a) {
  LoadProgress progress(4, isatty(STDERR_FILENO) != 0);
  progress.stage("reading the GGUF index");
  auto file = gguf::GgufModel::open(a.model);
  if (!file.is_ok()) return fail(file.status());
  auto tmpl = chat::model_chat_template(file.value(), "");
  if (!tmpl.is_ok()) return fail(tmpl.status());
  progress.stage("checking " + std::to_string(file->tensors().size()) + " tensors");
  auto mo = model_options(a.compute);
  if (!mo.is_ok()) return fail(mo.status());
  auto model = Model::load(std::move(file.value()), *mo);
  if (!model.is_ok()) return fail(model.status());
  Model& m = **model;
  progress.stage("loading the tokenizer");
  if (!m.file().find("tokenizer.ggml.tokens")) {
    return fail(invalid_argument(a.model + ": chat needs a tokenizer in the file (tokenizer.ggml.*), got none"));
  }
  auto tok = Tokenizer::from_gguf(m.file());
  if (!tok.is_ok()) return fail(tok.status());
  // Page the weights in now, with progress, rather than stall the first
  // answer on page faults; a model larger than free memory streams instead.
  const uint64_t weights = m.file().total_tensor_bytes();
  if (fits_in_available_memory(weights)) {
    progress.stage("reading " + format_bytes(weights) + " of weights");
    m.file().prefault([&](uint64_t done, uint64_t total) { progress.bytes(done, total); });
  } else {
    progress.stage("weights (" + format_bytes(weights) + ") exceed free memory (" +
                   format_bytes(available_memory_bytes()) + "): read from disk as used");
  }
  progress.done();

  chat::ModelChatTemplate t = std::move(tmpl.value());
  if (!a.template_file.empty()) {
    std::ifstream f(a.template_file, std::ios::binary);
    if (!f) return fail(io_error("--template: cannot open '" + a.template_file + "'"));
    std::stringstream ss;
    ss << f.rdbuf();
    t.source = ss.str();
    t.key = a.template_file;
    t.warning.clear();
  } else if (!t.warning.empty()) {
    std::fprintf(stderr, "strata chat: warning: %s\n", t.warning.c_str());
  }

  chat::SessionOptions opt;
  opt.n_ctx = a.n_ctx;
  opt.max_tokens = a.max_tokens;
  opt.sampling = a.sampling;
  opt.sampling.seed = a.seed ? *a.seed : std::random_device{}();
  opt.stop = a.stop;
  if (Status st = parse_logit_bias(a.logit_bias, &opt.sampling); !st.is_ok()) return fail(st);
  auto session = chat::ChatSession::create(m, std::move(tok.value()), t, opt);
  if (!session.is_ok()) return fail(session.status());
  chat::ChatSession& s = **session;
  if (!a.system.empty()) s.set_system(a.system);

  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns on Ctrl-C
  sigaction(SIGINT, &sa, nullptr);
  Chat(a, m, s).loop();
}

}  // namespace

void register_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Chat with a model in the terminal (CPU only for now)");
  cmd->add_option("-m,--model", a->model, "GGUF model file (any part of a split model)")->required();
  cmd->add_option("--template", a->template_file, "Jinja chat template file instead of the model's own");
  cmd->add_option("--system", a->system, "System prompt");
  cmd->add_option("-c,--ctx", a->n_ctx, "Context length in tokens (default 4096, at most the model's)")
      ->check(CLI::Range(16u, 1u << 24));
  cmd->add_option("-n,--max-tokens", a->max_tokens, "Tokens per answer at most; 0 = until the context is full (default 1024)");
  cmd->add_option("--temp", a->sampling.temp, "Temperature; 0 = greedy (default 0.8)");
  cmd->add_option("--top-k", a->sampling.top_k, "Keep the k most likely tokens; 0 = all (default 40)");
  cmd->add_option("--top-p", a->sampling.top_p, "Nucleus mass; 1 = off (default 0.95)");
  cmd->add_option("--min-p", a->sampling.min_p, "Drop tokens below min-p times the best one's probability (default 0.05)");
  cmd->add_option("--repeat-penalty", a->sampling.repeat_penalty, "Penalty for repeated tokens; 1 = off (default)");
  cmd->add_option("--presence-penalty", a->sampling.presence_penalty, "Subtracted from tokens already present (default 0)");
  cmd->add_option("--frequency-penalty", a->sampling.frequency_penalty, "Subtracted per earlier occurrence (default 0)");
  cmd->add_option("--repeat-last-n", a->sampling.penalty_last_n, "Penalty window in tokens; -1 = whole answer (default 64)");
  cmd->add_option("--stop", a->stop, "Stop string (repeatable)");
  cmd->add_option("--logit-bias", a->logit_bias, "ID=BIAS added to a token's logit, -inf bans it (repeatable)");
  cmd->add_option("--seed", a->seed, "Sampling seed (default: random)");
  add_compute_options(cmd, a->compute);
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace strata::tools
