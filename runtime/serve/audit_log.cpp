// JSON-lines audit log, appended under a lock so lines never interleave.
#include "runtime/serve/audit_log.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <memory>

#include "runtime/serve/openai_protocol.h"

namespace strata::serve {
namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
  return buf;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path, bool with_content) {
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) return io_error("--audit-log: cannot open '" + path + "' for appending: " + std::strerror(errno));
  return std::unique_ptr<AuditLog>(new AuditLog(f, with_content));
}

AuditLog::~AuditLog() {
  if (f_) std::fclose(f_);
}

void AuditLog::write(const AuditRecord& r) {
  json j = {{"time", utc_now()},
            {"key", r.key_name.empty() ? json() : json(r.key_name)},
            {"remote", r.remote},
            {"method", r.method},
            {"route", r.route},
            {"model", r.model.empty() ? json() : json(r.model)},
            {"status", r.status},
            {"prompt_tokens", r.prompt_tokens},
            {"completion_tokens", r.completion_tokens},
            {"latency_ms", std::round(r.latency_ms * 10) / 10}};
  if (with_content_) {
    j["request_content"] = r.request_content;
    j["response_content"] = r.response_content;
  }
  const std::string line = dump(j) + "\n";
  std::lock_guard lk(mu_);
  std::fwrite(line.data(), 1, line.size(), f_);
  std::fflush(f_);
}

}  // namespace strata::serve
