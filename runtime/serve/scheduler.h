// Continuous batching: one worker thread runs forward steps over every
// running sequence at once. Each step carries the next token of every
// decoding sequence plus a chunk of waiting prompts (chunked prefill, so
// running streams keep flowing while a long prompt is read). Requests wait
// in a bounded queue for one of n_parallel slots; KV memory comes from the
// block pool (runtime/kv) and is given back the step a sequence ends, is
// cancelled (client gone) or runs past its deadline. When the pool runs
// short, the youngest sequence is preempted and later recomputed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/models/model.h"
#include "runtime/sampling/sampler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata::serve {

using Clock = std::chrono::steady_clock;

// Restricts which tokens may come next (constrained decoding: JSON, a
// schema). Called on the scheduler thread only, one sequence at a time.
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sets the logits of tokens that may not come next to -INFINITY.
  virtual void mask(float* logits, int32_t n_vocab) = 0;
  // Records the chosen token. An error ends the sequence with it.
  virtual Status accept(TokenId id) = 0;
  // True when the constrained text is complete: generation stops there.
  virtual bool complete() const = 0;
};

enum class Finish { kStop, kLength, kError };

struct TopLogprob {
  TokenId id = kNoToken;
  float logprob = 0;
};
// One sampled token with its log-probability under the model (log-softmax of
// the raw logits) and, when asked, the most likely alternatives.
struct TokenLogprob {
  TokenId id = kNoToken;
  float logprob = 0;
  std::vector<TopLogprob> top;
};

// What a sequence reports. Text is released as soon as it cannot be part of
// a stop string; `done` is set once, on the last event.
struct GenEvent {
  std::string text;
  std::vector<TokenLogprob> logprobs;  // tokens sampled for this event (only when asked)
  bool done = false;
  Finish finish = Finish::kStop;
  Status error;                 // with Finish::kError
  int64_t n_prompt = 0;         // on the last event
  int64_t n_generated = 0;      // on the last event
};

struct GenRequest {
  std::vector<TokenId> prompt;  // at least one token
  SamplerParams sampling;
  int32_t max_tokens = 16;      // >= 1
  std::vector<std::string> stop;
  int32_t top_logprobs = -1;    // -1: no log-probabilities; else alternatives per token (0..20)
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<TokenConstraint> constraint;  // null: none
  bool render_special = false;  // control tokens appear as their text (tool-call markers)
};

// The consumer's end of one request: events in order, and cancellation.
class GenStream {
 public:
  // Moves the pending events to *out, waiting up to `timeout` for the first.
  // False when none came in time.
  bool wait(std::vector<GenEvent>* out, std::chrono::milliseconds timeout);
  // The client is gone: the scheduler drops the sequence at its next step.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  void push(GenEvent ev);  // scheduler side

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenEvent> events_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  uint32_t n_parallel = 4;       // sequences decoded together (KV slots)
  uint32_t n_ctx = 4096;         // positions per sequence
  uint32_t kv_block = 16;        // positions per KV block
  uint32_t kv_blocks = 0;        // pool size in blocks; 0: every slot at full context
  uint32_t max_queue = 64;       // requests waiting for a slot at most
  int32_t prefill_chunk = 256;   // prompt tokens per step, over all prefilling sequences
};

// Per-step figures for metrics, reported from the scheduler thread.
struct StepReport {
  int64_t n_tokens = 0;      // batch tokens
  int64_t n_decode = 0;      // of which decode tokens
  int64_t n_sampled = 0;     // tokens generated this step
  double seconds = 0;        // forward time
};

struct SchedulerStats {
  uint32_t n_waiting = 0, n_running = 0, n_parallel = 0;
  uint32_t kv_blocks_used = 0, kv_blocks_max = 0, kv_block_positions = 0;
  uint64_t kv_bytes_allocated = 0, kv_block_bytes = 0;
  uint64_t n_steps = 0, n_preempted = 0;
};

struct Hooks {
  std::function<void(const StepReport&)> on_step;
  std::function<void(double ttft_s)> on_first_token;
  std::function<void(int64_t n_prompt, int64_t n_generated)> on_finish;
};

class Scheduler {
 public:
  Scheduler(Model& model, Tokenizer tok, const SchedulerOptions& opt, Hooks hooks = {});
  ~Scheduler();  // stops the worker; pending requests end with an error event

  // One forward step of a single token on slot 0, then cleared: proves the
  // model runs before the server reports healthy. Call before start().
  Status warm_up();
  void start();
  void stop();

  enum class Reject { kNone, kQueueFull, kInvalid };
  struct Submitted {
    std::shared_ptr<GenStream> stream;  // null when rejected
    Reject reject = Reject::kNone;
    std::string message;
  };
  // Queues a request; rejects an empty or too long prompt (kInvalid) and a
  // full queue (kQueueFull). Thread-safe.
  Submitted submit(GenRequest req);

  SchedulerStats stats() const;
  bool idle() const;  // every submitted request has had its last event
  const SchedulerOptions& options() const { return opt_; }

 private:
  struct Seq;
  void loop();
  bool step();  // false: nothing to do
  void finish(Seq& s, Finish f, Status err = Status::ok());
  // A row's token: constraint mask (into `scratch`, n_vocab floats) and the
  // sequence's own sampler; touches only s, so rows draw in parallel.
  static TokenId draw(Seq& s, const float* logits, int32_t n_vocab, float* scratch);
  // The drawn token into the sequence: events, stops, finish (in row order).
  void take(Seq& s, TokenId id, const float* logits, int32_t n_vocab);

  Model& model_;
  Tokenizer tok_;
  SchedulerOptions opt_;
  Hooks hooks_;
  KvCache cache_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Seq>> waiting_;  // guarded by mu_
  bool stop_ = false;                         // guarded by mu_
  std::vector<std::unique_ptr<Seq>> running_;  // worker thread only
  std::vector<int32_t> free_slots_;           // worker thread only
  std::atomic<uint32_t> n_running_{0}, kv_used_{0};
  std::atomic<int64_t> n_active_{0};  // submitted, last event not yet pushed
  std::atomic<uint64_t> kv_bytes_{0}, n_steps_{0}, n_preempted_{0};
  uint64_t next_arrival_ = 0;
  std::thread worker_;
};

}  // namespace strata::serve
