// `strata serve`: the OpenAI-compatible server. Parses flags, opens the key
// file and audit log, listens (so /health answers 503 while the model
// loads), loads and warms up the model, prints where everything lives, and
// serves until SIGINT or SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <thread>

#include "offload/calibrate.h"
#include "offload/hardware_detect.h"
#include "runtime/serve/server.h"
#include "tools/commands.h"
#include "tools/compute_options.h"

namespace strata::tools {
namespace {

struct ServeArgs {
  std::string model, models_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key, api_key_file;
  std::vector<std::string> cors;
  uint32_t parallel = 4;
  uint32_t ctx = 0;
  uint32_t kv_block = 16;
  uint32_t kv_blocks = 0;
  uint32_t queue = 64;
  int32_t prefill_chunk = 256;
  int timeout_s = 600;
  size_t max_body = 8u << 20;
  std::string audit_log;
  bool audit_content = false;
  ComputeArgs compute;
};

bool is_loopback(const std::string& h) { return h == "127.0.0.1" || h == "localhost" || h == "::1"; }

void run_serve(const ServeArgs& a) {
  using namespace serve;
  if (a.model.empty() && a.models_dir.empty()) return fail(invalid_argument("serve: expected -m FILE or --models-dir DIR"));
  ServerOptions so;
  so.host = a.host;
  so.port = a.port;
  so.cors_origins = a.cors;
  so.max_body_bytes = a.max_body;
  so.request_timeout = std::chrono::seconds(a.timeout_s);
  if (!a.api_key.empty()) {
    if (Status st = so.keys.add("default", a.api_key); !st.is_ok()) return fail(invalid_argument("--api-key: " + st.message()));
  }
  if (!a.api_key_file.empty()) {
    auto ks = KeyStore::from_file(a.api_key_file);
    if (!ks.is_ok()) return fail(ks.status());
    if (so.keys.empty()) {
      so.keys = std::move(ks.value());
    } else {
      return fail(invalid_argument("serve: give --api-key or --api-key-file, not both"));
    }
  }
  if (!a.audit_log.empty()) {
    auto log = AuditLog::open(a.audit_log, a.audit_content);
    if (!log.is_ok()) return fail(log.status());
    so.audit = std::shared_ptr<AuditLog>(std::move(log.value()));
  } else if (a.audit_content) {
    return fail(invalid_argument("--audit-content: needs --audit-log FILE"));
  }

  std::vector<ModelEntry> entries;
  std::string first;
  if (!a.models_dir.empty()) {
    auto list = ModelHost::scan_dir(a.models_dir);
    if (!list.is_ok()) return fail(list.status());
    entries = std::move(list.value());
    first = entries.front().id;
    if (!a.model.empty()) {
      first.clear();
      for (const auto& e : entries) {
        if (e.id == a.model || e.path == a.model) first = e.id;
      }
      if (first.empty()) return fail(not_found("-m " + a.model + ": not a model of --models-dir " + a.models_dir));
    }
  } else {
    auto e = ModelHost::entry_for_file(a.model);
    if (!e.is_ok()) return fail(e.status());
    entries.push_back(std::move(e.value()));
    first = entries.front().id;
  }

  EngineOptions eo;
  auto mo = model_options(a.compute);
  if (!mo.is_ok()) return fail(mo.status());
  eo.model = std::move(mo.value());
  eo.sched.n_parallel = a.parallel;
  eo.sched.n_ctx = a.ctx;
  eo.sched.kv_block = a.kv_block;
  eo.sched.kv_blocks = a.kv_blocks;
  eo.sched.max_queue = a.queue;
  eo.sched.prefill_chunk = a.prefill_chunk;
  so.n_http_threads = int(a.parallel + a.queue + 32);
  // This machine as `strata plan --this-machine` sees it (topology and
  // capacities; the measured bandwidths once it has been calibrated): every
  // model is placed by the planner, which also sizes the default context.
  if (auto hw = detect_hardware(); hw.is_ok()) {
    auto cached = load_cached_profile(default_profile_path(), machine_fingerprint(hw.value()));
    eo.hardware = cached.is_ok() ? std::move(cached.value()) : std::move(hw.value());
  } else {
    std::fprintf(stderr, "strata serve: warning: no hardware profile (%s); placing without the planner\n",
                 hw.status().message().c_str());
  }

  if (!is_loopback(a.host) && so.keys.empty()) {
    std::fprintf(stderr,
                 "strata serve: warning: listening on %s without an API key: anyone who can reach this address "
                 "can use the model (set --api-key or --api-key-file)\n",
                 a.host.c_str());
  }

  // Signals are taken by sigwait below; every thread started from here on
  // inherits the mask, so none of them is interrupted by them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Metrics metrics;
  ModelHost host(entries, eo, &metrics);
  Server server(host, metrics, so);
  auto port = server.bind();
  if (!port.is_ok()) return fail(port.status());
  std::fprintf(stderr, "strata serve: listening on http://%s:%d (health: /health, web page: /)\n", a.host.c_str(),
               *port);
  std::fflush(stderr);
  std::thread http([&] { server.listen(); });

  std::fprintf(stderr, "strata serve: loading %s\n", first.c_str());
  if (Status st = host.load(first); !st.is_ok()) {
    server.stop();
    http.join();
    return fail(st);
  }
  if (auto e = host.current()) {
    if (!e->template_info().warning.empty()) {
      std::fprintf(stderr, "strata serve: warning: %s\n", e->template_info().warning.c_str());
    }
    std::fprintf(stderr, "strata serve: placement\n%s\n", e->placement_summary().c_str());
    std::fprintf(stderr, "strata serve: compute: %s\n", compute_summary(e->model()).c_str());
  }
  if (entries.size() > 1) {
    std::fprintf(stderr, "strata serve: %zu models in %s; others load on request\n", entries.size(),
                 a.models_dir.c_str());
  }
  std::fprintf(stderr, "strata serve: ready\n");
  std::fflush(stderr);

  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "strata serve: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  server.stop();
  http.join();
  host.shutdown();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  cmd->add_option("-m,--model", a->model, "GGUF model file (with --models-dir: the model to load first)");
  cmd->add_option("--models-dir", a->models_dir, "Serve every GGUF in this directory; one is loaded at a time");
  cmd->add_option("--host", a->host, "Address to listen on (default 127.0.0.1)");
  cmd->add_option("--port", a->port, "Port (default 8080; 0 = any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", a->api_key, "Require this key (Authorization: Bearer KEY) on every route but /health");
  cmd->add_option("--api-key-file", a->api_key_file, "Keys, one 'name:key' per line");
  cmd->add_option("--cors-origin", a->cors, "Allow browser requests from this origin (repeatable; * = any)");
  cmd->add_option("--parallel", a->parallel, "Sequences decoded together (default 4)")->check(CLI::Range(1u, 1024u));
  cmd->add_option("-c,--ctx-size", a->ctx, "Context per sequence in tokens (default: the model's, at most 4096, halved until the planner says it fits)")
      ->check(CLI::Range(0u, 1u << 24));
  cmd->add_option("--kv-block", a->kv_block, "Positions per KV-cache block (default 16)")->check(CLI::Range(1u, 4096u));
  cmd->add_option("--kv-blocks", a->kv_blocks, "KV-cache pool size in blocks (default: every sequence at full context)");
  cmd->add_option("--queue", a->queue, "Requests that may wait for a slot; more get 429 (default 64)");
  cmd->add_option("--prefill-chunk", a->prefill_chunk, "Prompt tokens per step, interleaved with decoding (default 256)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--timeout", a->timeout_s, "Seconds a request may take in all (default 600)")->check(CLI::Range(1, 86400));
  cmd->add_option("--max-body", a->max_body, "Largest request body in bytes (default 8 MiB)");
  cmd->add_option("--audit-log", a->audit_log, "Append one JSON line per request to FILE");
  cmd->add_flag("--audit-content", a->audit_content, "Also log messages and answers in the audit log");
  add_compute_options(cmd, a->compute);
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace strata::tools
