// How long GgufModel::open takes on a DeepSeek-V3-sized split model, and how
// much memory it keeps: builds a sparse ~400 GB, 8-part model (real tensor
// table and tokenizer arrays, data regions left as holes) and opens it.
//
//   bench_gguf_open [--dir DIR] [--parts N] [--reps N] [--keep] [--json]
//   bench_gguf_open --model PATH [--reps N] [--json]     (an existing model)
//
// Goal: open in < 1 s with < 100 MB peak RSS. Opening parses headers only; the
// tensor data is mmapped, never read, so the holes cost nothing.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/gguf/gguf_reader.h"

namespace strata::gguf {
namespace {

namespace fs = std::filesystem;

constexpr double kGoalOpenSeconds = 1.0;
constexpr double kGoalRssMb = 100.0;

// --- a header-only GGUF serializer -------------------------------------------
// GgufWriter streams every data byte, which is not possible for 400 GB, so the
// benchmark packs header and tensor table itself and makes the data a hole
// with ftruncate. (It is also a second, independent writer the reader must accept.)
class Header {
 public:
  void u16(uint16_t v) { put(&v, 2); }
  void u32(uint32_t v) { put(&v, 4); }
  void i32(int32_t v) { put(&v, 4); }
  void u64(uint64_t v) { put(&v, 8); }
  void f32(float v) { put(&v, 4); }
  void str(const std::string& s) {
    u64(s.size());
    b_ += s;
  }
  void key(const std::string& k, ValueType t) {
    str(k);
    u32(static_cast<uint32_t>(t));
    ++n_kv_;
  }
  void kv_str(const std::string& k, const std::string& v) { key(k, ValueType::kString); str(v); }
  void kv_u32(const std::string& k, uint32_t v) { key(k, ValueType::kU32); u32(v); }
  void kv_u16(const std::string& k, uint16_t v) { key(k, ValueType::kU16); u16(v); }
  void kv_i32(const std::string& k, int32_t v) { key(k, ValueType::kI32); i32(v); }
  void kv_f32(const std::string& k, float v) { key(k, ValueType::kF32); f32(v); }
  void kv_bool(const std::string& k, bool v) { key(k, ValueType::kBool); b_ += static_cast<char>(v ? 1 : 0); }
  void kv_strs(const std::string& k, const std::vector<std::string>& v) {
    key(k, ValueType::kArray);
    u32(static_cast<uint32_t>(ValueType::kString));
    u64(v.size());
    for (const auto& s : v) str(s);
  }
  void kv_i32s(const std::string& k, const std::vector<int32_t>& v) {
    key(k, ValueType::kArray);
    u32(static_cast<uint32_t>(ValueType::kI32));
    u64(v.size());
    put(v.data(), v.size() * 4);
  }
  const std::string& bytes() const { return b_; }
  uint64_t n_kv() const { return n_kv_; }

 private:
  void put(const void* p, size_t n) { b_.append(static_cast<const char*>(p), n); }
  std::string b_;
  uint64_t n_kv_ = 0;
};

struct Tensor {
  std::string name;
  DType type;
  std::vector<uint64_t> ne;
  uint64_t n_bytes = 0;
};

// DeepSeek-V3 (671B) as llama.cpp names its tensors (arch deepseek2): 61 layers,
// the first 3 dense, MLA attention with split k_b/v_b, 256 routed experts stored
// as 3-D tensors plus one shared expert. Types follow a Q4_K_M-like mix.
std::vector<Tensor> deepseek_v3_tensors() {
  const uint64_t n_embd = 7168, n_vocab = 129280, n_ff = 18432, n_ff_exp = 2048, n_expert = 256;
  const uint64_t n_head = 128, q_lora = 1536, kv_lora = 512, rope = 64, nope = 128, v_dim = 128;
  std::vector<Tensor> t;
  auto add = [&](std::string name, DType type, std::vector<uint64_t> ne) {
    uint64_t rows = 1;
    for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
    uint64_t n_bytes = *dtype_row_bytes(type, ne[0]) * rows;
    t.push_back({std::move(name), type, std::move(ne), n_bytes});
  };
  add("token_embd.weight", DType::kQ4_K, {n_embd, n_vocab});
  for (uint64_t il = 0; il < 61; ++il) {
    std::string b = "blk." + std::to_string(il) + ".";
    add(b + "attn_norm.weight", DType::kF32, {n_embd});
    add(b + "attn_q_a_norm.weight", DType::kF32, {q_lora});
    add(b + "attn_kv_a_norm.weight", DType::kF32, {kv_lora});
    add(b + "attn_q_a.weight", DType::kQ4_K, {n_embd, q_lora});
    add(b + "attn_q_b.weight", DType::kQ4_K, {q_lora, n_head * (nope + rope)});
    add(b + "attn_kv_a_mqa.weight", DType::kQ4_K, {n_embd, kv_lora + rope});
    add(b + "attn_k_b.weight", DType::kQ8_0, {nope, kv_lora, n_head});
    add(b + "attn_v_b.weight", DType::kQ8_0, {kv_lora, v_dim, n_head});
    add(b + "attn_output.weight", DType::kQ4_K, {n_head * v_dim, n_embd});
    add(b + "ffn_norm.weight", DType::kF32, {n_embd});
    if (il < 3) {
      add(b + "ffn_gate.weight", DType::kQ4_K, {n_embd, n_ff});
      add(b + "ffn_up.weight", DType::kQ4_K, {n_embd, n_ff});
      add(b + "ffn_down.weight", DType::kQ6_K, {n_ff, n_embd});
      continue;
    }
    add(b + "ffn_gate_inp.weight", DType::kF32, {n_embd, n_expert});
    add(b + "exp_probs_b.bias", DType::kF32, {n_expert});
    add(b + "ffn_gate_exps.weight", DType::kQ4_K, {n_embd, n_ff_exp, n_expert});
    add(b + "ffn_up_exps.weight", DType::kQ4_K, {n_embd, n_ff_exp, n_expert});
    add(b + "ffn_down_exps.weight", il % 2 ? DType::kQ4_K : DType::kQ6_K, {n_ff_exp, n_embd, n_expert});
    add(b + "ffn_gate_shexp.weight", DType::kQ4_K, {n_embd, n_ff_exp});
    add(b + "ffn_up_shexp.weight", DType::kQ4_K, {n_embd, n_ff_exp});
    add(b + "ffn_down_shexp.weight", DType::kQ6_K, {n_ff_exp, n_embd});
  }
  add("output_norm.weight", DType::kF32, {n_embd});
  add("output.weight", DType::kQ6_K, {n_embd, n_vocab});
  return t;
}

// Model metadata as the converter writes it for DeepSeek-V3, including the
// tokenizer arrays that make up most of the first part's header.
void deepseek_v3_metadata(Header& h) {
  h.kv_str("general.architecture", "deepseek2");
  h.kv_str("general.name", "DeepSeek V3 (sparse benchmark model)");
  h.kv_u32("general.file_type", 15);
  h.kv_u32("general.quantization_version", 2);
  h.kv_u32("deepseek2.block_count", 61);
  h.kv_u32("deepseek2.context_length", 163840);
  h.kv_u32("deepseek2.embedding_length", 7168);
  h.kv_u32("deepseek2.feed_forward_length", 18432);
  h.kv_u32("deepseek2.attention.head_count", 128);
  h.kv_u32("deepseek2.attention.head_count_kv", 1);
  h.kv_f32("deepseek2.rope.freq_base", 10000.0f);
  h.kv_f32("deepseek2.attention.layer_norm_rms_epsilon", 1e-6f);
  h.kv_u32("deepseek2.expert_used_count", 8);
  h.kv_u32("deepseek2.leading_dense_block_count", 3);
  h.kv_u32("deepseek2.vocab_size", 129280);
  h.kv_u32("deepseek2.attention.q_lora_rank", 1536);
  h.kv_u32("deepseek2.attention.kv_lora_rank", 512);
  h.kv_u32("deepseek2.attention.key_length", 576);
  h.kv_u32("deepseek2.attention.value_length", 512);
  h.kv_u32("deepseek2.attention.key_length_mla", 192);
  h.kv_u32("deepseek2.attention.value_length_mla", 128);
  h.kv_u32("deepseek2.expert_feed_forward_length", 2048);
  h.kv_u32("deepseek2.expert_count", 256);
  h.kv_u32("deepseek2.expert_shared_count", 1);
  h.kv_f32("deepseek2.expert_weights_scale", 2.5f);
  h.kv_bool("deepseek2.expert_weights_norm", true);
  h.kv_u32("deepseek2.expert_gating_func", 2);
  h.kv_u32("deepseek2.expert_group_count", 8);
  h.kv_u32("deepseek2.expert_group_used_count", 4);
  h.kv_u32("deepseek2.rope.dimension_count", 64);
  h.kv_str("deepseek2.rope.scaling.type", "yarn");
  h.kv_f32("deepseek2.rope.scaling.factor", 40.0f);
  h.kv_u32("deepseek2.rope.scaling.original_context_length", 4096);
  h.kv_f32("deepseek2.rope.scaling.yarn_log_multiplier", 0.1f);
  h.kv_str("tokenizer.ggml.model", "gpt2");
  h.kv_str("tokenizer.ggml.pre", "deepseek-v3");
  // Synthetic vocabulary with realistic string lengths (BPE pieces average ~6-7 bytes).
  const uint32_t n_vocab = 129280, n_merges = 127741;
  std::vector<std::string> tokens(n_vocab), merges(n_merges);
  std::vector<int32_t> types(n_vocab, 1);
  uint32_t x = 12345;
  auto piece = [&x](size_t len) {
    std::string s(len, 'a');
    for (char& c : s) {
      x = x * 1664525u + 1013904223u;
      c = static_cast<char>('a' + (x >> 24) % 26);
    }
    return s;
  };
  for (uint32_t i = 0; i < n_vocab; ++i) tokens[i] = "\xc4\xa0" + piece(2 + i % 9);
  for (uint32_t i = 0; i < n_merges; ++i) merges[i] = piece(1 + i % 5) + " " + piece(1 + i % 6);
  for (uint32_t i = 0; i < 800; ++i) types[i] = 3;
  h.kv_strs("tokenizer.ggml.tokens", tokens);
  h.kv_i32s("tokenizer.ggml.token_type", types);
  h.kv_strs("tokenizer.ggml.merges", merges);
  h.kv_u32("tokenizer.ggml.bos_token_id", 0);
  h.kv_u32("tokenizer.ggml.eos_token_id", 1);
  h.kv_u32("tokenizer.ggml.padding_token_id", 1);
  h.kv_bool("tokenizer.ggml.add_bos_token", true);
  h.kv_bool("tokenizer.ggml.add_eos_token", false);
  h.kv_str("tokenizer.chat_template", std::string(3000, '{'));  // size of the real template
}

struct Created {
  std::vector<std::string> paths;
  uint64_t n_tensors = 0;
  uint64_t logical_bytes = 0;
  uint64_t header_bytes = 0;
};

// Writes an n_parts split model as llama.cpp's gguf-split lays it out: parts
// cut at tensor boundaries by size, metadata in the first, split.* keys in all.
Result<Created> create_model(const std::string& dir, uint32_t n_parts) {
  std::vector<Tensor> tensors = deepseek_v3_tensors();
  uint64_t total = 0;
  for (const auto& t : tensors) total += t.n_bytes;
  std::vector<std::vector<size_t>> parts(n_parts);
  uint64_t acc = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    size_t p = std::min<size_t>(n_parts - 1, static_cast<size_t>(acc * n_parts / total));
    parts[p].push_back(i);
    acc += tensors[i].n_bytes;
  }
  Created out;
  out.n_tensors = tensors.size();
  const uint32_t align = kDefaultAlignment;
  for (uint32_t p = 0; p < n_parts; ++p) {
    Header h;
    if (p == 0) deepseek_v3_metadata(h);
    h.kv_u16("split.no", static_cast<uint16_t>(p));
    h.kv_u16("split.count", static_cast<uint16_t>(n_parts));
    h.kv_i32("split.tensors.count", static_cast<int32_t>(tensors.size()));
    Header ti;
    uint64_t data = 0;
    for (size_t i : parts[p]) {
      const Tensor& t = tensors[i];
      data = (data + align - 1) / align * align;
      ti.str(t.name);
      ti.u32(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) ti.u64(d);
      ti.u32(static_cast<uint32_t>(t.type));
      ti.u64(data);
      data += t.n_bytes;
    }
    Header head;
    head.u32(kMagic);
    head.u32(3);
    head.u64(parts[p].size());
    head.u64(h.n_kv());
    std::string bytes = head.bytes() + h.bytes() + ti.bytes();
    bytes.resize((bytes.size() + align - 1) / align * align, '\0');
    std::string path = split_path(dir + "/DeepSeek-V3-Q4_K_M", p + 1, n_parts);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return io_error(path + ": cannot create: " + std::strerror(errno));
    bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) &&
              ::ftruncate(fd, static_cast<off_t>(bytes.size() + data)) == 0;  // the data: one hole
    int err = errno;
    ::close(fd);
    if (!ok) return io_error(path + ": cannot write a sparse file of " + std::to_string(bytes.size() + data) +
                             " bytes: " + std::strerror(err));
    out.paths.push_back(path);
    out.logical_bytes += bytes.size() + data;
    out.header_bytes += bytes.size();
  }
  return out;
}

double rss_mb_now() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6;
}

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0 / 1e6;  // ru_maxrss is in KiB on Linux
}

// Drop the parts' pages from the page cache (clean pages only; no root needed).
void evict(const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

int run(int argc, char** argv) {
  std::string dir = fs::temp_directory_path().string(), model;
  uint32_t n_parts = 8;
  int reps = 7;
  bool keep = false, json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_gguf_open: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dir") dir = next();
    else if (a == "--model") model = next();
    else if (a == "--parts") n_parts = static_cast<uint32_t>(std::stoul(next()));
    else if (a == "--reps") reps = std::max(1, std::stoi(next()));
    else if (a == "--keep") keep = true;
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "usage: bench_gguf_open [--dir DIR] [--parts N] [--reps N] [--keep] [--json] [--model PATH]\n");
      return 2;
    }
  }

  std::string work_dir;
  std::vector<std::string> paths;
  uint64_t header_bytes = 0;
  if (model.empty()) {
    if (n_parts < 1 || n_parts > 99) {
      std::fprintf(stderr, "bench_gguf_open: --parts: expected 1..99, got %u\n", n_parts);
      return 2;
    }
    work_dir = dir + "/strata_bench_gguf_" + std::to_string(::getpid());
    fs::create_directories(work_dir);
    // Build the model in a child process, so its tokenizer strings do not count
    // toward this process's peak RSS.
    pid_t pid = ::fork();
    if (pid == 0) {
      auto c = create_model(work_dir, n_parts);
      if (!c.is_ok()) {
        std::fprintf(stderr, "bench_gguf_open: %s\n", c.status().message().c_str());
        ::_exit(1);
      }
      ::_exit(0);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fs::remove_all(work_dir);
      return 1;
    }
    for (uint32_t p = 0; p < n_parts; ++p) paths.push_back(split_path(work_dir + "/DeepSeek-V3-Q4_K_M", p + 1, n_parts));
    model = paths.front();
  }

  double rss_before = rss_mb_now();
  std::vector<double> times;
  uint64_t n_tensors = 0, logical = 0, allocated = 0, tensor_bytes = 0;
  size_t n_parts_opened = 0;
  double rss_open = 0, cold = 0;
  for (int r = -1; r < reps; ++r) {
    if (r == -1) evict(paths.empty() ? std::vector<std::string>{model} : paths);
    auto t0 = std::chrono::steady_clock::now();
    auto m = GgufModel::open(model);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!m.is_ok()) {
      std::fprintf(stderr, "bench_gguf_open: %s\n", m.status().message().c_str());
      if (!keep && !work_dir.empty()) fs::remove_all(work_dir);
      return 1;
    }
    if (r == -1) {
      cold = s;  // page cache dropped for the headers first
      n_tensors = m->tensors().size();
      n_parts_opened = m->parts().size();
      tensor_bytes = m->total_tensor_bytes();
      logical = m->total_file_bytes();
      for (const auto& p : m->parts()) {
        struct stat st {};
        if (::stat(p.path.c_str(), &st) == 0) allocated += static_cast<uint64_t>(st.st_blocks) * 512;
        header_bytes += p.data_offset;
      }
      rss_open = rss_mb_now();
    } else {
      times.push_back(s);
    }
  }
  double peak = std::max(peak_rss_mb(), rss_open);  // ru_maxrss (KiB) and statm (pages) round differently
  std::sort(times.begin(), times.end());
  double t_min = times.front(), t_med = times[times.size() / 2], t_max = times.back();
  bool met = t_med < kGoalOpenSeconds && cold < kGoalOpenSeconds && peak < kGoalRssMb;
  double parse_mb_s = static_cast<double>(header_bytes) / 1e6 / t_med;

  if (json) {
    std::printf(
        "{\"bench\": \"gguf_open\", \"model\": \"%s\", \"parts\": %zu, \"tensors\": %" PRIu64
        ", \"logical_bytes\": %" PRIu64 ", \"allocated_bytes\": %" PRIu64 ", \"tensor_bytes\": %" PRIu64
        ", \"header_bytes\": %" PRIu64 ", \"reps\": %d, \"open_s\": {\"cold\": %.6f, \"min\": %.6f, \"median\": %.6f, "
        "\"max\": %.6f}, \"header_parse_mb_per_s\": %.1f, \"rss_mb\": {\"before\": %.1f, \"with_model\": %.1f, "
        "\"peak\": %.1f}, \"goal\": {\"open_s\": %.1f, \"peak_rss_mb\": %.0f, \"met\": %s}}\n",
        model.c_str(), n_parts_opened, n_tensors, logical, allocated, tensor_bytes, header_bytes, reps, cold, t_min,
        t_med, t_max, parse_mb_s, rss_before, rss_open, peak, kGoalOpenSeconds, kGoalRssMb, met ? "true" : "false");
  } else {
    std::printf("model:        %s\n", model.c_str());
    std::printf("              %zu parts, %" PRIu64 " tensors, %.1f GB of tensors, %.1f GB logical, %.1f MB on disk\n",
                n_parts_opened, n_tensors, tensor_bytes / 1e9, logical / 1e9, allocated / 1e6);
    std::printf("headers:      %.2f MB parsed per open (%.0f MB/s at the median)\n", header_bytes / 1e6, parse_mb_s);
    std::printf("open:         cold %.1f ms; warm min %.1f ms, median %.1f ms, max %.1f ms over %d runs\n", cold * 1e3,
                t_min * 1e3, t_med * 1e3, t_max * 1e3, reps);
    std::printf("memory:       RSS %.1f MB before, %.1f MB with the model open, peak %.1f MB\n", rss_before, rss_open,
                peak);
    std::printf("goal:         open < %.0f s and peak RSS < %.0f MB: %s\n", kGoalOpenSeconds, kGoalRssMb,
                met ? "met" : "NOT met");
  }
  if (!work_dir.empty()) {
    if (keep) std::fprintf(stderr, "bench_gguf_open: kept %s\n", work_dir.c_str());
    else fs::remove_all(work_dir);
  }
  return 0;
}

}  // namespace
}  // namespace strata::gguf

int main(int argc, char** argv) { return strata::gguf::run(argc, argv); }
