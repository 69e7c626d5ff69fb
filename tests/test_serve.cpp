// The serving core without HTTP: the continuous-batching scheduler gives each
// request exactly the tokens it would get alone (greedy, checked against a
// plain single-sequence decode loop), also with chunked prefill and with a KV
// pool so small that sequences are preempted and recomputed; cancellation
// frees KV blocks; the queue bound; deadlines. Plus request validation, key
// matching and the metrics text.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gguf/gguf_reader.h"
#include "runtime/model/plan_input.h"
#include "runtime/models/model.h"
#include "runtime/serve/auth.h"
#include "runtime/serve/engine.h"
#include "runtime/serve/metrics.h"
#include "runtime/serve/openai_protocol.h"
#include "runtime/serve/scheduler.h"
#include "runtime/synth/mkmodel.h"
#include "runtime/synth/presets.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata::serve {
namespace {

using namespace std::chrono_literals;

struct Loaded {
  std::string path;
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tok;
};

Loaded load_tiny(int n_threads) {
  Loaded x;
  const synth::Preset* p = synth::find_preset("tiny-qwen3moe");
  synth::MkModelOptions o;
  o.out_path = ::testing::TempDir() + "strata_serve_" + std::to_string(::getpid()) + "_" + std::to_string(n_threads) +
               ".gguf";
  o.hp = p->hp;
  o.types.base = DType::kQ8_0;
  o.vocab_from = std::string(STRATA_SHARED_DIR) + "/data/vocab/ggml-vocab-gpt-2.gguf";
  o.seed = 4;
  auto r = synth::make_model(o);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  auto f = gguf::GgufModel::open(o.out_path);
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  ModelOptions mo;
  mo.kernels = CpuKernels::kReference;  // the scalar oracle: batch-independent bit for bit
  mo.n_threads = n_threads;
  auto m = Model::load(std::move(f.value()), mo);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  x.model = std::move(m.value());
  auto t = Tokenizer::from_gguf(x.model->file());
  EXPECT_TRUE(t.is_ok());
  x.tok = std::move(t.value());
  x.path = o.out_path;
  std::remove(o.out_path.c_str());  // the mapping stays valid
  return x;
}

Loaded& tiny() {
  static Loaded l = load_tiny(1);
  return l;
}

// What one sequence decodes alone: greedy, until an end-of-generation token
// or max_tokens; the text through the streaming detokenizer.
std::string decode_alone(Model& m, const Tokenizer& tok, const std::vector<TokenId>& prompt, int max_tokens) {
  KvCache cache = m.make_cache(1, uint32_t(prompt.size() + max_tokens + 1));
  Batch b;
  b.add_sequence(prompt, 0, 0);
  auto r = m.forward(b, cache);
  EXPECT_TRUE(r.is_ok());
  StreamingDetokenizer detok(tok);
  std::string text;
  int32_t pos = int32_t(prompt.size());
  for (int i = 0; i < max_tokens; ++i) {
    const TokenId id = argmax(r->row(r->n_rows() - 1), r->n_vocab);
    if (tok.is_eog(id)) break;
    text += detok.push(id);
    b.clear();
    b.add(id, 0, pos++, true);
    r = m.forward(b, cache);
    EXPECT_TRUE(r.is_ok());
  }
  return text + detok.flush();
}

struct Outcome {
  std::string text;
  Finish finish = Finish::kError;
  int64_t n_generated = 0;
  bool done = false;
};

Outcome drain(GenStream& s, std::chrono::seconds limit = 60s) {
  Outcome o;
  const auto end = Clock::now() + limit;
  std::vector<GenEvent> evs;
  while (!o.done && Clock::now() < end) {
    evs.clear();
    s.wait(&evs, 100ms);
    for (auto& e : evs) {
      o.text += e.text;
      if (e.done) {
        o.done = true;
        o.finish = e.finish;
        o.n_generated = e.n_generated;
      }
    }
  }
  return o;
}

std::vector<std::vector<TokenId>> prompts(const Tokenizer& tok) {
  return {tok.tokenize("The sea is"), tok.tokenize("Once upon a time, in a land far away, there lived a king who"),
          tok.tokenize("1 2 3"), tok.tokenize("Hello"),
          tok.tokenize("A long prompt that the scheduler reads in several chunks while other sequences decode, "
                       "word after word after word after word."),
          tok.tokenize("Why?")};
}

GenRequest greedy(const std::vector<TokenId>& p, int max_tokens) {
  GenRequest g;
  g.prompt = p;
  g.sampling.temp = 0;
  g.max_tokens = max_tokens;
  return g;
}

void expect_same_as_alone(const SchedulerOptions& so, bool expect_preemption) {
  Loaded& l = tiny();
  const int kMax = 12;
  const auto ps = prompts(*l.tok);
  std::vector<std::string> want;
  for (const auto& p : ps) want.push_back(decode_alone(*l.model, *l.tok, p, kMax));
  Scheduler s(*l.model, *l.tok, so);
  s.start();
  std::vector<std::shared_ptr<GenStream>> streams;
  for (const auto& p : ps) {
    auto sub = s.submit(greedy(p, kMax));
    ASSERT_TRUE(sub.stream) << sub.message;
    streams.push_back(sub.stream);
  }
  for (size_t i = 0; i < ps.size(); ++i) {
    const Outcome o = drain(*streams[i]);
    ASSERT_TRUE(o.done) << "request " << i;
    EXPECT_NE(o.finish, Finish::kError);
    EXPECT_EQ(o.text, want[i]) << "request " << i;
  }
  // The last event goes out just before the step that sent it retires the
  // sequence; give that step a moment.
  const auto end = Clock::now() + 2s;
  while ((s.stats().n_running || s.stats().kv_blocks_used) && Clock::now() < end) std::this_thread::sleep_for(1ms);
  const SchedulerStats st = s.stats();
  EXPECT_EQ(st.n_running, 0u);
  EXPECT_EQ(st.kv_blocks_used, 0u);
  if (expect_preemption) {
    EXPECT_GT(st.n_preempted, 0u);
  }
  // Continuous batching: far fewer steps than one per token per request.
  EXPECT_LT(st.n_steps, uint64_t(ps.size() * (kMax + 1)));
}

TEST(Scheduler, BatchedAnswersEqualEachAlone) {
  SchedulerOptions so;
  so.n_parallel = 3;
  so.n_ctx = 128;
  so.prefill_chunk = 8;  // the long prompts are read in chunks between decode steps
  expect_same_as_alone(so, false);
}

// Seeded sampling: each request's tokens are the same whether it runs alone
// on one thread or batched with others and drawn in parallel on two.
TEST(Scheduler, SampledAnswersDoNotDependOnBatchingOrThreads) {
  Loaded two = load_tiny(2);
  const auto ps = prompts(*two.tok);
  auto request = [&](size_t i) {
    GenRequest g;
    g.prompt = ps[i];
    g.sampling.temp = 0.9f;
    g.sampling.top_p = 0.95f;
    g.sampling.seed = 100 + i;
    g.max_tokens = 10;
    return g;
  };
  std::vector<std::string> alone;
  {
    SchedulerOptions so;
    so.n_parallel = 1;
    so.n_ctx = 128;
    Scheduler s(*tiny().model, *tiny().tok, so);
    s.start();
    for (size_t i = 0; i < ps.size(); ++i) {
      auto sub = s.submit(request(i));
      ASSERT_TRUE(sub.stream);
      alone.push_back(drain(*sub.stream).text);
    }
  }
  SchedulerOptions so;
  so.n_parallel = uint32_t(ps.size());
  so.n_ctx = 128;
  Scheduler s(*two.model, *two.tok, so);
  s.start();
  std::vector<std::shared_ptr<GenStream>> streams;
  for (size_t i = 0; i < ps.size(); ++i) streams.push_back(s.submit(request(i)).stream);
  for (size_t i = 0; i < ps.size(); ++i) {
    ASSERT_TRUE(streams[i]);
    EXPECT_EQ(drain(*streams[i]).text, alone[i]) << "request " << i;
  }
  EXPECT_EQ(two.model->pool().n_threads(), 2);
}

TEST(Scheduler, PreemptedSequencesAreRecomputedExactly) {
  SchedulerOptions so;
  so.n_parallel = 4;
  so.n_ctx = 64;
  so.kv_block = 4;
  so.kv_blocks = 16;  // one sequence at full context; four do not fit together
  so.prefill_chunk = 64;
  expect_same_as_alone(so, true);
}

TEST(Scheduler, CancelFreesTheSlotAndItsBlocks) {
  Loaded& l = tiny();
  SchedulerOptions so;
  so.n_parallel = 2;
  so.n_ctx = 2048;
  Scheduler s(*l.model, *l.tok, so);
  s.start();
  auto sub = s.submit(greedy(l.tok->tokenize("Tell me everything"), 2000));
  ASSERT_TRUE(sub.stream);
  std::vector<GenEvent> evs;
  while (evs.empty()) sub.stream->wait(&evs, 1000ms);
  EXPECT_EQ(s.stats().n_running, 1u);
  EXPECT_GT(s.stats().kv_blocks_used, 0u);
  sub.stream->cancel();
  const Outcome o = drain(*sub.stream, 10s);
  EXPECT_TRUE(o.done);
  EXPECT_LT(o.n_generated, 2000);
  const auto end = Clock::now() + 5s;
  while ((s.stats().n_running || s.stats().kv_blocks_used) && Clock::now() < end) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(s.stats().n_running, 0u);
  EXPECT_EQ(s.stats().kv_blocks_used, 0u);
}

TEST(Scheduler, QueueBoundAndInvalidPrompts) {
  Loaded& l = tiny();
  SchedulerOptions so;
  so.n_parallel = 1;
  so.max_queue = 2;
  so.n_ctx = 32;
  Scheduler s(*l.model, *l.tok, so);  // not started: everything waits
  const auto p = l.tok->tokenize("Hi");
  auto a = s.submit(greedy(p, 3)), b = s.submit(greedy(p, 3)), c = s.submit(greedy(p, 3));
  ASSERT_TRUE(a.stream && b.stream);
  EXPECT_FALSE(c.stream);
  EXPECT_EQ(c.reject, Scheduler::Reject::kQueueFull);
  EXPECT_NE(c.message.find("queue is full"), std::string::npos) << c.message;
  EXPECT_EQ(s.submit(greedy({}, 3)).reject, Scheduler::Reject::kInvalid);
  auto too_long = s.submit(greedy(std::vector<TokenId>(32, p[0]), 3));
  EXPECT_EQ(too_long.reject, Scheduler::Reject::kInvalid);
  EXPECT_NE(too_long.message.find("context holds 32"), std::string::npos) << too_long.message;
  EXPECT_EQ(s.submit(greedy({-1}, 3)).reject, Scheduler::Reject::kInvalid);
  EXPECT_EQ(s.stats().n_waiting, 2u);
  s.start();
  EXPECT_TRUE(drain(*a.stream).done);
  EXPECT_TRUE(drain(*b.stream).done);
}

TEST(Scheduler, DeadlinesEndRequests) {
  Loaded& l = tiny();
  SchedulerOptions so;
  so.n_parallel = 1;
  so.n_ctx = 4096;
  Scheduler s(*l.model, *l.tok, so);
  s.start();
  GenRequest g = greedy(l.tok->tokenize("Go on"), 4000);
  g.deadline = Clock::now() + 200ms;
  auto running = s.submit(g);
  GenRequest q = greedy(l.tok->tokenize("Me too"), 5);
  q.deadline = Clock::now() + 50ms;  // expires while the first holds the only slot
  auto queued = s.submit(q);
  const Outcome r = drain(*running.stream, 20s), w = drain(*queued.stream, 20s);
  ASSERT_TRUE(r.done && w.done);
  EXPECT_EQ(r.finish, Finish::kLength);
  EXPECT_LT(r.n_generated, 4000);
  EXPECT_EQ(w.finish, Finish::kError);
  EXPECT_EQ(w.n_generated, 0);
}

TEST(Protocol, ChatRequestFieldsAndDefaults) {
  ParsedRequest r;
  ApiError e;
  json body = json::parse(R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},
      {"type":"text","text":"b"}]}],"stream":true,"stream_options":{"include_usage":true},"stop":"x","seed":-3,
      "max_completion_tokens":7,"logprobs":true,"top_logprobs":20,"top_k":5,"logit_bias":{"12":-100}})");
  ASSERT_TRUE(parse_chat_request(body, {}, &r, &e)) << e.message;
  EXPECT_EQ(r.messages[0]["content"], "a\nb");
  EXPECT_TRUE(r.stream && r.include_usage && r.has_seed && r.logprobs);
  EXPECT_EQ(r.sampling.seed, uint64_t(-3));
  EXPECT_EQ(*r.max_tokens, 7);
  EXPECT_EQ(r.top_logprobs, 20);
  EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(r.sampling.top_k, 5);
  EXPECT_EQ(r.sampling.logit_bias.at(12), -100.0f);
  // OpenAI's defaults, not the CLI's.
  ParsedRequest d;
  ASSERT_TRUE(parse_chat_request(json::parse(R"({"model":"m","messages":[{"role":"user","content":"x"}]})"), {}, &d, &e));
  EXPECT_EQ(d.sampling.temp, 1.0f);
  EXPECT_EQ(d.sampling.top_p, 1.0f);
  EXPECT_EQ(d.sampling.top_k, 0);
  EXPECT_EQ(d.sampling.min_p, 0.0f);
  EXPECT_FALSE(d.max_tokens.has_value());
}

TEST(Protocol, InvalidRequestsNameTheField) {
  const std::string ok_msgs = R"("messages":[{"role":"user","content":"x"}])";
  struct Case {
    std::string body, param, words;
  } cases[] = {
      {R"({"model":"m"})", "messages", "required"},
      {R"({"model":"m",)" + ok_msgs + R"(,"temperature":3})", "temperature", "[0, 2]"},
      {R"({"model":"m",)" + ok_msgs + R"(,"stream_options":{"include_usage":true}})", "stream_options", "stream is true"},
      {R"({"model":"m",)" + ok_msgs + R"(,"stop":[1]})", "stop", "expected a string"},
      {R"({"model":"m",)" + ok_msgs + R"(,"response_format":{"type":"xml"}})", "response_format.type", "xml"},
      {R"({"model":"m","messages":[{"role":"tool","content":"x"}]})", "messages[0].tool_call_id", "required"},
      {R"({"model":"m","messages":[{"role":"user","content":"x","extra":1}]})", "messages[0].extra", "unknown field"},
      {R"({"model":"m",)" + ok_msgs + R"(,"seed":1.5})", "seed", "an integer"},
  };
  for (const Case& c : cases) {
    ParsedRequest r;
    ApiError e;
    EXPECT_FALSE(parse_chat_request(json::parse(c.body), {}, &r, &e)) << c.body;
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_NE(e.message.find(c.words), std::string::npos) << e.message;
  }
  ApiError e;
  json j;
  EXPECT_FALSE(parse_json_body("{\"a\": }", &j, &e));
  EXPECT_NE(e.message.find("line 1, column 7"), std::string::npos) << e.message;
  EXPECT_EQ(e.to_json().dump(), R"({"error":{"message":")" + e.message +
                                    R"(","type":"invalid_request_error","param":null,"code":"invalid_json"}})");
}

TEST(Auth, KeyFilesAndMatching) {
  const std::string path = ::testing::TempDir() + "strata_keys_" + std::to_string(::getpid());
  std::ofstream(path) << "# comment\n\nalice: sk-a\nbob:sk-bbbbbbbb\n";
  auto ks = KeyStore::from_file(path);
  ASSERT_TRUE(ks.is_ok()) << ks.status().to_string();
  EXPECT_EQ(ks->match("sk-a"), "alice");
  EXPECT_EQ(ks->match("sk-bbbbbbbb"), "bob");
  EXPECT_FALSE(ks->match("sk-b"));
  EXPECT_FALSE(ks->match("sk-bbbbbbbbb"));
  EXPECT_FALSE(ks->match(""));
  EXPECT_FALSE(ks->match(std::string(1000, 'x')));
  std::ofstream(path) << "alice: sk-a\nnocolon\n";
  auto bad = KeyStore::from_file(path);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find(":2: expected 'name:key'"), std::string::npos) << bad.status().message();
  std::remove(path.c_str());
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer  abc "), "abc");
  EXPECT_FALSE(bearer_token("Basic abc"));
  EXPECT_FALSE(bearer_token("Bearer "));
}

TEST(Metrics, ExpositionText) {
  Metrics m;
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/health", 503);
  m.add_prompt_tokens(10);
  m.add_generated_tokens(4);
  m.observe_ttft(0.03);
  m.observe_ttft(2.0);
  m.add_step_bytes({0, 1000, 0}, 4);
  SchedulerStats st;
  st.n_running = 2;
  st.kv_blocks_used = 3;
  st.kv_blocks_max = 12;
  const std::string t = m.render(st, "tiny", -1);
  for (const char* line : {"strata_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2",
                           "strata_requests_total{route=\"/health\",status=\"503\"} 1", "strata_prompt_tokens_total 10",
                           "strata_generated_tokens_total 4", "strata_running_sequences 2",
                           "strata_kv_cache_usage_ratio 0.25", "strata_time_to_first_token_seconds_bucket{le=\"0.05\"} 1",
                           "strata_time_to_first_token_seconds_bucket{le=\"2.5\"} 2",
                           "strata_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2",
                           "strata_time_to_first_token_seconds_count 2", "strata_weight_bytes_per_token{tier=\"dram\"} 250",
                           "strata_weight_bytes_per_token{tier=\"vram\"} 0", "strata_expert_cache_hit_ratio NaN"}) {
    EXPECT_NE(t.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << t;
  }
}

// A one-node machine whose planner-usable DRAM is `usable` bytes (the
// planner keeps 2 GiB of a small node for the system).
HardwareProfile machine_with(uint64_t usable) {
  HardwareProfile hw;
  hw.name = "test machine";
  NumaSpec n;
  n.dram_bytes = (2ull << 30) + usable;
  n.cores = 2;
  hw.numa.push_back(n);
  hw.cpu.sockets = 1;
  hw.cpu.cores_per_socket = 2;
  return hw;
}

TEST(Engine, PlacedByThePlannerWhichSizesTheDefaultContext) {
  const std::string path = tiny().path + ".plan.gguf";
  {
    const synth::Preset* p = synth::find_preset("tiny-qwen3moe");
    synth::MkModelOptions o;
    o.out_path = path;
    o.hp = p->hp;
    o.hp.n_ctx_train = 4096;
    o.types.base = DType::kQ8_0;
    o.vocab_from = std::string(STRATA_SHARED_DIR) + "/data/vocab/ggml-vocab-gpt-2.gguf";
    ASSERT_TRUE(synth::make_model(o).is_ok());
  }
  auto desc = model_desc_from_gguf(path);
  ASSERT_TRUE(desc.is_ok()) << desc.status().to_string();
  const uint64_t weights = desc.value().routed_bytes + desc.value().resident_bytes;
  const uint64_t kv_token = desc.value().kv_bytes_per_token * 2;  // the runtime's f32 cache
  ASSERT_GT(kv_token, 0u);

  EngineOptions eo;
  eo.model.kernels = CpuKernels::kReference;
  eo.model.n_threads = 1;
  eo.prefault = false;
  eo.sched.n_parallel = 2;
  eo.sched.n_ctx = 0;  // the planner's choice
  // Room for the weights and 2 x 1024 tokens of KV cache, not 2 x 2048.
  eo.hardware = machine_with(weights + kv_token * 2 * 1500);
  {
    auto e = Engine::load("tiny", path, eo, nullptr);
    ASSERT_TRUE(e.is_ok()) << e.status().to_string();
    EXPECT_EQ(e.value()->n_ctx(), 1024u);  // 4096 and 2048 do not fit
    ASSERT_TRUE(e.value()->plan().has_value());
    EXPECT_TRUE(e.value()->plan()->feasible);
    EXPECT_EQ(e.value()->plan()->placement.kv_tokens, 2u * 1024);
    EXPECT_NE(e.value()->placement_summary().find("KV cache in DRAM"), std::string::npos);
  }
  // A context asked for is kept, or the load fails saying what is missing.
  eo.sched.n_ctx = 2048;
  auto no = Engine::load("tiny", path, eo, nullptr);
  ASSERT_FALSE(no.is_ok());
  EXPECT_EQ(no.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(no.status().message().find("does not fit this machine for 2 sequences of 2048 tokens"), std::string::npos)
      << no.status().message();
  // Not even the weights: no context helps.
  eo.sched.n_ctx = 0;
  eo.hardware = machine_with(weights / 2);
  auto none = Engine::load("tiny", path, eo, nullptr);
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().code(), StatusCode::kOutOfMemory);
  // Without a profile: the model's context, at most 4096.
  eo.hardware.reset();
  auto plain = Engine::load("tiny", path, eo, nullptr);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  EXPECT_EQ(plain.value()->n_ctx(), 4096u);
  EXPECT_FALSE(plain.value()->plan().has_value());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace strata::serve
