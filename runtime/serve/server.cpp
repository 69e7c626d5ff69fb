// HTTP routes of `strata serve`. A generation request goes: auth (pre-routing)
// -> JSON body -> validation (openai_protocol) -> model (ModelHost) -> prompt
// (chat template with message contents as sentinels, tokenized as plain text)
// -> scheduler queue -> events -> one JSON answer, or SSE chunks written as
// tokens arrive. While a stream waits it writes SSE comments, so a client
// that has gone away is noticed within a fraction of a second and its
// sequence cancelled.
#include "runtime/serve/server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <random>

#include "runtime/chat/session.h"
#include "runtime/serve/json_schema.h"
#include "runtime/serve/reasoning.h"
#include "runtime/serve/tool_calls.h"
#include "runtime/serve/web_assets.h"

namespace strata::serve {

namespace {

using namespace std::chrono_literals;

thread_local std::string t_key_name;  // the key that authenticated the request on this thread

// response_format enforced by the JSON automaton of json_schema.h.
class JsonTokenConstraint : public TokenConstraint {
 public:
  JsonTokenConstraint(JsonConstraint c, const TokenTrie& trie) : m_(std::move(c)), trie_(trie) {}
  void mask(float* logits, int32_t n_vocab) override {
    m_.allowed_tokens(trie_, mask_);
    apply_token_mask(std::span<float>(logits, size_t(n_vocab)), mask_);
  }
  Status accept(TokenId id) override {
    if (!m_.accept_token(trie_, id)) return internal_error("constrained decoding: a masked token was sampled");
    return Status::ok();
  }
  bool complete() const override { return m_.complete() && !m_.can_continue(); }

 private:
  JsonMatcher m_;
  const TokenTrie& trie_;
  std::vector<uint8_t> mask_;
};

// The socket of the connection a request came on, found by both of its
// addresses among this process's sockets (cpp-httplib 0.11 exposes neither
// the socket nor a closed check); -1 if none matches. Valid while the
// request's handler runs: the server closes the connection only after it.
int connection_fd(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  auto text = [](const sockaddr_storage& a, int* port) -> std::string {
    char buf[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
      *port = ntohs(v4.sin_port);
      return inet_ntop(AF_INET, &v4.sin_addr, buf, sizeof buf) ? buf : "";
    }
    if (a.ss_family == AF_INET6) {
      const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
      *port = ntohs(v6.sin6_port);
      return inet_ntop(AF_INET6, &v6.sin6_addr, buf, sizeof buf) ? buf : "";
    }
    return "";
  };
  int found = -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int fd = std::atoi(e->d_name);
    sockaddr_storage peer{}, local{};
    socklen_t pl = sizeof peer, ll = sizeof local;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
    int peer_port = -1, local_port = -1;
    if (text(peer, &peer_port) == req.remote_addr && peer_port == req.remote_port &&
        text(local, &local_port) == req.local_addr && local_port == req.local_port) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

// The client closed its end (an orderly close reads as 0 bytes; a reset as
// an error). Pipelined bytes of a next request read as data: still open.
bool peer_closed(int fd) {
  char c;
  const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

bool has_control_text(const Tokenizer& tok, const std::string& text) {
  for (TokenId id : tok.tokenize(text, {.add_special = false, .parse_special = true})) {
    if (tok.token_type(id) == TokenType::kControl) return true;
  }
  return false;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* route_label(const std::string& path) {
  static const char* known[] = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/"};
  for (const char* k : known) {
    if (path == k) return k;
  }
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  if (find_web_asset(path)) return "/static";
  return "other";
}

}  // namespace

struct Server::Impl {
  Impl(ModelHost& h, Metrics& m, ServerOptions o) : host(h), metrics(m), opt(std::move(o)) {}

  ModelHost& host;
  Metrics& metrics;
  ServerOptions opt;
  httplib::Server http;
  int port = 0;

  // Counted in /metrics and written to the audit log when the request ends
  // (for a stream: when its last chunk is written or the client leaves).
  struct RequestLog {
    Impl* impl = nullptr;
    std::string method, route, model, key, remote;
    int status = 200;
    int64_t prompt = 0, completion = 0;
    Clock::time_point t0 = Clock::now();
    json request_content;
    std::string response_content;
    ~RequestLog() {
      impl->metrics.count_request(route, status);
      if (!impl->opt.audit) return;
      AuditRecord r;
      r.key_name = key;
      r.method = method;
      r.route = route;
      r.model = model;
      r.remote = remote;
      r.status = status;
      r.prompt_tokens = prompt;
      r.completion_tokens = completion;
      r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      r.request_content = std::move(request_content);
      r.response_content = std::move(response_content);
      impl->opt.audit->write(r);
    }
  };
  std::shared_ptr<RequestLog> start_log(const httplib::Request& req) {
    auto log = std::make_shared<RequestLog>();
    log->impl = this;
    log->method = req.method;
    log->route = route_label(req.path);
    log->key = t_key_name;
    log->remote = req.remote_addr;
    return log;
  }

  static void send_json(httplib::Response& res, int status, const json& j) {
    res.status = status;
    res.set_content(dump(j), "application/json");
  }
  void send_error(httplib::Response& res, const ApiError& e, RequestLog* log, int retry_after_s = 0) {
    if (retry_after_s > 0) res.set_header("Retry-After", std::to_string(retry_after_s));
    send_json(res, e.status, e.to_json());
    if (log) log->status = e.status;
  }

  void set_cors(const httplib::Request& req, httplib::Response& res) const {
    if (opt.cors_origins.empty() || !req.has_header("Origin")) return;
    const std::string origin = req.get_header_value("Origin");
    for (const auto& o : opt.cors_origins) {
      if (o == "*" || o == origin) {
        res.set_header("Access-Control-Allow-Origin", o == "*" ? "*" : origin);
        res.set_header("Vary", "Origin");
        return;
      }
    }
  }

  httplib::Server::HandlerResponse pre_routing(const httplib::Request& req, httplib::Response& res) {
    t_key_name.clear();
    set_cors(req, res);
    if (req.method == "OPTIONS") {
      // CORS preflight: answered without a key (browsers never send one here);
      // the allow headers are present only for an allowed origin.
      if (res.has_header("Access-Control-Allow-Origin")) {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.set_header("Access-Control-Max-Age", "600");
      }
      res.status = 204;
      return httplib::Server::HandlerResponse::Handled;
    }
    // Public: the health probe only. The web page asks the browser for the
    // key (HTTP Basic, any user name, the key as password), and the browser
    // sends it again with the page's own API requests.
    if (opt.keys.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    std::optional<std::string> name;
    if (auto token = presented_key(req.get_header_value("Authorization"))) name = opt.keys.match(*token);
    if (!name) {
      auto log = start_log(req);
      ApiError e{401, "authentication_error",
                 "Incorrect or missing API key: send it as 'Authorization: Bearer KEY'", "", "invalid_api_key"};
      const bool page = find_web_asset(req.path) != nullptr;
      res.set_header("WWW-Authenticate", page ? "Basic realm=\"strata\", charset=\"UTF-8\"" : "Bearer");
      send_error(res, e, log.get());
      return httplib::Server::HandlerResponse::Handled;
    }
    t_key_name = *name;
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void on_error(const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.is_chunked_content_provider_) return;
    ApiError e;
    e.status = res.status;
    switch (res.status) {
      case 404:
        e.message = "unknown route: " + req.method + " " + req.path;
        e.code = "unknown_route";
        break;
      case 405:
        e.message = "method " + req.method + " not allowed on " + req.path;
        break;
      case 413:
        e.message = "request body too large: at most " + std::to_string(opt.max_body_bytes) + " bytes";
        e.code = "request_too_large";
        break;
      default:
        if (res.status >= 500) {
          e.type = "server_error";
          e.message = "internal server error";
        } else {
          e.message = "bad request";
        }
    }
    auto log = start_log(req);
    send_error(res, e, log.get());
  }

  void health(const httplib::Request& req, httplib::Response& res) {
    auto log = start_log(req);
    if (host.ready()) return send_json(res, 200, {{"status", "ok"}});
    const std::string what = host.loading();
    ApiError e{503, "unavailable_error", what.empty() ? "no model loaded" : "loading model '" + what + "'", "",
               "model_loading"};
    send_error(res, e, log.get(), 5);
  }

  void metrics_page(const httplib::Request& req, httplib::Response& res) {
    auto log = start_log(req);
    std::shared_ptr<Engine> e = host.current();
    SchedulerStats st;
    std::string id = host.loading();
    if (e) {
      st = e->scheduler().stats();
      id = e->id();
    }
    res.set_content(metrics.render(st, id, -1.0), "text/plain; version=0.0.4");
  }

  json model_json(const ModelEntry& m) const {
    return {{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", "strata"}};
  }

  void list_models(const httplib::Request& req, httplib::Response& res) {
    auto log = start_log(req);
    json data = json::array();
    for (const auto& m : host.models()) data.push_back(model_json(m));
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  }

  void get_model(const httplib::Request& req, httplib::Response& res) {
    auto log = start_log(req);
    const std::string id = req.matches[1];
    for (const auto& m : host.models()) {
      if (m.id == id) return send_json(res, 200, model_json(m));
    }
    ApiError e = invalid_request("model", "The model '" + id + "' does not exist", "model_not_found");
    e.status = 404;
    send_error(res, e, log.get());
  }

  void web(const httplib::Request& req, httplib::Response& res) {
    auto log = start_log(req);
    const WebAsset* a = find_web_asset(req.path);
    if (!a) return send_error(res, invalid_request("", "not found", "unknown_route"), log.get());
    res.set_header("Cache-Control", "no-cache");
    res.set_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'");
    res.set_content(std::string(a->body), std::string(a->type));
  }

  // Renders a chat into prompt tokens: message texts go in as sentinels and
  // are tokenized as plain text, so no client text becomes a control token;
  // client strings that cannot be sentinels (tool calls, names, tools) are
  // refused if they hold control-token text.
  bool render_chat(Engine& eng, const ParsedRequest& r, std::vector<TokenId>* out, std::string* rendered,
                   ApiError* err) {
    const Tokenizer& tok = eng.tokenizer();
    chat::ChatTemplateInputs in;
    in.add_generation_prompt = true;
    in.bos_token = eng.template_info().bos_token;
    in.eos_token = eng.template_info().eos_token;
    in.extra = r.template_kwargs;
    if (!r.tools.is_null()) in.tools = r.tools;
    std::vector<std::string> contents;
    auto sentinel = [&](std::string text) {
      contents.push_back(std::move(text));
      return chat::content_sentinel(contents.size() - 1);
    };
    auto refuse_control = [&](const std::string& text, const std::string& param) {
      if (!has_control_text(tok, text)) return false;
      *err = invalid_request(param, param + ": holds the text of a control token of this model's vocabulary");
      return true;
    };
    for (size_t i = 0; i < r.messages.size(); ++i) {
      json m = r.messages[i];
      const std::string p = "messages[" + std::to_string(i) + "]";
      // Null content (an assistant turn of only tool calls) renders as "",
      // as templates test it with `in` and `is string`.
      m["content"] = m["content"].is_string() ? sentinel(m["content"].get<std::string>()) : std::string();
      if (m.contains("reasoning_content")) m["reasoning_content"] = sentinel(m["reasoning_content"].get<std::string>());
      if (m.contains("name") && refuse_control(m["name"].get<std::string>(), p + ".name")) return false;
      if (m.contains("tool_calls") && refuse_control(dump(m["tool_calls"]), p + ".tool_calls")) return false;
      if (m.contains("tool_call_id") && refuse_control(m["tool_call_id"].get<std::string>(), p + ".tool_call_id")) return false;
      in.messages.push_back(std::move(m));
    }
    if (!r.tools.is_null() && refuse_control(dump(r.tools), "tools")) return false;
    if (!r.template_kwargs.empty() && refuse_control(dump(r.template_kwargs), "chat_template_kwargs")) return false;
    chat::jinja::RenderOptions ro;
    ro.limits.max_output_bytes = std::max<size_t>(opt.max_body_bytes * 4, 1u << 20);
    auto text = eng.chat_template().render(in, ro);
    if (!text.is_ok()) {
      *err = invalid_request("messages", "chat template: " + text.status().message(), "template_error");
      return false;
    }
    auto ids = chat::tokenize_rendered(tok, text.value(), contents);
    if (!ids.is_ok()) {
      *err = invalid_request("messages", ids.status().message(), "template_error");
      return false;
    }
    *out = std::move(ids.value());
    *rendered = std::move(text.value());
    return true;
  }

  // State of one request's answer, shared with the stream writer.
  struct Answer {
    std::shared_ptr<Engine> engine;  // keeps the model loaded while the answer is written
    std::shared_ptr<GenStream> stream;
    std::shared_ptr<RequestLog> log;
    Endpoint endpoint = Endpoint::kChat;
    ResponseMeta meta;
    bool include_usage = false;
    std::optional<ReasoningParser> reasoner;  // the model writes <think> blocks
    std::optional<ToolCallParser> tool_parser;  // the request gave tools
    bool parallel_tool_calls = true;
    bool forced_call = false;  // tool_choice forced the call (cut by max_tokens: "length")
    std::string content, reasoning;
    std::vector<ToolCall> calls;
    std::vector<TokenLogprob> logprobs;
    bool want_logprobs = false;
    int64_t n_prompt = 0;
    int64_t text_offset = 0;
  };

  // Maps an error event to its HTTP status: queue timeout and shutdown are
  // temporary (503), anything else is the server's fault (500).
  static ApiError event_error(const Status& st) {
    if (st.code() == StatusCode::kOutOfMemory || st.code() == StatusCode::kUnsupported) {
      return {503, "unavailable_error", st.message(), "", "unavailable"};
    }
    return {500, "server_error", st.message(), "", "generation_failed"};
  }

  void generate(const httplib::Request& req, httplib::Response& res, Endpoint ep) {
    auto log = start_log(req);
    ApiError err;
    json body;
    if (!parse_json_body(req.body, &body, &err)) return send_error(res, err, log.get());
    ParsedRequest pr;
    const bool ok = ep == Endpoint::kChat ? parse_chat_request(body, opt.limits, &pr, &err)
                                          : parse_completion_request(body, opt.limits, &pr, &err);
    if (!ok) return send_error(res, err, log.get());
    log->model = pr.model;
    // tool_choice "required" or a named function: the answer is constrained
    // to a call (tool_calls.h), never left to chance.
    auto forced = forced_tool_call(nlohmann::json::parse(dump(pr.tools)), nlohmann::json::parse(dump(pr.tool_choice)));
    if (!forced.is_ok()) return send_error(res, invalid_request("tool_choice", forced.status().message()), log.get());
    if (pr.tool_choice == "none") pr.tools = json();
    ModelHost::Acquired acq = host.acquire(pr.model);
    if (!acq.engine) return send_error(res, acq.error, log.get(), acq.retry_after_s);
    Engine& eng = *acq.engine;
    const Tokenizer& tok = eng.tokenizer();
    if (!pr.tools.is_null() && eng.chat_template().source().find("tools") == std::string::npos) {
      return send_error(res,
                        invalid_request("tools", "tools: the chat template of model '" + eng.id() +
                                                     "' does not render tools",
                                        "unsupported_parameter"),
                        log.get());
    }
    if (!pr.tools.is_null() && !forced.value() && eng.tool_call_format() == ToolCallFormat::kNone) {
      return send_error(res,
                        invalid_request("tools", "tools: model '" + eng.id() +
                                                     "' has no tool-call format strata can parse (its chat template "
                                                     "shows none of Hermes/Qwen, DeepSeek, Kimi-K2, Llama 3.1, Mistral)",
                                        "unsupported_parameter"),
                        log.get());
    }
    if (!pr.tools.is_null() && pr.response_format != "text") {
      return send_error(res, invalid_request("response_format", "response_format: cannot be combined with tools"),
                        log.get());
    }

    std::shared_ptr<TokenConstraint> constraint;
    if (pr.response_format != "text") {
      auto c = compile_response_format(nlohmann::json::parse(dump(body["response_format"])));
      if (!c.is_ok()) {
        return send_error(res, invalid_request("response_format", c.status().message(), "unsupported_schema"),
                          log.get());
      }
      if (c.value()) constraint = std::make_shared<JsonTokenConstraint>(std::move(*c.value()), eng.token_trie());
    }
    if (forced.value()) {
      auto c = compile_json_schema(forced.value()->schema, {}, "tools");
      if (!c.is_ok()) {
        return send_error(res, invalid_request("tools", "tool_choice: " + c.status().message(), "unsupported_schema"),
                          log.get());
      }
      constraint = std::make_shared<JsonTokenConstraint>(std::move(c.value()), eng.token_trie());
    }

    std::vector<TokenId> prompt;
    std::string rendered;
    if (ep == Endpoint::kChat) {
      if (!render_chat(eng, pr, &prompt, &rendered, &err)) return send_error(res, err, log.get());
    } else if (!pr.prompt_ids.empty()) {
      for (TokenId t : pr.prompt_ids) {
        if (!tok.valid(t) || uint32_t(t) >= eng.model().hparams().n_vocab) {
          return send_error(res, invalid_request("prompt", "prompt: token id " + std::to_string(t) +
                                                               " is outside the vocabulary (" +
                                                               std::to_string(tok.n_tokens()) + " tokens)"),
                            log.get());
        }
      }
      prompt = pr.prompt_ids;
    } else {
      prompt = tok.tokenize(pr.prompt, {.add_special = true, .parse_special = false});
    }
    if (prompt.empty()) return send_error(res, invalid_request("prompt", "prompt: gives no tokens"), log.get());
    const int64_t n_ctx = eng.n_ctx();
    const int64_t room = n_ctx - int64_t(prompt.size());
    if (room < 1) {
      return send_error(res,
                        invalid_request(ep == Endpoint::kChat ? "messages" : "prompt",
                                        "This model's maximum context length is " + std::to_string(n_ctx) +
                                            " tokens; the prompt takes " + std::to_string(prompt.size()) +
                                            ", leaving no room for an answer",
                                        "context_length_exceeded"),
                        log.get());
    }

    // An explicit max_tokens beyond the context is refused, as OpenAI does;
    // without one the answer may use all the room left.
    const char* asked = body.contains("max_completion_tokens") ? "max_completion_tokens"
                        : body.contains("max_tokens")           ? "max_tokens"
                                                                : nullptr;
    if (asked && pr.max_tokens && int64_t(*pr.max_tokens) > room) {
      return send_error(res,
                        invalid_request(asked,
                                        "This model's maximum context length is " + std::to_string(n_ctx) +
                                            " tokens; the prompt takes " + std::to_string(prompt.size()) + " and " +
                                            asked + " asks for " + std::to_string(*pr.max_tokens) + " more (at most " +
                                            std::to_string(room) + ")",
                                        "context_length_exceeded"),
                        log.get());
    }

    GenRequest g;
    g.prompt = prompt;
    g.sampling = pr.sampling;
    if (!pr.has_seed) g.sampling.seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
    // Without max_tokens, the context left after the prompt.
    g.max_tokens = int32_t(std::min<int64_t>(pr.max_tokens.value_or(int32_t(room)), room));
    g.stop = pr.stop;
    g.top_logprobs = pr.logprobs ? pr.top_logprobs : -1;
    g.deadline = Clock::now() + opt.request_timeout;
    g.constraint = constraint;
    g.render_special = !pr.tools.is_null();  // tool-call markers may be control tokens
    const uint64_t id_seed = g.sampling.seed ^ 0x9e3779b97f4a7c15ull;
    Scheduler::Submitted sub = eng.scheduler().submit(std::move(g));
    if (!sub.stream) {
      if (sub.reject == Scheduler::Reject::kQueueFull) {
        return send_error(res, {429, "rate_limit_error", "server busy: " + sub.message + "; retry later", "",
                                "queue_full"},
                          log.get(), 1);
      }
      return send_error(res, invalid_request("messages", sub.message), log.get());
    }
    metrics.add_prompt_tokens(int64_t(prompt.size()));
    log->prompt = int64_t(prompt.size());
    if (opt.audit && opt.audit->with_content()) {
      log->request_content = ep == Endpoint::kChat ? pr.messages : json(pr.prompt);
    }

    auto a = std::make_shared<Answer>();
    a->engine = acq.engine;
    a->stream = sub.stream;
    a->log = log;
    a->endpoint = ep;
    a->meta = {random_id(ep == Endpoint::kChat ? "chatcmpl-" : "cmpl-"), unix_now(), eng.id()};
    a->include_usage = pr.include_usage;
    if (forced.value()) {
      // The constraint starts the answer with the call: no thinking first.
      a->tool_parser.emplace(ToolCallParser::forced(eng.tool_call_format(), id_seed, forced.value()->name));
      a->forced_call = true;
    } else {
      if (ep == Endpoint::kChat && eng.has_reasoning()) a->reasoner.emplace(prompt_opens_reasoning(rendered));
      if (ep == Endpoint::kChat && !pr.tools.is_null()) a->tool_parser.emplace(eng.tool_call_format(), id_seed);
    }
    a->parallel_tool_calls = pr.parallel_tool_calls;
    a->want_logprobs = pr.logprobs;
    a->n_prompt = int64_t(prompt.size());
    if (pr.stream) return stream_answer(res, a);

    // Not streamed: nothing is written until the end, so the connection is
    // watched instead; a client that leaves stops its sequence within a step.
    const int fd = connection_fd(req);
    auto next_check = Clock::now();
    std::vector<GenEvent> evs;
    for (;;) {
      evs.clear();
      const bool got = a->stream->wait(&evs, 50ms);
      if (fd >= 0 && Clock::now() >= next_check) {
        next_check = Clock::now() + 50ms;
        if (peer_closed(fd)) {
          a->stream->cancel();
          log->status = 499;
          res.status = 499;
          return;
        }
      }
      if (!got) continue;
      for (GenEvent& ev : evs) {
        collect(*a, ev);
        if (!ev.done) continue;
        log->completion = ev.n_generated;
        log->response_content = a->content;
        if (ev.finish == Finish::kError) return send_error(res, event_error(ev.error), log.get());
        const Usage u{ev.n_prompt, ev.n_generated};
        const std::string finish = finish_of(*a, ev);
        json lp = a->want_logprobs ? (ep == Endpoint::kChat ? chat_logprobs(a->logprobs, tok)
                                                            : completion_logprobs(a->logprobs, tok, 0))
                                   : json();
        if (ep == Endpoint::kChat) {
          json msg = {{"role", "assistant"},
                      {"content", a->content.empty() && !a->calls.empty() ? json() : json(a->content)}};
          if (!a->reasoning.empty()) msg["reasoning_content"] = a->reasoning;
          if (!a->calls.empty()) {
            json calls = json::array();
            for (const ToolCall& c : a->calls) {
              calls.push_back({{"id", c.id}, {"type", "function"},
                               {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
            }
            msg["tool_calls"] = calls;
          }
          msg["refusal"] = nullptr;
          send_json(res, 200, chat_response(a->meta, msg, finish, lp, u));
        } else {
          send_json(res, 200, completion_response(a->meta, a->content, finish, lp, u));
        }
        return;
      }
    }
  }

  // An event's text through the reasoning splitter, then (content only) the
  // tool-call parser. Calls past the first are dropped when the request
  // asked for no parallel tool calls.
  struct Pieces {
    std::string reasoning, content;
    std::vector<ToolCallDelta> calls;
  };
  static Pieces split(Answer& a, std::string_view text, bool final) {
    Pieces out;
    std::string content;
    if (a.reasoner) {
      ReasoningDelta d = a.reasoner->push(text);
      if (final) {
        ReasoningDelta f = a.reasoner->finish();
        d.reasoning += f.reasoning;
        d.content += f.content;
      }
      out.reasoning = std::move(d.reasoning);
      content = std::move(d.content);
    } else {
      content = std::string(text);
    }
    if (!a.tool_parser) {
      out.content = std::move(content);
      return out;
    }
    ToolCallChunk c = a.tool_parser->push(content);
    if (final) {
      ToolCallChunk f = a.tool_parser->finish();
      c.content += f.content;
      c.calls.insert(c.calls.end(), f.calls.begin(), f.calls.end());
    }
    out.content = std::move(c.content);
    for (ToolCallDelta& d : c.calls) {
      if (a.parallel_tool_calls || d.index == 0) out.calls.push_back(std::move(d));
    }
    return out;
  }

  static std::string finish_of(const Answer& a, const GenEvent& ev) {
    return finish_name(ev.finish, !a.calls.empty() && !(a.forced_call && ev.finish == Finish::kLength));
  }

  static void add_calls(Answer& a, const std::vector<ToolCallDelta>& deltas) {
    for (const ToolCallDelta& d : deltas) {
      if (d.index >= a.calls.size()) a.calls.resize(d.index + 1);
      ToolCall& c = a.calls[d.index];
      if (!d.id.empty()) c.id = d.id;
      if (!d.name.empty()) c.name = d.name;
      c.arguments += d.arguments;
    }
  }

  // Adds an event's text and log-probabilities to a whole (non-streamed) answer.
  static void collect(Answer& a, const GenEvent& ev) {
    a.logprobs.insert(a.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
    if (a.endpoint == Endpoint::kCompletion) {
      a.content += ev.text;
      return;
    }
    Pieces p = split(a, ev.text, ev.done);
    a.reasoning += p.reasoning;
    a.content += p.content;
    add_calls(a, p.calls);
  }

  // The SSE chunks of one event, in order.
  std::vector<std::string> chunks_of(Answer& a, const GenEvent& ev) {
    std::vector<std::string> out;
    const Tokenizer& tok = a.engine->tokenizer();
    json lp;
    if (!ev.logprobs.empty()) {
      lp = a.endpoint == Endpoint::kChat ? chat_logprobs(ev.logprobs, tok)
                                         : completion_logprobs(ev.logprobs, tok, a.text_offset);
    }
    if (a.endpoint == Endpoint::kCompletion) {
      a.content += ev.text;
      if (!ev.text.empty() || !lp.is_null()) {
        out.push_back(sse(completion_chunk(a.meta, ev.text, json(), lp, a.include_usage)));
      }
      a.text_offset += int64_t(ev.text.size());
    } else {
      Pieces p = split(a, ev.text, ev.done);
      auto text_chunk = [&](const char* field, const std::string& text) {
        if (text.empty()) return;
        out.push_back(sse(chat_chunk(a.meta, {{field, text}}, json(), lp, a.include_usage)));
        lp = json();
      };
      a.reasoning += p.reasoning;
      a.content += p.content;
      text_chunk("reasoning_content", p.reasoning);
      text_chunk("content", p.content);
      for (const ToolCallDelta& d : p.calls) {
        // id, type and name only in the first delta of an index.
        json tc = {{"index", d.index}};
        if (!d.id.empty()) {
          tc["id"] = d.id;
          tc["type"] = "function";
          tc["function"] = {{"name", d.name}, {"arguments", d.arguments}};
        } else {
          tc["function"] = {{"arguments", d.arguments}};
        }
        out.push_back(sse(chat_chunk(a.meta, {{"tool_calls", json::array({tc})}}, json(), lp, a.include_usage)));
        lp = json();
      }
      add_calls(a, p.calls);
      if (!lp.is_null()) out.push_back(sse(chat_chunk(a.meta, {{"content", ""}}, json(), lp, a.include_usage)));
    }
    if (!ev.done) return out;
    a.log->completion = ev.n_generated;
    a.log->response_content = a.content;
    if (ev.finish == Finish::kError) {
      // The 200 is already sent: the error travels as an event.
      const ApiError e = event_error(ev.error);
      a.log->status = e.status;
      out.push_back(sse(e.to_json()));
    } else {
      const std::string finish = finish_of(a, ev);
      out.push_back(a.endpoint == Endpoint::kChat
                        ? sse(chat_chunk(a.meta, json::object(), finish, json(), a.include_usage))
                        : sse(completion_chunk(a.meta, "", finish, json(), a.include_usage)));
      if (a.include_usage) {
        out.push_back(sse(usage_chunk(a.meta, a.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion",
                                      Usage{ev.n_prompt, ev.n_generated})));
      }
    }
    out.push_back("data: [DONE]\n\n");
    return out;
  }

  void stream_answer(httplib::Response& res, std::shared_ptr<Answer> a) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto started = std::make_shared<bool>(false);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, a, started](size_t, httplib::DataSink& sink) {
          auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          auto gone = [&] {
            // The client went away: stop its sequence (its KV blocks are
            // freed at the scheduler's next step).
            a->stream->cancel();
            a->log->status = 499;
            return false;
          };
          if (!*started) {
            *started = true;
            if (a->endpoint == Endpoint::kChat &&
                !write(sse(chat_chunk(a->meta, {{"role", "assistant"}, {"content", ""}}, json(), json(),
                                      a->include_usage)))) {
              return gone();
            }
          }
          std::vector<GenEvent> evs;
          for (;;) {
            evs.clear();
            if (!a->stream->wait(&evs, 200ms)) {
              if (!write(": keep-alive\n\n")) return gone();
              continue;
            }
            for (const GenEvent& ev : evs) {
              for (const std::string& c : chunks_of(*a, ev)) {
                if (!write(c)) return gone();
              }
              if (ev.done) {
                sink.done();
                return true;
              }
            }
          }
        },
        [a](bool success) {
          if (!success) a->stream->cancel();
        });
  }
};

Server::Server(ModelHost& host, Metrics& metrics, ServerOptions options)
    : impl_(std::make_unique<Impl>(host, metrics, std::move(options))) {
  Impl& s = *impl_;
  const ServerOptions& o = s.opt;
  int threads = o.n_http_threads;
  if (threads <= 0) {
    // Each streaming client holds a thread; the queue's clients must still
    // be answered (429) when every slot streams.
    threads = 32;
    if (auto e = host.current()) threads += int(e->scheduler().options().n_parallel + e->scheduler().options().max_queue);
    threads = std::max(threads, 64);
  }
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  s.http.set_payload_max_length(o.max_body_bytes);
  s.http.set_keep_alive_max_count(100);
  s.http.set_read_timeout(30, 0);
  s.http.set_write_timeout(10, 0);
  s.http.set_tcp_nodelay(true);
  s.http.set_pre_routing_handler([&s](const httplib::Request& q, httplib::Response& r) { return s.pre_routing(q, r); });
  s.http.set_error_handler([&s](const httplib::Request& q, httplib::Response& r) { s.on_error(q, r); });
  s.http.set_exception_handler([&s](const httplib::Request& q, httplib::Response& r, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    auto log = s.start_log(q);
    s.send_error(r, {500, "server_error", "internal error: " + what, "", "internal_error"}, log.get());
  });
  s.http.Get("/health", [&s](const httplib::Request& q, httplib::Response& r) { s.health(q, r); });
  s.http.Get("/metrics", [&s](const httplib::Request& q, httplib::Response& r) { s.metrics_page(q, r); });
  s.http.Get("/v1/models", [&s](const httplib::Request& q, httplib::Response& r) { s.list_models(q, r); });
  s.http.Get(R"(/v1/models/(.+))", [&s](const httplib::Request& q, httplib::Response& r) { s.get_model(q, r); });
  s.http.Post("/v1/chat/completions",
              [&s](const httplib::Request& q, httplib::Response& r) { s.generate(q, r, Endpoint::kChat); });
  s.http.Post("/v1/completions",
              [&s](const httplib::Request& q, httplib::Response& r) { s.generate(q, r, Endpoint::kCompletion); });
  for (const WebAsset& a : web_assets()) {
    s.http.Get(std::string(a.path), [&s](const httplib::Request& q, httplib::Response& r) { s.web(q, r); });
  }
}

Server::~Server() { stop(); }

Result<int> Server::bind() {
  Impl& s = *impl_;
  if (s.opt.port == 0) {
    const int p = s.http.bind_to_any_port(s.opt.host);
    if (p <= 0) return io_error("cannot listen on " + s.opt.host + " (any port)");
    s.port = p;
  } else {
    if (!s.http.bind_to_port(s.opt.host, s.opt.port)) {
      return io_error("cannot listen on " + s.opt.host + ":" + std::to_string(s.opt.port) +
                      " (in use, or not an address of this machine)");
    }
    s.port = s.opt.port;
  }
  return s.port;
}

void Server::listen() { impl_->http.listen_after_bind(); }

void Server::stop() {
  if (impl_ && impl_->http.is_running()) impl_->http.stop();
}

}  // namespace strata::serve
