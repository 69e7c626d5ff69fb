// The HTTP front of `strata serve` (cpp-httplib): routes, API keys, CORS,
// body limits, OpenAI-shaped errors, server-sent event streams with client
// disconnect detection, the audit log, /metrics and the web page.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/serve/audit_log.h"
#include "runtime/serve/auth.h"
#include "runtime/serve/engine.h"
#include "runtime/serve/metrics.h"
#include "runtime/serve/openai_protocol.h"

namespace strata::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port
  KeyStore keys;                         // empty: no authentication
  std::vector<std::string> cors_origins; // empty: no CORS headers; "*": any origin
  size_t max_body_bytes = 8u << 20;
  RequestLimits limits;
  std::chrono::seconds request_timeout{600};
  std::shared_ptr<AuditLog> audit;       // null: no audit log
  int n_http_threads = 0;                // 0: enough for every slot, the queue and spare connections
};

class Server {
 public:
  Server(ModelHost& host, Metrics& metrics, ServerOptions options);
  ~Server();

  // Binds the listening socket; returns the port (the chosen one for port 0).
  Result<int> bind();
  // Serves until stop(); call after bind().
  void listen();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::serve
