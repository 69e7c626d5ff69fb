// What the server serves: an Engine is one loaded model with its tokenizer,
// chat template, batching scheduler and byte accounting; the ModelHost holds
// the models a server may serve (one file, or every GGUF of --models-dir),
// keeps one loaded, and switches to another on request when it fits in
// memory and the current one is idle.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "offload/expert_executor.h"
#include "offload/hardware.h"
#include "offload/placement.h"
#include "runtime/base/status.h"
#include "runtime/chat/chat_template.h"
#include "runtime/models/model.h"
#include "runtime/serve/json_schema.h"
#include "runtime/serve/metrics.h"
#include "runtime/serve/openai_protocol.h"
#include "runtime/serve/scheduler.h"
#include "runtime/serve/tool_calls.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata::serve {

// Wraps the model's routed-expert executor and counts the expert bytes it
// actually reads: each distinct expert a call runs is one read of its gate,
// up and down matrices, however many rows share it.
class CountingExecutor : public ExpertExecutor {
 public:
  explicit CountingExecutor(std::unique_ptr<ExpertExecutor> inner) : inner_(std::move(inner)) {}
  Status check_layer(const ExpertLayer& layer) const override { return inner_->check_layer(layer); }
  Status place_layers(std::span<const ExpertLayer> layers) override { return inner_->place_layers(layers); }
  std::string placement_summary() const override { return inner_->placement_summary(); }
  Status run(const ExpertLayer& layer, const ExpertRouting& routing, float* out) override;
  // Bytes read since the last call.
  uint64_t take_bytes() { return bytes_.exchange(0); }

 private:
  std::unique_ptr<ExpertExecutor> inner_;
  std::atomic<uint64_t> bytes_{0};
  std::vector<uint8_t> seen_;
};

struct EngineOptions {
  ModelOptions model;         // threads, kernels (from the command line)
  SchedulerOptions sched;     // n_ctx 0: the planner's choice (see below)
  bool prefault = true;       // read the weights in before serving when they fit in memory
  // This machine (detect_hardware, with cached calibration when there is
  // one): the model is placed by the planner (offload/placement.h) for
  // n_parallel sequences of n_ctx tokens. A plan that does not fit fails the
  // load (kOutOfMemory, with what is missing); with n_ctx 0 the context is
  // the largest of min(training context, 4096), halved down to 512, that
  // fits. Absent: no plan, n_ctx 0 means min(training context, 4096).
  std::optional<HardwareProfile> hardware;
};

// The serving plan: the model's weights and KV cache (entries of kv_type)
// for `sched`'s sequences on `hw` (CPU only: this runtime computes
// everything on the CPU). With shrink_ctx, sched->n_ctx is halved (not below
// 512) until the plan fits. kOutOfMemory when it cannot fit, saying what is
// missing.
Result<Plan> plan_for_serving(ModelDesc model, KvType kv_type, const HardwareProfile& hw, SchedulerOptions* sched,
                              bool shrink_ctx);

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> load(const std::string& id, const std::string& path,
                                              const EngineOptions& options, Metrics* metrics);
  ~Engine();

  const std::string& id() const { return id_; }
  const std::string& path() const { return path_; }
  Model& model() { return *model_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  const chat::ChatTemplate& chat_template() const { return *tmpl_; }
  const chat::ModelChatTemplate& template_info() const { return tmpl_info_; }
  Scheduler& scheduler() { return *sched_; }
  uint32_t n_ctx() const { return sched_->options().n_ctx; }
  uint64_t weight_bytes() const { return weight_bytes_; }
  // How this model writes tool calls (from its template or architecture),
  // and whether its template writes <think> reasoning blocks.
  ToolCallFormat tool_call_format() const { return tool_format_; }
  bool has_reasoning() const { return reasoning_; }
  // The vocabulary as a byte trie for constrained decoding, built on first use.
  const TokenTrie& token_trie();
  // Where the weights and the KV cache live, for the start-up message.
  std::string placement_summary() const;
  const std::optional<Plan>& plan() const { return plan_; }

 private:
  Engine() = default;
  std::string id_, path_;
  std::unique_ptr<Model> model_;
  std::optional<Tokenizer> tok_;
  std::optional<chat::ChatTemplate> tmpl_;
  chat::ModelChatTemplate tmpl_info_;
  std::shared_ptr<CountingExecutor> experts_;
  std::unique_ptr<Scheduler> sched_;
  uint64_t weight_bytes_ = 0;
  uint64_t fixed_bytes_per_step_ = 0;  // non-expert weights, read once per step
  uint64_t embd_row_bytes_ = 0;        // one embedding row per token
  uint64_t routed_bytes_ = 0;
  bool weights_resident_ = false;
  ToolCallFormat tool_format_ = ToolCallFormat::kNone;
  bool reasoning_ = false;
  std::optional<Plan> plan_;  // absent: loaded without a hardware profile
  std::once_flag trie_once_;
  std::unique_ptr<TokenTrie> trie_;
};

struct ModelEntry {
  std::string id;    // the file name without .gguf (and without -00001-of-0000N)
  std::string path;
  uint64_t bytes = 0;  // tensor bytes over all parts
  int64_t created = 0;  // file modification time (unix seconds)
};

class ModelHost {
 public:
  ModelHost(std::vector<ModelEntry> models, EngineOptions options, Metrics* metrics)
      : models_(std::move(models)), opt_(std::move(options)), metrics_(metrics) {}

  // One file; or every *.gguf of a directory (first parts of split models).
  static Result<ModelEntry> entry_for_file(const std::string& path);
  static Result<std::vector<ModelEntry>> scan_dir(const std::string& dir);

  // Loads `id` and warms it up (start-up; blocking).
  Status load(const std::string& id);

  // The engine for a request's model, switching models if needed. On failure
  // the error is the HTTP answer: 404 unknown model, 503 loading or busy
  // (Retry-After), 409 does not fit, 500 load failure.
  struct Acquired {
    std::shared_ptr<Engine> engine;
    ApiError error;
    int retry_after_s = 0;
  };
  Acquired acquire(const std::string& id);

  const std::vector<ModelEntry>& models() const { return models_; }
  bool ready() const;
  std::string loading() const;  // the model being loaded; empty: none
  std::shared_ptr<Engine> current() const;
  void shutdown();

 private:
  const ModelEntry* find(const std::string& id) const;
  Status load_locked_out(const ModelEntry& e);  // called with loading_ set

  std::vector<ModelEntry> models_;
  EngineOptions opt_;
  Metrics* metrics_;
  mutable std::mutex mu_;
  std::shared_ptr<Engine> current_;
  std::string loading_;
};

}  // namespace strata::serve
