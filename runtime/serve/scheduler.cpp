// The batching loop: admit waiting requests into free slots, plan one step
// (decode tokens first, then prompt chunks in arrival order), make room in
// the KV pool (preempting the youngest sequence when short), run the forward
// pass, then sample, detokenize, match stop strings and report per sequence.
#include "runtime/serve/scheduler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "runtime/layers/compute_context.h"

namespace strata::serve {

struct Scheduler::Seq {
  Seq(GenRequest r, const Tokenizer& tok)
      : req(std::move(r)), sampler(req.sampling), detok(tok, req.render_special), stops(req.stop) {}
  std::shared_ptr<GenStream> stream = std::make_shared<GenStream>();
  GenRequest req;
  Sampler sampler;
  StreamingDetokenizer detok;
  StopMatcher stops;
  std::vector<TokenId> tokens;  // prompt, then generated tokens (the last one not yet run)
  int32_t n_prompt = 0;
  int32_t n_cached = 0;         // positions in the KV cache
  int32_t n_generated = 0;
  int32_t n_planned = 0;        // tokens in this step's batch
  int32_t slot = -1;
  uint64_t arrival = 0;
  Clock::time_point t_submit;
  bool got_first = false;
  bool done = false;
};

bool GenStream::wait(std::vector<GenEvent>* out, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
  while (!events_.empty()) {
    out->push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return true;
}

void GenStream::push(GenEvent ev) {
  {
    std::lock_guard lk(mu_);
    events_.push_back(std::move(ev));
  }
  cv_.notify_one();
}

namespace {

uint32_t blocks_for(uint32_t n_pos, uint32_t block) { return (n_pos + block - 1) / block; }

KvCache make_pool(const Model& m, const SchedulerOptions& o) {
  const KvCache shape = m.make_cache(1, 1);
  const uint32_t block = std::max<uint32_t>(1, o.kv_block);
  // The pool must hold at least one sequence at full context, or the oldest
  // sequence could not always make progress.
  const uint32_t min_blocks = blocks_for(o.n_ctx, block);
  const uint32_t n_blocks = o.kv_blocks == 0 ? 0 : std::max(o.kv_blocks, min_blocks);
  return KvCache(shape.n_layer(), shape.k_width(), shape.v_width(), o.n_parallel, o.n_ctx, block, n_blocks,
                 shape.type(), shape.heads());
}

// Log-probability of `id` and the `n_top` most likely tokens under the raw logits.
TokenLogprob logprobs_of(const float* logits, int32_t n_vocab, TokenId id, int32_t n_top) {
  float mx = -INFINITY;
  for (int32_t i = 0; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i] - mx));
  const double lse = double(mx) + std::log(sum);
  TokenLogprob t;
  t.id = id;
  t.logprob = float(double(logits[id]) - lse);
  if (n_top > 0) {
    std::vector<int32_t> idx(static_cast<size_t>(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) idx[size_t(i)] = i;
    const int32_t n = std::min(n_top, n_vocab);
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int32_t i = 0; i < n; ++i) t.top.push_back({idx[size_t(i)], float(double(logits[idx[size_t(i)]]) - lse)});
  }
  return t;
}

}  // namespace

Scheduler::Scheduler(Model& model, Tokenizer tok, const SchedulerOptions& opt, Hooks hooks)
    : model_(model), tok_(std::move(tok)), opt_(opt), hooks_(std::move(hooks)), cache_(make_pool(model, opt)) {
  for (uint32_t s = opt_.n_parallel; s-- > 0;) free_slots_.push_back(int32_t(s));
}

Scheduler::~Scheduler() { stop(); }

Status Scheduler::warm_up() {
  Batch b;
  const TokenId t = tok_.bos() != kNoToken ? tok_.bos() : 0;
  b.add(t, 0, 0, true);
  auto r = model_.forward(b, cache_);
  cache_.clear(0);
  return r.status();
}

void Scheduler::start() {
  if (worker_.joinable()) return;
  worker_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  // Whatever is left (the worker never started, or stopped mid-way) ends with an error.
  std::deque<std::unique_ptr<Seq>> left;
  {
    std::lock_guard lk(mu_);
    left.swap(waiting_);
  }
  for (auto& s : left) finish(*s, Finish::kError, unsupported("the server is shutting down"));
  for (auto& s : running_) {
    if (!s->done) finish(*s, Finish::kError, unsupported("the server is shutting down"));
  }
  running_.clear();
}

Scheduler::Submitted Scheduler::submit(GenRequest req) {
  Submitted out;
  if (req.prompt.empty()) {
    out.reject = Reject::kInvalid;
    out.message = "the prompt gives no tokens";
    return out;
  }
  if (req.prompt.size() >= opt_.n_ctx) {
    out.reject = Reject::kInvalid;
    out.message = "the prompt has " + std::to_string(req.prompt.size()) + " tokens; the context holds " +
                  std::to_string(opt_.n_ctx) + " (prompt and answer together)";
    return out;
  }
  for (TokenId t : req.prompt) {
    if (!tok_.valid(t) || uint32_t(t) >= model_.hparams().n_vocab) {
      out.reject = Reject::kInvalid;
      out.message = "token id " + std::to_string(t) + " is outside the vocabulary";
      return out;
    }
  }
  auto s = std::make_unique<Seq>(std::move(req), tok_);
  s->tokens = s->req.prompt;
  s->n_prompt = int32_t(s->tokens.size());
  s->t_submit = Clock::now();
  out.stream = s->stream;
  {
    std::lock_guard lk(mu_);
    if (stop_) {
      out.stream = nullptr;
      out.reject = Reject::kQueueFull;
      out.message = "the server is shutting down";
      return out;
    }
    if (waiting_.size() >= opt_.max_queue) {
      out.stream = nullptr;
      out.reject = Reject::kQueueFull;
      out.message = "the queue is full (" + std::to_string(opt_.max_queue) + " requests waiting for " +
                    std::to_string(opt_.n_parallel) + " slots)";
      return out;
    }
    s->arrival = next_arrival_++;
    n_active_.fetch_add(1);
    waiting_.push_back(std::move(s));
  }
  cv_.notify_one();
  return out;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats st;
  {
    std::lock_guard lk(mu_);
    st.n_waiting = uint32_t(waiting_.size());
  }
  st.n_running = n_running_.load();
  st.n_parallel = opt_.n_parallel;
  st.kv_blocks_used = kv_used_.load();
  st.kv_blocks_max = cache_.n_blocks_max();
  st.kv_block_positions = cache_.block_size();
  st.kv_block_bytes = cache_.block_bytes();
  st.kv_bytes_allocated = kv_bytes_.load();
  st.n_steps = n_steps_.load();
  st.n_preempted = n_preempted_.load();
  return st;
}

bool Scheduler::idle() const { return n_active_.load() == 0; }

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !waiting_.empty() || !running_.empty(); });
      if (stop_) return;
      const auto now = Clock::now();
      // Requests that gave up or timed out while queued never take a slot.
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        Seq& s = **it;
        if (s.stream->cancelled()) {
          finish(s, Finish::kStop);
        } else if (now >= s.req.deadline) {
          finish(s, Finish::kError, out_of_memory("timed out waiting for a free slot"));
        } else {
          ++it;
          continue;
        }
        it = waiting_.erase(it);
      }
      while (!waiting_.empty() && !free_slots_.empty()) {
        std::unique_ptr<Seq> s = std::move(waiting_.front());
        waiting_.pop_front();
        s->slot = free_slots_.back();
        free_slots_.pop_back();
        running_.push_back(std::move(s));
      }
      n_running_.store(uint32_t(running_.size()));
    }
    if (!step()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void Scheduler::finish(Seq& s, Finish f, Status err) {
  if (s.done) return;
  s.done = true;
  GenEvent ev;
  if (f != Finish::kError && !s.stops.stopped()) ev.text = s.stops.push(s.detok.flush()) + s.stops.flush();
  ev.done = true;
  ev.finish = f;
  ev.error = std::move(err);
  ev.n_prompt = s.n_prompt;
  ev.n_generated = s.n_generated;
  n_active_.fetch_sub(1);  // before the event: a client that saw it may switch models at once
  s.stream->push(std::move(ev));
  if (hooks_.on_finish) hooks_.on_finish(s.n_prompt, s.n_generated);
}

TokenId Scheduler::draw(Seq& s, const float* logits, int32_t n_vocab, float* scratch) {
  const float* l = logits;
  if (s.req.constraint) {
    std::copy(logits, logits + n_vocab, scratch);
    s.req.constraint->mask(scratch, n_vocab);
    l = scratch;
  }
  return s.sampler.sample(l, n_vocab);
}

void Scheduler::take(Seq& s, TokenId id, const float* logits, int32_t n_vocab) {
  s.sampler.accept(id);
  ++s.n_generated;
  if (!s.got_first) {
    s.got_first = true;
    if (hooks_.on_first_token) hooks_.on_first_token(std::chrono::duration<double>(Clock::now() - s.t_submit).count());
  }
  if (s.req.constraint) {
    if (Status st = s.req.constraint->accept(id); !st.is_ok()) return finish(s, Finish::kError, st);
  }
  if (tok_.is_eog(id)) return finish(s, Finish::kStop);
  GenEvent ev;
  if (s.req.top_logprobs >= 0) ev.logprobs.push_back(logprobs_of(logits, n_vocab, id, s.req.top_logprobs));
  s.tokens.push_back(id);
  ev.text = s.stops.push(s.detok.push(id));
  if (!ev.text.empty() || !ev.logprobs.empty()) s.stream->push(std::move(ev));
  if (s.stops.stopped() || (s.req.constraint && s.req.constraint->complete())) return finish(s, Finish::kStop);
  if (s.n_generated >= s.req.max_tokens || s.tokens.size() >= opt_.n_ctx) return finish(s, Finish::kLength);
}

bool Scheduler::step() {
  const auto now = Clock::now();
  for (auto& s : running_) {
    if (s->done) continue;
    if (s->stream->cancelled()) finish(*s, Finish::kStop);
    // Past its deadline a sequence ends as if it had hit max_tokens.
    else if (now >= s->req.deadline) finish(*s, Finish::kLength);
  }
  auto retire = [&] {
    for (auto& s : running_) {
      if (!s->done) continue;
      cache_.clear(uint32_t(s->slot));
      free_slots_.push_back(s->slot);
    }
    std::erase_if(running_, [](const std::unique_ptr<Seq>& s) { return s->done; });
    n_running_.store(uint32_t(running_.size()));
    kv_used_.store(cache_.n_blocks_used());
    kv_bytes_.store(cache_.bytes_allocated());
  };
  retire();
  if (running_.empty()) return true;

  // Plan: running_ is in arrival order, so older sequences are served first
  // and only a younger one is ever preempted for them.
  Batch batch;
  int32_t prefill_budget = std::max(1, opt_.prefill_chunk);
  std::unordered_map<int32_t, Seq*> by_slot;
  for (auto& sp : running_) sp->n_planned = 0;
  for (auto& sp : running_) {
    Seq& s = *sp;
    const int32_t pending = int32_t(s.tokens.size()) - s.n_cached;
    int32_t n = pending;
    if (pending > 1) {
      if (prefill_budget <= 0) continue;
      n = std::min(pending, prefill_budget);
    }
    bool fits = cache_.try_reserve(uint32_t(s.slot), s.n_cached + n).is_ok();
    while (!fits) {
      // The youngest sequence (younger than s) that holds blocks gives them up.
      Seq* victim = nullptr;
      for (auto it = running_.rbegin(); it != running_.rend() && it->get() != &s; ++it) {
        if (cache_.blocks_held(uint32_t((*it)->slot)) > 0) {
          victim = it->get();
          break;
        }
      }
      if (!victim) break;
      cache_.clear(uint32_t(victim->slot));
      victim->n_cached = 0;
      n_preempted_.fetch_add(1);
      fits = cache_.try_reserve(uint32_t(s.slot), s.n_cached + n).is_ok();
    }
    if (!fits) {
      // s is the youngest holder: its blocks go to the older sequences and
      // it is recomputed once they finish.
      if (cache_.blocks_held(uint32_t(s.slot)) > 0) n_preempted_.fetch_add(1);
      cache_.clear(uint32_t(s.slot));
      s.n_cached = 0;
      continue;
    }
    if (pending > 1) prefill_budget -= n;
    const bool last = s.n_cached + n == int32_t(s.tokens.size());
    for (int32_t i = 0; i < n; ++i) {
      batch.add(s.tokens[size_t(s.n_cached + i)], s.slot, s.n_cached + i, last && i == n - 1);
    }
    s.n_planned = n;
    by_slot[s.slot] = &s;
  }
  if (batch.size() == 0) return false;

  const auto t0 = Clock::now();
  auto r = model_.forward(batch, cache_);
  StepReport rep;
  rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  rep.n_tokens = batch.size();
  n_steps_.fetch_add(1);
  if (!r.is_ok()) {
    for (auto& [slot, s] : by_slot) finish(*s, Finish::kError, r.status());
    retire();
    if (hooks_.on_step) hooks_.on_step(rep);
    return true;
  }
  for (auto& [slot, s] : by_slot) {
    s->n_cached += s->n_planned;
    if (s->n_planned == 1 && s->n_generated > 0) ++rep.n_decode;
  }
  // Published before the tokens are, so a client that sees a token also
  // sees the blocks its sequence holds.
  kv_used_.store(cache_.n_blocks_used());
  kv_bytes_.store(cache_.bytes_allocated());
  const Logits& lg = r.value();
  std::vector<std::pair<Seq*, const float*>> rows;
  for (int64_t row = 0; row < lg.n_rows(); ++row) {
    Seq* s = by_slot[batch.seqs()[size_t(lg.batch_index[size_t(row)])]];
    if (!s->done) rows.emplace_back(s, lg.row(row));
  }
  // Each sequence draws from its own sampler (and constraint): the rows are
  // independent, so they are drawn over the model's pool (sorting a large
  // vocabulary per row is not free), then taken in row order here.
  std::vector<TokenId> ids(rows.size());
  const int32_t n_vocab = lg.n_vocab;
  for_each_item(model_.compute(), int64_t(rows.size()), int64_t(n_vocab) * 16, n_vocab, [&](int64_t i, float* scratch) {
    ids[size_t(i)] = draw(*rows[size_t(i)].first, rows[size_t(i)].second, n_vocab, scratch);
  });
  for (size_t i = 0; i < rows.size(); ++i) {
    take(*rows[i].first, ids[i], rows[i].second, n_vocab);
    ++rep.n_sampled;
  }
  retire();
  if (hooks_.on_step) hooks_.on_step(rep);
  return true;
}

}  // namespace strata::serve
