// Calibration probes and the profile cache. Each probe runs timed passes until
// its time budget is spent (at least min_runs), on threads pinned to the cores
// that will do the work in strata, over buffers bound to the NUMA node whose
// memory is being measured; the figure is the median with min/max as range.
#include "offload/calibrate.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "offload/hardware_detect.h"
#include "offload/hardware_file.h"
#include "offload/topology.h"

#ifdef STRATA_HAVE_QGEMM
#include "cpu_kernels/dnnl_gemm.h"
#include "cpu_kernels/gemm_choice.h"
#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/qgemm_packed.h"
#include "cpu_kernels/quant_ref.h"
#include "cpu_kernels/read_loops.h"
#include "runtime/base/half.h"
#include "runtime/base/quant_blocks.h"
#endif
#ifdef STRATA_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace strata {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string size_str(uint64_t b) {
  if (b >= kGiB) return fmt("%.1f GiB", static_cast<double>(b) / kGiB);
  return fmt("%.0f MiB", static_cast<double>(b) / kMiB);
}

// Median as the value, min/max as the range.
Figure figure_of(std::vector<double> v, const std::string& source) {
  Figure f;
  if (v.empty()) return f;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  f.value = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  f.lo = v.front();
  f.hi = v.back();
  f.source = source;
  return f;
}

struct Budget {
  double seconds;
  int min_runs;
  int max_runs = 200;
};

Budget budget_of(const CalibrateOptions& o) {
  return {o.seconds_per_probe > 0 ? o.seconds_per_probe : (o.quick ? 0.5 : 2.0), std::max(1, o.min_runs)};
}

void progress(const CalibrateOptions& o, const std::string& line) {
  if (o.progress) {
    std::fprintf(o.progress, "calibrate: %s\n", line.c_str());
    std::fflush(o.progress);
  }
}

// ---- a team of pinned threads running timed passes ------------------------------

struct TeamRun {
  std::vector<double> seconds;  // timed passes
  std::string pin_note;         // "" when every thread was pinned
};

// Runs body(t, pass) on cores.size() threads, thread t pinned to cores[t].
// Passes < n_untimed are setup (first touch, warm-up); later passes are timed
// until the budget is spent and at least min_runs were timed. A pass lasts
// from the first thread starting to the last one finishing, as the threads
// themselves clock it (the coordinating thread may be descheduled on a busy
// machine, so its own clock would be late).
TeamRun run_team(const Topology& topo, const std::vector<int>& cores, int n_untimed, const Budget& budget,
                 const std::function<void(int, int)>& body) {
  TeamRun r;
  const int n = static_cast<int>(cores.size());
  std::barrier sync(n + 1);
  std::atomic<bool> stop{false};
  std::atomic<int> pass_no{0};
  std::vector<Status> pinned(static_cast<size_t>(n));
  std::vector<Clock::time_point> begin(static_cast<size_t>(n)), end(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      pinned[static_cast<size_t>(t)] = topo.bind_this_thread_to_core(cores[static_cast<size_t>(t)]);
      for (;;) {
        sync.arrive_and_wait();
        if (stop.load()) break;
        begin[static_cast<size_t>(t)] = Clock::now();
        body(t, pass_no.load());
        end[static_cast<size_t>(t)] = Clock::now();
        sync.arrive_and_wait();
      }
    });
  }
  const auto start = Clock::now();
  for (int pass = 0;; ++pass) {
    const int timed = pass - n_untimed;
    const double spent = std::chrono::duration<double>(Clock::now() - start).count();
    if (timed >= budget.max_runs || (timed >= budget.min_runs && spent >= budget.seconds)) break;
    pass_no.store(pass);
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    if (pass >= n_untimed) {
      const auto b = *std::min_element(begin.begin(), begin.end());
      const auto e = *std::max_element(end.begin(), end.end());
      r.seconds.push_back(std::chrono::duration<double>(e - b).count());
    }
  }
  stop.store(true);
  sync.arrive_and_wait();
  for (auto& th : threads) th.join();
  for (const Status& s : pinned)
    if (!s.is_ok()) {
      r.pin_note = "threads not pinned: " + s.message();
      break;
    }
  return r;
}

// ---- DRAM read bandwidth ---------------------------------------------------------

uint64_t llc_bytes(const HardwareProfile& p) { return p.cpu.l3_bytes; }

struct ReadResult {
  std::vector<double> gbps;
  std::string how;
};

// Cores of node `reader` read a buffer bound to node `holder`.
Result<ReadResult> read_probe(const Topology& topo, int reader, int holder, uint64_t bytes, const Budget& budget) {
  const std::vector<int>& cores = topo.numa_nodes()[static_cast<size_t>(reader)].cores;
  if (cores.empty()) return unsupported("node " + std::to_string(reader) + " has no cores");
  const int n = static_cast<int>(cores.size());
  bytes = std::max<uint64_t>(bytes / (128ull * n) * (128ull * n), 128ull * n);
  auto* buf = static_cast<uint64_t*>(topo.alloc_on_node(bytes, holder));
  if (!buf) return out_of_memory("read probe: cannot allocate " + size_str(bytes));
  const uint64_t words = bytes / 8, per = words / static_cast<uint64_t>(n);
  // Pass 0 touches, pass 1 warms up, timed pass i runs read loop i % n_loops;
  // the fastest loop's passes are the result.
  const std::vector<ReadLoop> loops = read_loops();
  const int n_loops = static_cast<int>(loops.size());
  Budget per_loop = budget;
  per_loop.min_runs *= n_loops;
  per_loop.max_runs *= n_loops;
  std::atomic<uint64_t> sink{0};
  TeamRun run = run_team(topo, cores, 2, per_loop, [&](int t, int pass) {
    uint64_t* p = buf + per * static_cast<uint64_t>(t);
    if (pass == 0) {
      for (uint64_t i = 0; i < per; ++i) p[i] = i * 0x9E3779B97F4A7C15ull;  // first touch: pages land on `holder`
    } else {
      sink.fetch_add(read_loop_of_pass(loops, pass, 2).sum(p, per), std::memory_order_relaxed);
    }
  });
  topo.free_on_node(buf, bytes);
  std::vector<double> all;
  for (double s : run.seconds) all.push_back(static_cast<double>(bytes) / s / 1e9);
  BestReadLoop best = best_read_loop(all, loops.size());
  ReadResult r;
  r.gbps = std::move(best.gbps);
  r.how = "read probe: " + std::to_string(n) + " threads pinned to node " + std::to_string(reader) + "'s cores, " +
          size_str(bytes) + " buffer bound to node " + std::to_string(holder) + ", " + std::to_string(r.gbps.size()) +
          " runs of the fastest of " + std::to_string(n_loops) + " read loops (" + loops[best.loop].name + ")" +
          (run.pin_note.empty() ? "" : "; " + run.pin_note);
  return r;
}

void probe_dram(HardwareProfile& p, const Topology& topo, const CalibrateOptions& o) {
  const Budget budget = budget_of(o);
  const std::string when = now_utc();
  for (size_t i = 0; i < p.numa.size() && i < topo.numa_nodes().size(); ++i) {
    uint64_t bytes = o.dram_bytes;
    if (bytes == 0) {
      bytes = o.quick ? std::max(2 * llc_bytes(p), 256 * kMiB) : std::max(4 * llc_bytes(p), kGiB);
      const uint64_t node_mem = topo.numa_nodes()[i].memory_bytes;
      if (node_mem > 0) bytes = std::min(bytes, node_mem / 4);
    }
    auto r = read_probe(topo, static_cast<int>(i), static_cast<int>(i), bytes, budget);
    if (!r.is_ok()) {
      p.assumptions.push_back("DRAM probe of node " + std::to_string(i) + " did not run: " + r.status().message());
      continue;
    }
    p.numa[i].read_gbps = figure_of(r->gbps, "measured " + when + " (" + r->how + ")");
    const Figure& f = p.numa[i].read_gbps;
    progress(o, "DRAM node " + std::to_string(i) + ": " + fmt("%.1f", f.value) + " GB/s (" + fmt("%.1f", f.lo) + "-" +
                    fmt("%.1f", f.hi) + ")");
  }
  const int n_nodes = static_cast<int>(topo.numa_nodes().size());
  if (n_nodes < 2) return;
  // Each node's cores read the next node's memory: every node is a reader and a holder once.
  std::vector<double> all;
  std::string how;
  for (int a = 0; a < n_nodes; ++a) {
    const int b = (a + 1) % n_nodes;
    uint64_t bytes = o.dram_bytes ? o.dram_bytes : (o.quick ? std::max(2 * llc_bytes(p), 256 * kMiB) : kGiB);
    auto r = read_probe(topo, a, b, bytes, budget);
    if (!r.is_ok()) continue;
    all.insert(all.end(), r->gbps.begin(), r->gbps.end());
    if (how.empty()) how = r->how;
  }
  if (all.empty()) return;
  p.cross_numa_gbps = figure_of(all, "measured " + when + " (each node's cores reading the next node's memory; " +
                                         how + ")");
  progress(o, "DRAM across nodes: " + fmt("%.1f", p.cross_numa_gbps.value) + " GB/s (" +
                  fmt("%.1f", p.cross_numa_gbps.lo) + "-" + fmt("%.1f", p.cross_numa_gbps.hi) + ")");
}

// ---- pinned host -> device ---------------------------------------------------------

#ifdef STRATA_HAVE_CUDA
Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::ok();
  return io_error(std::string(what) + ": " + cudaGetErrorString(e));
}

Result<std::vector<double>> h2d_probe(int dev, const Topology& topo, int numa, uint64_t bytes, const Budget& budget) {
  STRATA_RETURN_IF_ERROR(cuda_status(cudaSetDevice(dev), "cudaSetDevice"));
  void* host = topo.alloc_on_node(bytes, numa);
  if (!host) return out_of_memory("h2d probe: cannot allocate " + size_str(bytes));
  std::memset(host, 1, bytes);
  std::vector<double> gbps;
  void* d = nullptr;
  cudaStream_t s = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  Status st = cuda_status(cudaHostRegister(host, bytes, cudaHostRegisterDefault), "cudaHostRegister");
  if (st.is_ok()) st = cuda_status(cudaMalloc(&d, bytes), "cudaMalloc");
  if (st.is_ok()) st = cuda_status(cudaStreamCreate(&s), "cudaStreamCreate");
  if (st.is_ok()) st = cuda_status(cudaEventCreate(&e0), "cudaEventCreate");
  if (st.is_ok()) st = cuda_status(cudaEventCreate(&e1), "cudaEventCreate");
  const auto start = Clock::now();
  for (int pass = 0; st.is_ok(); ++pass) {
    const int timed = pass - 1;
    if (timed >= budget.max_runs ||
        (timed >= budget.min_runs && std::chrono::duration<double>(Clock::now() - start).count() >= budget.seconds))
      break;
    cudaEventRecord(e0, s);
    cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, s);
    cudaEventRecord(e1, s);
    st = cuda_status(cudaEventSynchronize(e1), "host->device copy");
    float ms = 0;
    if (st.is_ok()) st = cuda_status(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
    if (st.is_ok() && pass > 0 && ms > 0) gbps.push_back(static_cast<double>(bytes) / (ms * 1e-3) / 1e9);
  }
  if (e0) cudaEventDestroy(e0);
  if (e1) cudaEventDestroy(e1);
  if (s) cudaStreamDestroy(s);
  if (d) cudaFree(d);
  cudaHostUnregister(host);
  topo.free_on_node(host, bytes);
  if (!st.is_ok()) return st;
  return gbps;
}
#endif

void probe_gpus(HardwareProfile& p, const Topology& topo, const CalibrateOptions& o) {
  if (p.gpus.empty()) return;
#ifdef STRATA_HAVE_CUDA
  const std::string when = now_utc();
  const uint64_t bytes = o.quick ? 64 * kMiB : 256 * kMiB;
  for (size_t i = 0; i < p.gpus.size(); ++i) {
    GpuSpec& g = p.gpus[i];
    auto r = h2d_probe(static_cast<int>(i), topo, g.numa, bytes, budget_of(o));
    if (!r.is_ok() || r->empty()) {
      p.assumptions.push_back("host->device probe of GPU " + std::to_string(i) + " failed: " + r.status().message());
      continue;
    }
    g.h2d_gbps = figure_of(*r, "measured " + when + " (pinned host->device cudaMemcpyAsync, " + size_str(bytes) +
                                   ", host buffer on node " + std::to_string(g.numa) + ", " +
                                   std::to_string(r->size()) + " runs)");
    progress(o, "GPU " + std::to_string(i) + " host->device: " + fmt("%.1f", g.h2d_gbps.value) + " GB/s (" +
                    fmt("%.1f", g.h2d_gbps.lo) + "-" + fmt("%.1f", g.h2d_gbps.hi) + ")");
  }
#else
  (void)topo;
  (void)o;
  p.assumptions.push_back("host->device bandwidth not measured: this build has no CUDA support");
#endif
}

// ---- storage: sequential and random reads with io_uring ----------------------------------

struct StorageTarget {
  std::string file;
  bool temporary = false;
  std::string what;  // for sources: which file and why
};

// 8 MiB chunks of xorshift bytes (not zeros: some devices compress them).
Status write_probe_file(const std::string& path, int fd, uint64_t bytes) {
  std::vector<uint64_t> chunk(kMiB);
  uint64_t x = 0x243F6A8885A308D3ull;
  for (uint64_t done = 0; done < bytes;) {
    for (uint64_t& w : chunk) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      w = x;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size() * 8, bytes - done));
    const ssize_t wr = ::write(fd, chunk.data(), n);
    if (wr != static_cast<ssize_t>(n)) return io_error(path + ": writing the probe file failed (" + std::strerror(errno) + ")");
    done += n;
  }
  if (::fsync(fd) != 0) return io_error(path + ": fsync failed (" + std::strerror(errno) + ")");
  return Status::ok();
}

Result<StorageTarget> storage_target(const CalibrateOptions& o, const std::string& default_dir, uint64_t bytes) {
  StorageTarget t;
  const std::string where = o.storage_path.empty() ? default_dir : o.storage_path;
  std::error_code ec;
  if (fs::is_regular_file(where, ec)) {
    const uint64_t size = fs::file_size(where, ec);
    if (ec || size < 16 * kMiB)
      return invalid_argument(where + ": expected a file of at least 16 MiB to read, got " + size_str(size));
    t.file = where;
    t.what = "reading " + where + " (" + size_str(size) + ", named by the user)";
    return t;
  }
  if (!fs::is_directory(where, ec)) {
    fs::create_directories(where, ec);
    if (ec) return not_found(where + ": expected a file or a directory for the storage probe (" + ec.message() + ")");
  }
  std::string tmpl = (fs::path(where) / "strata-probe-XXXXXX").string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return io_error(where + ": cannot create a temporary probe file (" + std::strerror(errno) + ")");
  Status st = write_probe_file(tmpl, fd, bytes);
  ::close(fd);
  if (!st.is_ok()) {
    ::unlink(tmpl.c_str());
    return st;
  }
  t.file = tmpl;
  t.temporary = true;
  t.what = "temporary " + size_str(bytes) + " file in " + where;
  return t;
}

struct IoResult {
  std::vector<double> seq_gbps, rand_gbps;
  bool direct = true;
  bool uring = true;
  uint64_t block = 0;
  unsigned depth = 0;
};

// One pass over `offsets` with up to `depth` reads of `block` bytes in flight.
Status uring_pass(io_uring& ring, int fd, const std::vector<uint64_t>& offsets, uint64_t block, unsigned depth,
                  std::vector<void*>& bufs) {
  size_t next = 0, done = 0;
  unsigned in_flight = 0;
  std::vector<unsigned> free_slots;
  for (unsigned i = 0; i < depth; ++i) free_slots.push_back(i);
  while (done < offsets.size()) {
    while (in_flight < depth && next < offsets.size()) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      if (!sqe) break;
      const unsigned slot = free_slots.back();
      free_slots.pop_back();
      io_uring_prep_read(sqe, fd, bufs[slot], static_cast<unsigned>(block), offsets[next++]);
      io_uring_sqe_set_data(sqe, reinterpret_cast<void*>(static_cast<uintptr_t>(slot)));
      ++in_flight;
    }
    const int sub = io_uring_submit(&ring);
    if (sub < 0) return io_error(std::string("io_uring_submit: ") + std::strerror(-sub));
    io_uring_cqe* cqe = nullptr;
    const int w = io_uring_wait_cqe(&ring, &cqe);
    if (w < 0) return io_error(std::string("io_uring_wait_cqe: ") + std::strerror(-w));
    do {
      const int res = cqe->res;
      const unsigned slot = static_cast<unsigned>(reinterpret_cast<uintptr_t>(io_uring_cqe_get_data(cqe)));
      io_uring_cqe_seen(&ring, cqe);
      if (res < 0) return io_error(std::string("read: ") + std::strerror(-res));
      if (static_cast<uint64_t>(res) != block) return io_error("short read of " + std::to_string(res) + " bytes");
      free_slots.push_back(slot);
      --in_flight;
      ++done;
    } while (io_uring_peek_cqe(&ring, &cqe) == 0);
  }
  return Status::ok();
}

// Synchronous fallback when io_uring is unavailable (seccomp, old kernel).
Status pread_pass(int fd, const std::vector<uint64_t>& offsets, uint64_t block, void* buf) {
  for (uint64_t off : offsets) {
    const ssize_t r = ::pread(fd, buf, block, static_cast<off_t>(off));
    if (r != static_cast<ssize_t>(block)) return io_error(std::string("pread: ") + (r < 0 ? std::strerror(errno) : "short read"));
  }
  return Status::ok();
}

Result<IoResult> io_probe(const std::string& file, const CalibrateOptions& o, const Budget& budget) {
  IoResult r;
  int fd = ::open(file.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0 && errno == EINVAL) {
    r.direct = false;
    fd = ::open(file.c_str(), O_RDONLY);
  }
  if (fd < 0) return io_error(file + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  ::fstat(fd, &st);
  r.block = o.quick ? 2 * kMiB : 4 * kMiB;
  const uint64_t n_blocks = static_cast<uint64_t>(st.st_size) / r.block;
  if (n_blocks < 4) {
    ::close(fd);
    return invalid_argument(file + ": too small for the storage probe");
  }
  r.depth = static_cast<unsigned>(std::min<uint64_t>(o.quick ? 16 : 32, n_blocks));
  std::vector<void*> bufs(r.depth);
  for (void*& b : bufs) b = std::aligned_alloc(4096, r.block);
  io_uring ring{};
  const int init = io_uring_queue_init(r.depth, &ring, 0);
  r.uring = init == 0;

  std::vector<uint64_t> seq(n_blocks), rnd(n_blocks);
  for (uint64_t i = 0; i < n_blocks; ++i) seq[i] = i * r.block;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (uint64_t& off : rnd) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    off = (x % n_blocks) * r.block;
  }
  Status status;
  for (int kind = 0; kind < 2 && status.is_ok(); ++kind) {
    const std::vector<uint64_t>& offsets = kind == 0 ? seq : rnd;
    std::vector<double>& out = kind == 0 ? r.seq_gbps : r.rand_gbps;
    const auto start = Clock::now();
    for (int pass = 0; status.is_ok(); ++pass) {
      const int timed = static_cast<int>(out.size());
      if (timed >= budget.max_runs ||
          (timed >= budget.min_runs && std::chrono::duration<double>(Clock::now() - start).count() >= budget.seconds))
        break;
      // Buffered reads would be served from the page cache: drop the file's pages first.
      if (!r.direct) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      const auto t0 = Clock::now();
      status = r.uring ? uring_pass(ring, fd, offsets, r.block, r.depth, bufs) : pread_pass(fd, offsets, r.block, bufs[0]);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (status.is_ok()) out.push_back(static_cast<double>(offsets.size() * r.block) / s / 1e9);
    }
  }
  if (r.uring) io_uring_queue_exit(&ring);
  for (void* b : bufs) std::free(b);
  ::close(fd);
  if (!status.is_ok()) return Status(status.code(), file + ": " + status.message());
  return r;
}

// The block device holding `file`: "/dev/vda" for a partition or disk of vda.
std::string device_of(const std::string& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return "";
  const std::string sys = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  std::error_code ec;
  const fs::path real = fs::canonical(sys, ec);
  if (ec) return "";
  const bool partition = fs::exists(real / "partition", ec);
  return "/dev/" + (partition ? real.parent_path().filename().string() : real.filename().string());
}

void probe_storage(HardwareProfile& p, const CalibrateOptions& o, const std::string& default_dir) {
  const uint64_t bytes = o.storage_bytes ? o.storage_bytes : (o.quick ? 256 * kMiB : kGiB);
  auto target = storage_target(o, default_dir, bytes);
  if (!target.is_ok()) {
    p.assumptions.push_back("storage probe did not run: " + target.status().message());
    return;
  }
  auto r = io_probe(target->file, o, budget_of(o));
  const std::string dev = device_of(target->file);
  if (target->temporary) ::unlink(target->file.c_str());
  if (!r.is_ok()) {
    p.assumptions.push_back("storage probe failed: " + r.status().message());
    return;
  }
  StorageSpec* s = nullptr;
  for (StorageSpec& x : p.storage)
    if (!dev.empty() && x.path == dev) s = &x;
  if (!s) {
    StorageSpec added;
    added.name = "filesystem of " + target->file + (dev.empty() ? "" : " (" + dev + ")");
    added.path = dev;
    p.storage.push_back(added);
    s = &p.storage.back();
  }
  const std::string how = std::string(r->uring ? "io_uring" : "pread (io_uring unavailable)") + ", " +
                          (r->direct ? "O_DIRECT" : "buffered: O_DIRECT unsupported on this filesystem, page cache "
                                                    "dropped before each run, figure may include cached reads") +
                          ", " + size_str(r->block) + " blocks, queue depth " +
                          std::to_string(r->uring ? r->depth : 1) + ", " + target->what;
  const std::string when = now_utc();
  s->seq_read_gbps = figure_of(r->seq_gbps, "measured " + when + " (sequential read, " + how + ", " +
                                                std::to_string(r->seq_gbps.size()) + " runs)");
  s->rand_read_gbps = figure_of(r->rand_gbps, "measured " + when + " (random reads, " + how + ", " +
                                                  std::to_string(r->rand_gbps.size()) + " runs)");
  if (!r->direct) p.assumptions.push_back("storage probe ran buffered (O_DIRECT unsupported on " + target->what + ")");
  progress(o, "storage " + (dev.empty() ? target->file : dev) + ": sequential " + fmt("%.2f", s->seq_read_gbps.value) +
                  " GB/s, random " + fmt("%.2f", s->rand_read_gbps.value) + " GB/s (" + target->what + ")");
}

// ---- CPU kernels ---------------------------------------------------------------

#ifdef STRATA_HAVE_QGEMM
constexpr int64_t kProbeNIn = 4096;

// The kernel kernel_probe times for `type` on this build and CPU, as its
// figures name it: the layout, the variant, and the kernels' revision.
std::string probed_kernel(DType type) {
  const bool packed = qgemm_repacks(type, kProbeNIn, kPackRows);
  return std::string(packed ? "qgemm_packed_rows " : "qgemm_rows ") + std::string(qgemm_variant_name(active_cpu_isa())) +
         " r" + std::to_string(kQgemmRevision);
}

// The weight row a kernel probe multiplies: x quantized where this build has
// a quantizer for the type; else (IQ4_XS) random quants and scales under a
// block scale of 1/64: the kernels' speed does not depend on the values, only
// on their being finite.
Status probe_row(DType type, const std::vector<float>& x, uint64_t seed, std::vector<uint8_t>& row) {
  if (can_quantize(type)) return quantize_row_ref(type, x.data(), row.data(), int64_t(x.size()));
  if (type != DType::kIQ4_XS) return unsupported("no quantizer for " + std::string(dtype_name(type)));
  for (uint8_t& b : row) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    b = static_cast<uint8_t>(seed >> 24);
  }
  const uint16_t d = f32_to_f16(1.0f / 64);
  for (size_t off = 0; off + sizeof(BlockIQ4_XS) <= row.size(); off += sizeof(BlockIQ4_XS)) {
    std::memcpy(row.data() + off + offsetof(BlockIQ4_XS, d), &d, sizeof d);
  }
  return Status::ok();
}

// Decode-shaped (1 activation row) products over weights larger than the LLC,
// every core working on the rows held by its own node; and a 512-row product
// on a cache-sized matrix for prefill throughput.
Status kernel_probe(HardwareProfile& p, const Topology& topo, DType type, const CalibrateOptions& o) {
  constexpr int64_t kNIn = kProbeNIn;
  const auto row_bytes_opt = dtype_row_bytes(type, kNIn);
  if (!row_bytes_opt) return unsupported("no row size");
  const uint64_t row_bytes = *row_bytes_opt;
  std::vector<float> x(kNIn);
  uint64_t seed = 0x853C49E6748FEA9Bull;
  for (float& v : x) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    v = static_cast<float>(static_cast<int64_t>(seed % 2001) - 1000) / 1000.0f;
  }
  std::vector<uint8_t> row(row_bytes);
  STRATA_RETURN_IF_ERROR(probe_row(type, x, seed, row));
  // The layout the runtime computes on: repacked 16-row groups where this
  // CPU path has a packed kernel for the type (qgemm_packed.h), else rows as
  // the file has them. Weights are laid out in units of one or the other;
  // rates count the file's bytes (what the planner's byte counts are in).
  const bool packed = qgemm_repacks(type, kNIn, kPackRows);
  const int64_t unit_rows = packed ? kPackRows : 1;
  const uint64_t unit_bytes = packed ? qgemm_packed_bytes(type, kNIn, kPackRows) : row_bytes;
  const uint64_t unit_file_bytes = uint64_t(unit_rows) * row_bytes;
  std::vector<uint8_t> unit(unit_bytes);
  if (packed) {
    std::vector<uint8_t> rows16(unit_file_bytes);
    for (int64_t r = 0; r < kPackRows; ++r) std::memcpy(rows16.data() + r * row_bytes, row.data(), row_bytes);
    qgemm_pack(type, rows16.data(), kNIn, 0, kPackRows, unit.data());
  } else {
    unit = row;
  }
  auto product = [&](const uint8_t* w, int64_t u_begin, int64_t u_end, const ActPack& a, float* y, int64_t n_units) {
    if (packed) {
      qgemm_packed_rows(type, w, kNIn, u_begin * unit_rows, u_end * unit_rows, a, y, n_units * unit_rows);
    } else {
      qgemm_rows(type, w, kNIn, u_begin, u_end, a, y, n_units);
    }
  };

  std::vector<int> cores, core_node;
  for (const TopoNuma& n : topo.numa_nodes())
    for (int c : n.cores) cores.push_back(c), core_node.push_back(n.index);
  const int n_threads = static_cast<int>(cores.size());
  const int n_nodes = static_cast<int>(topo.numa_nodes().size());
  uint64_t total = o.kernel_bytes ? o.kernel_bytes
                                  : (o.quick ? std::max(llc_bytes(p), 128 * kMiB) : std::max(2 * llc_bytes(p), 512 * kMiB));
  // Per node: a matrix of units bound to it, split among its cores.
  std::vector<uint8_t*> w(static_cast<size_t>(n_nodes), nullptr);
  std::vector<int64_t> units(static_cast<size_t>(n_nodes), 0);
  std::vector<std::vector<float>> y(static_cast<size_t>(n_nodes));
  auto free_weights = [&] {
    for (int i = 0; i < n_nodes; ++i)
      if (w[i]) topo.free_on_node(w[i], units[i] * unit_bytes), w[i] = nullptr;
  };
  uint64_t bytes_all = 0;
  for (int i = 0; i < n_nodes; ++i) {
    const size_t nc = topo.numa_nodes()[static_cast<size_t>(i)].cores.size();
    if (nc == 0) continue;
    units[i] = static_cast<int64_t>(total * nc / cores.size() / unit_file_bytes);
    units[i] = std::max<int64_t>(units[i], static_cast<int64_t>(nc));
    w[i] = static_cast<uint8_t*>(topo.alloc_on_node(units[i] * unit_bytes, i));
    if (!w[i]) {
      free_weights();
      return out_of_memory("kernel probe: cannot allocate " + size_str(units[i] * unit_bytes) + " of weights");
    }
    y[i].resize(static_cast<size_t>(units[i] * unit_rows));
    bytes_all += units[i] * unit_file_bytes;
  }
  ActPack pack1;
  act_pack_prepare(pack1, type, kNIn, 1);
  act_pack_rows(pack1, x.data(), kNIn, 0, 1);
  // Rank of each thread within its node, for its share of the node's rows.
  std::vector<int> rank(static_cast<size_t>(n_threads)), node_threads(static_cast<size_t>(n_nodes), 0);
  for (int t = 0; t < n_threads; ++t) rank[t] = node_threads[core_node[t]]++;
  TeamRun dec = run_team(topo, cores, 2, budget_of(o), [&](int t, int pass) {
    const int node = core_node[t];
    const int64_t n = units[node], k = node_threads[node];
    const int64_t b = n * rank[t] / k, e = n * (rank[t] + 1) / k;
    if (pass == 0) {
      for (int64_t u = b; u < e; ++u) std::memcpy(w[node] + u * unit_bytes, unit.data(), unit_bytes);
      return;
    }
    product(w[node], b, e, pack1, y[node].data(), n);
  });
  free_weights();

  // Prefill: 512 activation rows against 64 output rows per thread (compute bound).
  constexpr int64_t kRows = 512;
  const int64_t n_out = 64 * static_cast<int64_t>(n_threads), n_out_units = n_out / unit_rows;
  std::vector<uint8_t> wp(static_cast<size_t>(n_out_units) * unit_bytes);
  for (int64_t u = 0; u < n_out_units; ++u) std::memcpy(wp.data() + u * unit_bytes, unit.data(), unit_bytes);
  std::vector<float> xs(static_cast<size_t>(kRows * kNIn));
  for (int64_t r = 0; r < kRows; ++r) std::memcpy(xs.data() + r * kNIn, x.data(), kNIn * sizeof(float));
  ActPack pack;
  act_pack_prepare(pack, type, kNIn, kRows);
  act_pack_rows(pack, xs.data(), kNIn, 0, kRows);
  std::vector<float> yp(static_cast<size_t>(kRows * n_out));
  Budget pb = budget_of(o);
  pb.seconds /= 2;
  // The kernel the runtime would run a 512-row batch on (gemm_choice.h):
  // qgemm, or oneDNN on dequantized tiles; packed weights stay on qgemm.
  const GemmPath path = packed ? GemmPath::kNative : choose_gemm_path(type, wp.data(), kNIn, n_out, kRows);
  DnnlActs acts;
  if (path != GemmPath::kNative) {
    acts.prepare(dnnl_precision_of(path), xs.data(), kNIn, kNIn, kRows);
  }
  std::atomic<bool> dnnl_failed{false};
  TeamRun pre = run_team(topo, cores, 1, pb, [&](int t, int) {
    if (path == GemmPath::kNative) {
      product(wp.data(), 64 * t / unit_rows, 64 * (t + 1) / unit_rows, pack, yp.data(), n_out_units);
    } else if (!dnnl_gemm_rows(type, wp.data(), kNIn, 64 * t, 64 * (t + 1), acts, yp.data(), n_out).is_ok()) {
      dnnl_failed = true;
    }
  });
  if (dnnl_failed) return internal_error("kernel probe: oneDNN failed on the " + std::string(dtype_name(type)) + " prefill product");

  const std::string when = now_utc();
  const std::string qgemm_kernel = probed_kernel(type);
  const std::string prefill_kernel = path == GemmPath::kNative
                                         ? qgemm_kernel
                                         : std::string(gemm_path_name(path)) + " (" + dnnl_cpu_isa() + ")";
  KernelRate k;
  k.type = type;
  std::vector<double> gbps, gops;
  for (double s : dec.seconds) gbps.push_back(static_cast<double>(bytes_all) / s / 1e9);
  for (double s : pre.seconds) gops.push_back(2.0 * kRows * kNIn * static_cast<double>(n_out) / s / 1e9);
  const std::string pin = dec.pin_note.empty() ? "" : "; " + dec.pin_note;
  k.decode_gbps = figure_of(gbps, "measured " + when + " (" + qgemm_kernel + ", 1 row x " +
                                      std::to_string(kNIn) + " inputs, " + size_str(bytes_all) + " of " +
                                      std::string(dtype_name(type)) + " weights bound per node, " +
                                      std::to_string(n_threads) + " pinned threads, " + std::to_string(gbps.size()) +
                                      " runs" + pin + ")");
  k.prefill_gops = figure_of(gops, "measured " + when + " (" + prefill_kernel + ", 512 rows x " +
                                       std::to_string(kNIn) + " inputs x " + std::to_string(n_out) + " outputs, " +
                                       std::to_string(n_threads) + " threads, " + std::to_string(gops.size()) + " runs)");
  p.cpu_kernels.erase(std::remove_if(p.cpu_kernels.begin(), p.cpu_kernels.end(),
                                     [&](const KernelRate& r) { return r.type == type; }),
                      p.cpu_kernels.end());
  p.cpu_kernels.push_back(k);
  progress(o, "CPU kernel " + std::string(dtype_name(type)) + " (" + qgemm_kernel + "): decode " +
                  fmt("%.1f", k.decode_gbps.value) + " GB/s of weights, prefill " + fmt("%.1f", k.prefill_gops.value) +
                  " GOP/s (" + prefill_kernel + ")");
  return Status::ok();
}
#endif

// Whether a cached rate for `k`'s type was measured on the kernel this build
// would time (same layout, variant and revision); if not, it is stale.
bool rate_is_current(const KernelRate& k) {
#ifdef STRATA_HAVE_QGEMM
  return k.decode_gbps.source.find("(" + probed_kernel(k.type) + ",") != std::string::npos;
#else
  (void)k;
  return true;
#endif
}

// Whether this build's kernel probe can measure weights of type t.
bool kernel_probe_supports(DType t) {
#ifdef STRATA_HAVE_QGEMM
  return qgemm_supports(t) && (can_quantize(t) || t == DType::kIQ4_XS);
#else
  (void)t;
  return false;
#endif
}

void probe_kernel_list(HardwareProfile& p, const Topology& topo, const CalibrateOptions& o,
                       const std::vector<DType>& types) {
#ifdef STRATA_HAVE_QGEMM
  for (DType t : types) {
    if (!kernel_probe_supports(t)) continue;
    Status st = kernel_probe(p, topo, t, o);
    if (!st.is_ok())
      p.assumptions.push_back("CPU kernel probe for " + std::string(dtype_name(t)) + " failed: " + st.message());
  }
#else
  (void)topo;
  (void)o;
  (void)types;
  p.assumptions.push_back("CPU kernel rates not measured: this build has no fast CPU kernels (cpu_kernels/qgemm.h)");
#endif
}

// The usual types (quick: the two most common expert types) and the model's.
void probe_kernels(HardwareProfile& p, const Topology& topo, const CalibrateOptions& o) {
  std::vector<DType> types = o.quick ? std::vector<DType>{DType::kQ4_K, DType::kQ8_0}
                                     : std::vector<DType>{DType::kQ4_K, DType::kQ5_K, DType::kQ6_K,
                                                          DType::kQ8_0, DType::kBF16};
  for (DType t : o.kernel_types) {
    if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
  }
  probe_kernel_list(p, topo, o, types);
}

}  // namespace

std::string default_profile_path() {
  if (const char* p = std::getenv("STRATA_PROFILE"); p && *p) return p;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/strata/hardware-profile.json";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/strata/hardware-profile.json";
}

std::string machine_fingerprint(const HardwareProfile& p) {
  std::ostringstream s;
  s << p.cpu.model << " | " << p.cpu.sockets << "x" << p.cpu.cores_per_socket << "x" << p.cpu.threads_per_core << " | "
    << std::llround(static_cast<double>(p.dram_bytes()) / kGiB) << " GiB in " << p.numa.size() << " node(s) | ";
  if (p.gpus.empty()) s << "no GPU";
  for (size_t i = 0; i < p.gpus.size(); ++i)
    s << (i ? ", " : "") << p.gpus[i].name << " " << std::llround(static_cast<double>(p.gpus[i].vram_bytes) / kGiB)
      << " GiB";
  return s.str();
}

Result<HardwareProfile> calibrate(const HardwareProfile& profile, const CalibrateOptions& o) {
  STRATA_ASSIGN_OR_RETURN(Topology topo, Topology::this_machine());
  HardwareProfile p = profile;
  if (p.numa.size() != topo.numa_nodes().size())
    return invalid_argument("calibrate: the profile has " + std::to_string(p.numa.size()) +
                            " NUMA node(s), this machine " + std::to_string(topo.numa_nodes().size()) +
                            ": expected a profile of this machine");
  const auto t0 = Clock::now();
  if (o.probe_dram) probe_dram(p, topo, o);
  if (o.probe_gpu) probe_gpus(p, topo, o);
  if (o.probe_storage) {
    const std::string cache = o.profile_path.empty() ? default_profile_path() : o.profile_path;
    probe_storage(p, o, fs::path(cache).parent_path().string());
  }
  if (o.probe_kernels) probe_kernels(p, topo, o);
  progress(o, "done in " + fmt("%.1f", std::chrono::duration<double>(Clock::now() - t0).count()) + " s");
  return p;
}

Result<HardwareProfile> load_cached_profile(const std::string& path, const std::string& fingerprint) {
  std::ifstream f(path);
  if (!f) return not_found(path + ": no profile cache");
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("machines") || !j["machines"].is_object())
    return invalid_format(path + ": expected a strata profile cache ({\"version\": 1, \"machines\": {...}})");
  const auto& m = j["machines"];
  if (!m.contains(fingerprint)) return not_found(path + ": no measurements for this machine (" + fingerprint + ")");
  return profile_from_json(m[fingerprint].dump(), path + ": machines[\"" + fingerprint + "\"]");
}

Status store_cached_profile(const std::string& path, const HardwareProfile& profile) {
  nlohmann::json j = {{"version", 1}, {"machines", nlohmann::json::object()}};
  {
    std::ifstream f(path);
    if (f) {
      nlohmann::json old = nlohmann::json::parse(f, nullptr, false);
      if (!old.is_discarded() && old.is_object() && old.contains("machines") && old["machines"].is_object())
        j["machines"] = old["machines"];
    }
  }
  j["machines"][machine_fingerprint(profile)] = nlohmann::json::parse(profile_to_json(profile, -1));
  std::error_code ec;
  const fs::path dir = fs::path(path).parent_path();
  if (!dir.empty()) fs::create_directories(dir, ec);
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) return io_error(tmp + ": cannot write the profile cache");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return io_error(path + ": cannot replace the profile cache (" + std::strerror(errno) + ")");
  }
  return Status::ok();
}

Result<HardwareProfile> this_machine_profile(const CalibrateOptions& o) {
  STRATA_ASSIGN_OR_RETURN(HardwareProfile detected, detect_hardware());
  const std::string path = o.profile_path.empty() ? default_profile_path() : o.profile_path;
  const std::string fp = machine_fingerprint(detected);
  if (o.use_cache && !o.recalibrate) {
    auto cached = load_cached_profile(path, fp);
    if (cached.is_ok()) {
      progress(o, "using measurements cached in " + path + " (--recalibrate to measure again)");
      // Kernel rates the cache lacks for the model's types, or has from other
      // kernels (an older build, another layout): measured now, kept.
      std::vector<DType> missing;
      for (DType t : o.kernel_types) {
        const bool have = std::any_of(cached.value().cpu_kernels.begin(), cached.value().cpu_kernels.end(),
                                      [&](const KernelRate& k) { return k.type == t && rate_is_current(k); });
        if (!have && kernel_probe_supports(t)) missing.push_back(t);
      }
      if (missing.empty() || !o.probe_kernels) return cached;
      STRATA_ASSIGN_OR_RETURN(Topology topo, Topology::this_machine());
      HardwareProfile p = std::move(cached).value();
      probe_kernel_list(p, topo, o, missing);
      Status st = store_cached_profile(path, p);
      if (!st.is_ok()) progress(o, "could not save the measurements: " + st.message());
      return p;
    }
    if (cached.status().code() != StatusCode::kNotFound)
      progress(o, "ignoring the profile cache: " + cached.status().message());
  }
  progress(o, "measuring this machine (" + fp + ")" + (o.quick ? ", quick" : ""));
  STRATA_ASSIGN_OR_RETURN(HardwareProfile measured, calibrate(detected, o));
  if (o.use_cache) {
    Status st = store_cached_profile(path, measured);
    if (!st.is_ok()) progress(o, "could not save the measurements: " + st.message());
  }
  return measured;
}

}  // namespace strata
