// Loading a model for serving (tokenizer and template required, weights read
// in when they fit, a warm-up step), the per-step byte accounting reported to
// the metrics, and switching between the models of --models-dir.
#include "runtime/serve/engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <sstream>

#include "offload/cpu_pool.h"
#include "offload/model_shape.h"
#include "runtime/base/bytes.h"
#include "runtime/base/system_memory.h"
#include "runtime/model/arch.h"
#include "runtime/model/plan_input.h"
#include "runtime/serve/reasoning.h"

namespace strata::serve {
Status CountingExecutor::run(const ExpertLayer& layer, const ExpertRouting& r, float* out) {
  seen_.assign(size_t(std::max<int64_t>(layer.n_expert(), 0)), 0);
  uint64_t n_distinct = 0;
  for (int64_t i = 0; i < r.n_rows * r.n_used; ++i) {
    const int32_t e = r.ids[i];
    if (e >= 0 && e < int32_t(seen_.size()) && !seen_[size_t(e)]) {
      seen_[size_t(e)] = 1;
      ++n_distinct;
    }
  }
  bytes_.fetch_add(n_distinct * (layer.gate.expert_bytes + layer.up.expert_bytes + layer.down.expert_bytes));
  return inner_->run(layer, r, out);
}

Result<Plan> plan_for_serving(ModelDesc model, KvType kv_type, const HardwareProfile& hw, SchedulerOptions* sched,
                              bool shrink_ctx) {
  // The planner counts f16 entries.
  model.kv_bytes_per_token = model.kv_bytes_per_token / 2 * kv_type_bytes(kv_type);
  PlanOptions po;
  po.gpu = -1;  // the runtime computes on the CPU
  for (;;) {
    po.workload.context = sched->n_ctx;
    po.workload.n_seq = sched->n_parallel;
    po.workload.prompt = std::max<uint32_t>(1, sched->n_ctx / 2);
    po.workload.answer = std::max<uint32_t>(1, sched->n_ctx / 4);
    STRATA_ASSIGN_OR_RETURN(Plan plan, plan_placement(model, hw, po));
    if (plan.feasible) return plan;
    if (!shrink_ctx || sched->n_ctx <= 512) {
      std::string why;
      for (const std::string& s : plan.shortfalls) why += (why.empty() ? "" : "; ") + s;
      return Status(StatusCode::kOutOfMemory,
                    model.name + " does not fit this machine for " + std::to_string(sched->n_parallel) +
                        " sequences of " + std::to_string(sched->n_ctx) + " tokens: " + why);
    }
    sched->n_ctx = std::max<uint32_t>(512, sched->n_ctx / 2);
  }
}

Result<std::unique_ptr<Engine>> Engine::load(const std::string& id, const std::string& path,
                                             const EngineOptions& options, Metrics* metrics) {
  std::unique_ptr<Engine> e(new Engine());
  e->id_ = id;
  e->path_ = path;
  STRATA_ASSIGN_OR_RETURN(gguf::GgufModel file, gguf::GgufModel::open(path));
  if (!file.find("tokenizer.ggml.tokens")) {
    return invalid_argument(path + ": serving needs a tokenizer in the file (tokenizer.ggml.*), got none");
  }
  STRATA_ASSIGN_OR_RETURN(e->tmpl_info_, chat::model_chat_template(file, ""));
  STRATA_ASSIGN_OR_RETURN(chat::ChatTemplate tmpl, chat::ChatTemplate::parse(e->tmpl_info_.source));
  e->tmpl_ = std::move(tmpl);

  // The context and the placement, from the planner when the machine is known.
  SchedulerOptions so = options.sched;
  {
    STRATA_ASSIGN_OR_RETURN(HParams hp, read_hparams(file));
    const bool ctx_given = so.n_ctx != 0;
    if (!ctx_given) {
      so.n_ctx = hp.n_ctx_train > 0 ? std::min<uint32_t>(4096, hp.n_ctx_train) : 4096;
    } else if (hp.n_ctx_train > 0) {
      so.n_ctx = std::min(so.n_ctx, hp.n_ctx_train);
    }
    so.n_ctx = std::max<uint32_t>(so.n_ctx, 8);
    if (options.hardware) {
      STRATA_ASSIGN_OR_RETURN(ModelDesc desc, model_desc_from_gguf(file, path));
      desc.name = id;
      STRATA_ASSIGN_OR_RETURN(Plan plan,
                              plan_for_serving(desc, options.model.kv_type, *options.hardware, &so, !ctx_given));
      e->plan_ = std::move(plan);
    }
  }

  // The model's own CPU executor, wrapped to count the expert bytes it reads.
  ModelOptions mo = options.model;
  if (!mo.experts) {
    std::optional<Topology> topo = mo.topology;
    if (!topo) {
      STRATA_ASSIGN_OR_RETURN(topo, Topology::this_machine());
    }
    if (!mo.pool) {
      CpuPoolOptions po;
      po.n_threads = mo.n_threads;
      STRATA_ASSIGN_OR_RETURN(std::unique_ptr<CpuPool> pool, CpuPool::create(*topo, po));
      mo.pool = std::move(pool);
    }
    CpuExecutorOptions eo;
    eo.pool = mo.pool;
    eo.kernels = mo.kernels;
    eo.topology = topo;
    eo.numa = mo.numa;
    eo.repack = mo.repack;
    eo.progress = mo.placement_progress;
    e->experts_ = std::make_shared<CountingExecutor>(make_cpu_expert_executor(std::move(eo)));
    mo.experts = e->experts_;
    mo.topology = topo;
    mo.n_threads = 0;
  }
  STRATA_ASSIGN_OR_RETURN(e->model_, Model::load(std::move(file), mo));
  Model& m = *e->model_;
  STRATA_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_gguf(m.file()));
  e->tok_ = std::move(tok);
  e->tool_format_ = detect_tool_call_format(e->tmpl_info_.source, arch_name(m.hparams().arch));
  e->reasoning_ = template_has_reasoning(e->tmpl_info_.source);

  const RoleSummary roles = summarize_roles(describe_model(m.file(), m.hparams()));
  e->weight_bytes_ = roles.total_bytes;
  e->routed_bytes_ = roles.of(TensorRole::kRoutedExpert);
  const uint64_t embd = roles.of(TensorRole::kEmbedding);
  e->embd_row_bytes_ = m.hparams().n_vocab ? embd / m.hparams().n_vocab : 0;
  e->fixed_bytes_per_step_ = roles.total_bytes - e->routed_bytes_ - embd;
  e->weights_resident_ = fits_in_available_memory(e->weight_bytes_);
  if (options.prefault && e->weights_resident_) m.file().prefault();

  Engine* self = e.get();
  Hooks hooks;
  if (metrics) {
    hooks.on_step = [self, metrics](const StepReport& r) {
      TierBytes b;
      b.dram = self->fixed_bytes_per_step_ + uint64_t(r.n_tokens) * self->embd_row_bytes_ +
               (self->experts_ ? self->experts_->take_bytes() : 0);
      metrics->add_step_bytes(b, r.n_tokens);
      if (r.n_sampled) metrics->add_generated_tokens(r.n_sampled);
    };
    hooks.on_first_token = [metrics](double s) { metrics->observe_ttft(s); };
  }
  e->sched_ = std::make_unique<Scheduler>(m, *e->tok_, so, std::move(hooks));
  STRATA_RETURN_IF_ERROR(e->sched_->warm_up());
  if (e->experts_) e->experts_->take_bytes();
  e->sched_->start();
  return e;
}

Engine::~Engine() {
  if (sched_) sched_->stop();
}

const TokenTrie& Engine::token_trie() {
  std::call_once(trie_once_, [&] { trie_ = std::make_unique<TokenTrie>(build_token_trie(*tok_)); });
  return *trie_;
}

std::string Engine::placement_summary() const {
  const SchedulerStats st = sched_->stats();
  const SchedulerOptions& so = sched_->options();
  std::ostringstream o;
  o << "model " << id_ << " (" << arch_name(model_->hparams().arch) << ", " << path_ << ")\n";
  o << "  weights: " << format_bytes(weight_bytes_) << " in DRAM, memory-mapped"
    << (weights_resident_ ? " and read in" : ", larger than free memory: read from disk as used") << "; "
    << "computed by the CPU (no GPU tier in this build)\n";
  if (routed_bytes_ > 0) {
    o << "  routed experts: " << format_bytes(routed_bytes_) << " of it, " << model_->hparams().n_expert_used << " of "
      << model_->hparams().n_expert << " per token; expert cache: none\n";
    if (const std::string placed = model_->placement_summary(); !placed.empty()) o << "  " << placed << "\n";
  }
  o << "  KV cache: " << st.kv_blocks_max << " blocks of " << st.kv_block_positions << " positions ("
    << format_bytes(uint64_t(st.kv_blocks_max) * st.kv_block_bytes) << " at most, allocated as used), " << so.n_parallel
    << " parallel sequences of up to " << so.n_ctx << " tokens\n";
  if (plan_) {
    o << "  plan (strata plan's solver on this machine's profile):\n";
    for (const std::string& d : plan_->decisions) o << "    " << d << "\n";
    const DecodeEstimate& one = plan_->decode_single;
    if (one.tok_s.known()) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "    predicted decode: %.1f tok/s for one sequence (%.1f-%.1f), %.1f tok/s for %u; "
                    "bottleneck: %s\n", one.tok_s.value, one.tok_s.lo, one.tok_s.hi, plan_->decode_batch.tok_s.value,
                    plan_->decode_batch.batch, one.bottleneck.c_str());
      o << buf;
    } else {
      o << "    predicted speed: unknown until this machine is calibrated (strata plan --this-machine)\n";
    }
  }
  o << "  chat template: " << (tmpl_info_.key.empty() ? "ChatML (the model has none)" : tmpl_info_.key)
    << "; tool calls: " << (tool_format_ == ToolCallFormat::kNone ? "none" : tool_call_format_name(tool_format_))
    << "; reasoning: " << (reasoning_ ? "<think> blocks" : "none");
  return o.str();
}

Result<ModelEntry> ModelHost::entry_for_file(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(gguf::GgufModel f, gguf::GgufModel::open(path));
  ModelEntry e;
  e.path = path;
  e.bytes = f.total_tensor_bytes();
  std::string name = std::filesystem::path(path).filename().string();
  static const std::regex split(R"(-0*1-of-\d+\.gguf$)");
  name = std::regex_replace(name, split, "");
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
  e.id = name;
  struct stat sb {};
  if (::stat(path.c_str(), &sb) == 0) e.created = int64_t(sb.st_mtime);
  return e;
}

Result<std::vector<ModelEntry>> ModelHost::scan_dir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return not_found("--models-dir: '" + dir + "' is not a directory");
  std::vector<std::string> paths;
  static const std::regex later_part(R"(-(\d+)-of-\d+\.gguf$)");
  for (const auto& de : std::filesystem::directory_iterator(dir, ec)) {
    const std::string p = de.path().string();
    if (!de.is_regular_file() || de.path().extension() != ".gguf") continue;
    std::smatch m;
    const std::string fname = de.path().filename().string();
    if (std::regex_search(fname, m, later_part) && std::stoul(m[1].str()) != 1) continue;
    paths.push_back(p);
  }
  std::sort(paths.begin(), paths.end());
  std::vector<ModelEntry> out;
  for (const auto& p : paths) {
    auto e = entry_for_file(p);
    if (!e.is_ok()) {
      std::fprintf(stderr, "strata serve: warning: skipping %s: %s\n", p.c_str(), e.status().message().c_str());
      continue;
    }
    out.push_back(std::move(e.value()));
  }
  if (out.empty()) return not_found("--models-dir: no readable .gguf model in '" + dir + "'");
  return out;
}

const ModelEntry* ModelHost::find(const std::string& id) const {
  for (const auto& e : models_) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

Status ModelHost::load_locked_out(const ModelEntry& e) {
  auto r = Engine::load(e.id, e.path, opt_, metrics_);
  std::lock_guard lk(mu_);
  loading_.clear();
  if (!r.is_ok()) return r.status();
  current_ = std::shared_ptr<Engine>(std::move(r.value()));
  return Status::ok();
}

Status ModelHost::load(const std::string& id) {
  const ModelEntry* e = find(id);
  if (!e) return not_found("model '" + id + "' is not among the served models");
  {
    std::lock_guard lk(mu_);
    loading_ = id;
  }
  return load_locked_out(*e);
}

bool ModelHost::ready() const {
  std::lock_guard lk(mu_);
  return current_ != nullptr && loading_.empty();
}

std::string ModelHost::loading() const {
  std::lock_guard lk(mu_);
  return loading_;
}

std::shared_ptr<Engine> ModelHost::current() const {
  std::lock_guard lk(mu_);
  return current_;
}

void ModelHost::shutdown() {
  std::shared_ptr<Engine> e;
  {
    std::lock_guard lk(mu_);
    e = std::move(current_);
  }
  if (e) e->scheduler().stop();
}

ModelHost::Acquired ModelHost::acquire(const std::string& id) {
  Acquired a;
  const ModelEntry* entry = find(id);
  if (!entry) {
    std::string ids;
    for (const auto& e : models_) ids += (ids.empty() ? "" : ", ") + e.id;
    a.error = invalid_request("model", "The model '" + id + "' does not exist; this server has: " + ids,
                              "model_not_found");
    a.error.status = 404;
    return a;
  }
  std::shared_ptr<Engine> old;
  {
    std::lock_guard lk(mu_);
    if (!loading_.empty()) {
      a.error = {503, "unavailable_error", "loading model '" + loading_ + "'; try again shortly", "", "model_loading"};
      a.retry_after_s = 5;
      return a;
    }
    if (current_ && current_->id() == id) {
      a.engine = current_;
      return a;
    }
    // Switching: the current model must be idle (no request holds it).
    if (current_ && (current_.use_count() > 1 || !current_->scheduler().idle())) {
      a.error = {503, "unavailable_error",
                 "model '" + current_->id() + "' is serving requests; '" + id + "' is loaded once it is idle", "",
                 "model_busy"};
      a.retry_after_s = 2;
      return a;
    }
    // Fit: the new model's weights against the memory available once the
    // current one is unloaded (its mapped pages become reclaimable).
    const uint64_t avail = available_memory_bytes();
    const uint64_t freed = current_ ? current_->weight_bytes() : 0;
    const uint64_t need = entry->bytes + entry->bytes / 10;
    if (avail > 0 && need > avail + freed) {
      a.error = {409, "invalid_request_error",
                 "model '" + id + "' does not fit: it needs about " + format_bytes(need) + ", " + format_bytes(avail + freed) +
                     " of memory would be available",
                 "model", "model_does_not_fit"};
      return a;
    }
    // The planner's verdict for the same workload, before anything is unloaded.
    if (opt_.hardware) {
      SchedulerOptions so = opt_.sched;
      if (so.n_ctx == 0) so.n_ctx = 512;  // the smallest default the load may shrink to
      auto desc = model_desc_from_gguf(entry->path);
      if (desc.is_ok()) {
        desc.value().name = id;
        auto plan = plan_for_serving(desc.value(), opt_.model.kv_type, *opt_.hardware, &so, false);
        if (!plan.is_ok()) {
          a.error = {409, "invalid_request_error", "model '" + id + "': " + plan.status().message(), "model",
                     "model_does_not_fit"};
          return a;
        }
      }
    }
    loading_ = id;
    old = std::move(current_);
  }
  old.reset();  // unload before loading the next one
  if (Status st = load_locked_out(*entry); !st.is_ok()) {
    if (st.code() == StatusCode::kOutOfMemory) {
      a.error = {409, "invalid_request_error", "model '" + id + "': " + st.message(), "model", "model_does_not_fit"};
      return a;
    }
    a.error = {500, "server_error", "loading model '" + id + "' failed: " + st.message(), "", "model_load_failed"};
    return a;
  }
  a.engine = current();
  return a;
}

}  // namespace strata::serve
