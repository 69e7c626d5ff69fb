// The audit log: one JSON object per line per request (time, key name,
// route, model, token counts, status, latency), appended and flushed as each
// request ends. Message content and answers only with --audit-content.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/base/status.h"

namespace strata::serve {

struct AuditRecord {
  std::string key_name;  // empty: no key configured
  std::string method, route, model, remote;
  int status = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double latency_ms = 0;
  nlohmann::ordered_json request_content;  // messages or prompt (only kept with content logging)
  std::string response_content;
};

class AuditLog {
 public:
  static Result<std::unique_ptr<AuditLog>> open(const std::string& path, bool with_content);
  ~AuditLog();
  bool with_content() const { return with_content_; }
  void write(const AuditRecord& r);

 private:
  AuditLog(std::FILE* f, bool with_content) : f_(f), with_content_(with_content) {}
  std::mutex mu_;
  std::FILE* f_;
  bool with_content_;
};

}  // namespace strata::serve
