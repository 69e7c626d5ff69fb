// qgemm throughput (Google Benchmark; --benchmark_format=json works).
//
//   decode/<type>/<path>/<n_in>x<n_out>/rows:R/threads:T
//     expert-shaped products with R = 1..8 activation rows, cycling over
//     enough distinct weight copies (>= STRATA_BENCH_WEIGHT_GIB, default 1
//     GiB) that every iteration reads its weights from DRAM. Counters: GB/s
//     of weight bytes; probe_GB/s, a DRAM read probe on the same T threads
//     right after the timed loop (AdjacentProbe); pct_probe, the share of
//     it; roofline_GB/s, the lower of that probe and T times the kernel's
//     one-thread compute bound (below), and pct_roofline, the share of it.
//     The start-up probe (all threads, and one) is in the JSON context.
//   peak/<type>/<path>/rows:R
//     the same kernel on one cache-resident matrix (one thread): the compute
//     bound, in the same GB/s-of-weights units, so the roofline of a decode
//     shape is min(read probe, peak).
//   prefill/<type>/<path>/<n_in>x<n_out>/rows:512/threads:T
//     GOP/s (2 ops per multiply-add) and pct_peak, the share of a register-only
//     throughput probe for the instruction the path's kernel is built on
//     (vpdpbusd/vpdpwssd on zmm or, with AVX-VNNI, ymm; vpmaddubsw; FMA; vdpbf16ps) times T.
//   decode|peak|prefill/q4_k/<path>+packed/...
//     the same on weights repacked to the interleaved layout of
//     qgemm_packed.h (GB/s counts the packed bytes, 2.8% more).
//   prefill/<type>/onednn-f32|onednn-bf16/<n_in>x<n_out>/rows:R/threads:T
//     the same product through oneDNN on dequantized tiles (dnnl_gemm.h),
//     the dequantization included, against the FMA (f32) or vdpbf16ps peak;
//     R = 512 and 32 (an expert's share of a 512-token prompt), beside
//     qgemm at the same R, which is what gemm_choice.h decides between.
// Activations are prepared once outside the timed loop (that cost is
// n_rows * n_in, small beside the weights). Thread teams split the output
// range evenly; the real pool belongs to offload/.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cpu_kernels/cpu_isa.h"
#include "cpu_kernels/dnnl_gemm.h"
#include "cpu_kernels/qgemm.h"
#include "cpu_kernels/qgemm_internal.h"
#include "cpu_kernels/qgemm_packed.h"
#include "cpu_kernels/read_loops.h"
#include "runtime/base/half.h"
#include "runtime/base/rng.h"
#include "runtime/eval/bandwidth_probe.h"

namespace strata {
namespace {

double g_probe_gbps = 0;       // all threads
double g_probe_gbps_1t = 0;    // one thread
std::string g_probe_loop;      // the read loop the start-up probe found fastest

int hw_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// ---- a small spinning team: the caller is member 0; workers sleep between
// benchmarks (the team lives for one benchmark run).
class Team {
 public:
  explicit Team(int n) : n_(n) {
    for (int t = 1; t < n; ++t) workers_.emplace_back([this, t] { loop(t); });
  }
  ~Team() {
    stop_ = true;
    gen_.fetch_add(1);
    gen_.notify_all();
    for (auto& w : workers_) w.join();
  }
  int size() const { return n_; }
  void run(const std::function<void(int)>& job) {
    job_ = &job;
    done_.store(0);
    gen_.fetch_add(1, std::memory_order_release);
    gen_.notify_all();
    job(0);
    while (done_.load(std::memory_order_acquire) != n_ - 1) _mm_pause();
  }

 private:
  void loop(int t) {
    uint64_t seen = 0;
    for (;;) {
      int spins = 0;
      while (gen_.load(std::memory_order_acquire) == seen) {
        if (++spins < 200000) {
          _mm_pause();
        } else {
          gen_.wait(seen);
        }
      }
      seen = gen_.load();
      if (stop_) return;
      (*job_)(t);
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }
  int n_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* job_ = nullptr;
};

// ---- the read probe again beside each decode benchmark: on a shared machine
// the bandwidth moves for minutes at a time (a 2-core Zen 5 VM read 43-50 or
// 72-81 GB/s, switching during one run), so a share of the start-up probe
// alone could pass 100% or hide a loss. After the timed loop, the same
// threads read a 1 GiB buffer with the start-up probe's fastest loop.
class AdjacentProbe {
 public:
  static constexpr uint64_t kBytes = uint64_t(1) << 30;
  static constexpr int kPasses = 3;

  // The median GB/s of kPasses reads of the buffer by `threads` threads
  // (team: null for one).
  double measure(Team* team) {
    const int n = team ? team->size() : 1;
    if (!buf_) {
      buf_.reset(static_cast<uint64_t*>(std::aligned_alloc(4096, kBytes)));
      if (!buf_) {
        std::fprintf(stderr, "bench_cpu_kernels: cannot allocate the %llu-byte probe buffer\n",
                     static_cast<unsigned long long>(kBytes));
        std::exit(1);
      }
      // Written by this thread, as fill_weights writes the weights, so the
      // probe's pages lie where the weights' do whatever the team size.
      run(nullptr, 1, [](uint64_t* w, uint64_t b, uint64_t e) {
        for (uint64_t i = b; i < e; ++i) w[i] = i;
      });
      for (const ReadLoop& l : read_loops()) {
        if (g_probe_loop == l.name) loop_ = l.sum;
      }
      if (!loop_) loop_ = read_loops().front().sum;
    }
    std::vector<double> gbps;
    for (int pass = 0; pass < kPasses; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      run(team, n, [&](uint64_t* w, uint64_t b, uint64_t e) { sink_ += loop_(w + b, e - b); });
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      gbps.push_back(static_cast<double>(kBytes) / sec / 1e9);
    }
    std::sort(gbps.begin(), gbps.end());
    return gbps[kPasses / 2];
  }

 private:
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  // f(buffer, begin, end) on member t's slice of whole 128-byte lines.
  template <class F>
  void run(Team* team, int n, const F& f) {
    const uint64_t lines = kBytes / 128;
    const std::function<void(int)> job = [&](int t) {
      f(buf_.get(), 16 * (lines * t / n), 16 * (lines * (t + 1) / n));
    };
    if (team) {
      team->run(job);
    } else {
      job(0);
    }
  }
  std::unique_ptr<uint64_t, FreeDeleter> buf_;
  uint64_t (*loop_)(const uint64_t*, uint64_t) = nullptr;
  std::atomic<uint64_t> sink_{0};
};

// ---- weights: random blocks with sane f16 scales (speed does not depend on
// values), n_copies distinct copies of one matrix.
struct Weights {
  DType type{};
  int64_t n_in = 0, n_out = 0;
  size_t matrix_bytes = 0;
  int64_t n_copies = 0;
  bool packed = false;  // in the interleaved layout of qgemm_packed.h
  std::unique_ptr<uint8_t[], decltype(&std::free)> data{nullptr, &std::free};
  const uint8_t* copy(int64_t i) const { return data.get() + static_cast<size_t>(i % n_copies) * matrix_bytes; }
};

void fill_weights(Weights& w) {
  Xoshiro256 rng(42);
  const size_t total = w.matrix_bytes * static_cast<size_t>(w.n_copies);
  uint8_t* p = w.data.get();
  if (w.type == DType::kF32 || w.type == DType::kF16 || w.type == DType::kBF16) {
    const size_t n = total / dtype_traits(w.type).block_bytes;
    for (size_t i = 0; i < n; ++i) {
      const float v = static_cast<float>(rng.uniform() - 0.5);
      if (w.type == DType::kF32) {
        std::memcpy(p + 4 * i, &v, 4);
      } else {
        const uint16_t h = w.type == DType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
        std::memcpy(p + 2 * i, &h, 2);
      }
    }
    return;
  }
  rng.fill(p, total);
  const auto& tr = dtype_traits(w.type);
  const size_t d_off = w.type == DType::kQ6_K ? 208 : 0;
  const uint16_t d = f32_to_f16(0.01f), dmin = f32_to_f16(0.002f);
  for (size_t b = 0; b < total / tr.block_bytes; ++b) {
    std::memcpy(p + b * tr.block_bytes + d_off, &d, 2);
    if (w.type == DType::kQ4_K || w.type == DType::kQ5_K) std::memcpy(p + b * tr.block_bytes + 2, &dmin, 2);
  }
}

// The current weights, kept while consecutive benchmarks share type and shape.
uint8_t* alloc_or_exit(size_t bytes) {
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (!p) {
    std::fprintf(stderr, "bench_cpu_kernels: cannot allocate %.2f GiB of weights\n", bytes / double(1ull << 30));
    std::exit(1);
  }
  return p;
}

// With `packed`, the same random GGUF matrices packed (matrix_bytes is then
// the packed size, what the kernel reads). `w` is the slot that keeps them.
Weights& weights_for(Weights& w, DType t, int64_t n_in, int64_t n_out, double gib, bool packed) {
  const size_t mb = *dtype_row_bytes(t, static_cast<uint64_t>(n_in)) * static_cast<size_t>(n_out);
  const int64_t copies = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(gib * (1ull << 30) / mb)));
  if (w.data && w.type == t && w.n_in == n_in && w.n_out == n_out && w.n_copies == copies && w.packed == packed) {
    return w;
  }
  w.data.reset();
  w.type = t, w.n_in = n_in, w.n_out = n_out, w.matrix_bytes = mb, w.n_copies = copies, w.packed = false;
  w.data.reset(alloc_or_exit(mb * copies));
  fill_weights(w);
  if (packed) {
    const size_t pb = qgemm_packed_bytes(t, n_in, n_out);
    std::unique_ptr<uint8_t[], decltype(&std::free)> p(alloc_or_exit(pb * copies), &std::free);
    for (int64_t c = 0; c < copies; ++c) qgemm_pack(t, w.copy(c), n_in, 0, n_out, p.get() + pb * size_t(c));
    w.data = std::move(p);
    w.matrix_bytes = pb, w.packed = true;
  }
  return w;
}

// The DRAM-sized copies of the decode benchmarks, and one cache-resident
// matrix for everything else (so a roofline measurement does not evict them).
Weights& weights_for(DType t, int64_t n_in, int64_t n_out, double gib, bool packed) {
  static Weights dram, cached;
  return weights_for(gib > 0 ? dram : cached, t, n_in, n_out, gib, packed);
}

double weight_gib() {
  const char* e = std::getenv("STRATA_BENCH_WEIGHT_GIB");
  return e ? std::max(0.001, std::atof(e)) : 1.0;
}

ActPack make_acts(DType t, int64_t n_in, int64_t n_rows) {
  Xoshiro256 rng(7);
  std::vector<float> x(static_cast<size_t>(n_in * n_rows));
  for (auto& v : x) v = static_cast<float>(rng.uniform() * 2 - 1);
  ActPack p;
  act_pack_prepare(p, t, n_in, n_rows);
  act_pack_rows(p, x.data(), n_in, 0, n_rows);
  return p;
}

// Output rows [begin, end) of member t of n, in multiples of 16.
std::pair<int64_t, int64_t> slice(int64_t n_out, int t, int n) {
  const int64_t per = (n_out / n + 15) / 16 * 16;
  return {std::min(n_out, per * t), t == n - 1 ? n_out : std::min(n_out, per * (t + 1))};
}

void product(CpuIsa isa, const Weights& w, int64_t copy, const ActPack& x, float* y, Team* team) {
  auto job = [&](int t) {
    const auto [b, e] = slice(w.n_out, t, team ? team->size() : 1);
    if (w.packed) {
      qgemm_packed_rows_isa(isa, w.type, w.copy(copy), w.n_in, b, e, x, y, w.n_out);
    } else {
      qgemm_rows_isa(isa, w.type, w.copy(copy), w.n_in, b, e, x, y, w.n_out);
    }
  };
  if (team) {
    const std::function<void(int)> f = job;
    team->run(f);
  } else {
    job(0);
  }
}

std::string label(CpuIsa isa, bool packed) {
  return std::string(qgemm_variant_name(isa)) + (packed ? " packed" : "");
}

// One matrix of ~256 KiB (n_in 2048): stays in L2 across iterations.
Weights& cache_resident(DType t, bool packed) {
  const int64_t n_in = 2048;
  const size_t rb = *dtype_row_bytes(t, n_in);
  const int64_t n_out = std::max<int64_t>(16, static_cast<int64_t>((256u << 10) / rb) / 16 * 16);
  return weights_for(t, n_in, n_out, 0.0, packed);
}

// One thread's compute bound of a kernel at `rows` activation rows, in GB/s
// of weights: the cache-resident matrix, the best of 5 passes of 40 ms (on a
// shared machine the best pass is the least disturbed), once per case.
double peak_gbps(DType t, CpuIsa isa, bool packed, int64_t rows) {
  static std::map<std::tuple<DType, CpuIsa, bool, int64_t>, double> cache;
  const auto key = std::make_tuple(t, isa, packed, rows);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Weights& w = cache_resident(t, packed);
  const ActPack x = make_acts(t, w.n_in, rows);
  std::vector<float> y(static_cast<size_t>(rows * w.n_out));
  product(isa, w, 0, x, y.data(), nullptr);
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    int64_t n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double sec = 0;
    do {
      product(isa, w, 0, x, y.data(), nullptr);
      ++n;
      sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (sec < 0.04);
    best = std::max(best, static_cast<double>(w.matrix_bytes) * static_cast<double>(n) / sec / 1e9);
  }
  return cache[key] = best;
}

void bm_decode(benchmark::State& st, DType t, CpuIsa isa, bool packed, int64_t n_in, int64_t n_out, int64_t rows,
               int threads) {
  Weights& w = weights_for(t, n_in, n_out, weight_gib(), packed);
  const ActPack x = make_acts(t, n_in, rows);
  std::vector<float> y(static_cast<size_t>(rows * n_out));
  std::unique_ptr<Team> team = threads > 1 ? std::make_unique<Team>(threads) : nullptr;
  int64_t i = 0;
  for (auto _ : st) {
    product(isa, w, i++, x, y.data(), team.get());
    benchmark::DoNotOptimize(y.data());
  }
  static AdjacentProbe probe;
  const double probe_gbps = probe.measure(team.get());
  const double gb = static_cast<double>(w.matrix_bytes) / 1e9;
  st.counters["GB/s"] = benchmark::Counter(gb, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["probe_GB/s"] = probe_gbps;
  st.counters["pct_probe"] = benchmark::Counter(gb * 100.0 / probe_gbps, benchmark::Counter::kIsIterationInvariantRate);
  // The roofline: the read probe, or the kernel's compute bound on this many
  // threads where that is lower (then the shape is compute-bound here).
  const double roof = std::min(probe_gbps, peak_gbps(t, isa, packed, rows) * threads);
  st.counters["roofline_GB/s"] = roof;
  st.counters["pct_roofline"] = benchmark::Counter(gb * 100.0 / roof, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["copies"] = static_cast<double>(w.n_copies);
  st.SetLabel(label(isa, packed));
}

void bm_peak(benchmark::State& st, DType t, CpuIsa isa, bool packed, int64_t rows) {
  Weights& w = cache_resident(t, packed);
  const ActPack x = make_acts(t, w.n_in, rows);
  const int64_t n_out = w.n_out;
  std::vector<float> y(static_cast<size_t>(rows * n_out));
  for (auto _ : st) {
    product(isa, w, 0, x, y.data(), nullptr);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(w.matrix_bytes) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(label(isa, packed));
}

// ---- register-only throughput probes (multiply-adds per second, one thread).

template <class F>
double time_loop(F f, int64_t iters) {
  const auto t0 = std::chrono::steady_clock::now();
  f(iters);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// 12 independent chains so throughput, not latency, is measured. The chains
// are 12 named variables tied to registers by one empty asm per iteration:
// an array would live in memory, and every step would then wait on a store
// and a load (that measures store forwarding, a third of the FMA rate).
#define STRATA_CHAINS(V, INIT, STEP, C, ADD)                                                                   \
  V a0 = INIT, a1 = INIT, a2 = INIT, a3 = INIT, a4 = INIT, a5 = INIT, a6 = INIT, a7 = INIT, a8 = INIT, a9 = INIT, \
    a10 = INIT, a11 = INIT;                                                                                   \
  for (int64_t i = 0; i < n; ++i) {                                                                           \
    a0 = STEP(a0); a1 = STEP(a1); a2 = STEP(a2); a3 = STEP(a3); a4 = STEP(a4); a5 = STEP(a5);                   \
    a6 = STEP(a6); a7 = STEP(a7); a8 = STEP(a8); a9 = STEP(a9); a10 = STEP(a10); a11 = STEP(a11);               \
    __asm__ volatile("" : "+" C(a0), "+" C(a1), "+" C(a2), "+" C(a3), "+" C(a4), "+" C(a5), "+" C(a6),       \
                     "+" C(a7), "+" C(a8), "+" C(a9), "+" C(a10), "+" C(a11));                               \
  }                                                                                                           \
  *out = ADD(ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7))), ADD(ADD(a8, a9), ADD(a10, a11)));

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void loop_vnni(int64_t n, __m512i* out) {
  const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
#define STEP(v) _mm512_dpbusd_epi32(v, u, s)
  STRATA_CHAINS(__m512i, _mm512_setzero_si512(), STEP, "v", _mm512_add_epi32)
#undef STEP
}
// Without VNNI the multiplies are vpmaddubsw alone: the kernels add several
// of its 16-bit pair sums before one vpmaddwd widens them (qgemm_avx2.cpp),
// so a probe that paid a vpmaddwd per vpmaddubsw would halve the peak. The
// chain's own bytes are the unsigned operand: a constant one would let the
// compiler hoist the multiplies out of the loop.
__attribute__((target("avx512f,avx512bw"))) void loop_avx512_int8(int64_t n, __m512i* out) {
  const __m512i s = _mm512_set1_epi8(-2);
#define STEP(v) _mm512_maddubs_epi16(v, s)
  STRATA_CHAINS(__m512i, _mm512_setzero_si512(), STEP, "v", _mm512_add_epi16)
#undef STEP
}
__attribute__((target("avx2"))) void loop_avx2_int8(int64_t n, __m256i* out) {
  const __m256i s = _mm256_set1_epi8(-2);
#define STEP(v) _mm256_maddubs_epi16(v, s)
  STRATA_CHAINS(__m256i, _mm256_setzero_si256(), STEP, "x", _mm256_add_epi16)
#undef STEP
}
__attribute__((target("avx2,avxvnni"))) void loop_avx_vnni(int64_t n, __m256i* out) {
  const __m256i u = _mm256_set1_epi8(3), s = _mm256_set1_epi8(-2);
#define STEP(v) _mm256_dpbusd_avx_epi32(v, u, s)
  STRATA_CHAINS(__m256i, _mm256_setzero_si256(), STEP, "x", _mm256_add_epi32)
#undef STEP
}
#if STRATA_HAVE_AMX
// AMX-INT8: four 16 x 16 accumulators, each TDPBSSD 16 x 16 x 64 multiply-adds.
__attribute__((target("amx-tile,amx-int8"))) void loop_amx(int64_t n, __m512i* out) {
  qgemm_detail::AmxTileConfig c;
  c.palette = 1;
  for (int t = 0; t < 8; ++t) c.colsb[t] = 64, c.rows[t] = 16;
  alignas(64) int8_t src[16 * 64];
  for (int i = 0; i < 16 * 64; ++i) src[i] = static_cast<int8_t>(i % 7 - 3);
  __asm__ __volatile__("ldtilecfg %0" ::"m"(c));
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, src, 64);
  _tile_loadd(5, src, 64);
  _tile_loadd(6, src, 64);
  _tile_loadd(7, src, 64);
  for (int64_t i = 0; i < n; ++i) {
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
  alignas(64) int32_t c0[16 * 16];
  _tile_stored(0, c0, 64);
  _tile_release();
  std::memcpy(out, c0, 64);
}
#endif
__attribute__((target("avx512f"))) void loop_fma512(int64_t n, __m512* out) {
  const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
#define STEP(v) _mm512_fmadd_ps(v, m, c)
  STRATA_CHAINS(__m512, _mm512_setzero_ps(), STEP, "v", _mm512_add_ps)
#undef STEP
}
__attribute__((target("avx2,fma"))) void loop_fma256(int64_t n, __m256* out) {
  const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
#define STEP(v) _mm256_fmadd_ps(v, m, c)
  STRATA_CHAINS(__m256, _mm256_setzero_ps(), STEP, "x", _mm256_add_ps)
#undef STEP
}
__attribute__((target("avx512f,avx512bf16"))) void loop_bf16(int64_t n, __m512* out) {
  const __m512bh u = (__m512bh)_mm512_set1_epi16(0x3f80);
#define STEP(v) _mm512_dpbf16_ps(v, u, u)
  STRATA_CHAINS(__m512, _mm512_setzero_ps(), STEP, "v", _mm512_add_ps)
#undef STEP
}
#undef STRATA_CHAINS

// Peak multiply-adds per second of one thread for the instruction the
// path's kernel for `t` is built on (0 for the scalar path: not probed).
double peak_macs(CpuIsa isa, DType t) {
  static double cache[4][3] = {};
  const CpuFeatures f = detect_cpu_features();
  const bool is_int = act_format(t) == ActFormat::kQ8K || act_format(t) == ActFormat::kQ8_32;
  const bool is_bf16 = act_format(t) == ActFormat::kBF16 && f.avx512_bf16 && isa != CpuIsa::kAvx2;
  const int kind = is_int ? 0 : is_bf16 ? 1 : 2;
  double& c = cache[static_cast<int>(isa)][kind];
  if (c > 0 || isa == CpuIsa::kScalar) return c;
  const int64_t n = 20'000'000;
  double macs_per_iter = 0, sec = 0;
  alignas(64) unsigned char sink[64];
  const bool wide = isa == CpuIsa::kAvx512 || isa == CpuIsa::kAmx;
  if (kind == 0) {
#if STRATA_HAVE_AMX
    if (isa == CpuIsa::kAmx && f.amx_int8) {
      sec = time_loop([&](int64_t k) { loop_amx(k / 16, reinterpret_cast<__m512i*>(sink)); }, n);
      macs_per_iter = 4.0 * 16 * 16 * 64 / 16;
    }
#endif
    if (sec > 0) {
    } else if (wide && f.avx512_vnni) {
      sec = time_loop([&](int64_t k) { loop_vnni(k, reinterpret_cast<__m512i*>(sink)); }, n);
      macs_per_iter = 12 * 64;
    } else if (wide) {
      sec = time_loop([&](int64_t k) { loop_avx512_int8(k, reinterpret_cast<__m512i*>(sink)); }, n);
      macs_per_iter = 12 * 64;
    } else if (f.avx_vnni) {  // the AVX2 path's packed tiles run on it (qgemm_avxvnni.cpp)
      sec = time_loop([&](int64_t k) { loop_avx_vnni(k, reinterpret_cast<__m256i*>(sink)); }, n);
      macs_per_iter = 12 * 32;
    } else {
      sec = time_loop([&](int64_t k) { loop_avx2_int8(k, reinterpret_cast<__m256i*>(sink)); }, n);
      macs_per_iter = 12 * 32;
    }
  } else if (kind == 1) {
    sec = time_loop([&](int64_t k) { loop_bf16(k, reinterpret_cast<__m512*>(sink)); }, n);
    macs_per_iter = 12 * 32;
  } else if (wide) {
    sec = time_loop([&](int64_t k) { loop_fma512(k, reinterpret_cast<__m512*>(sink)); }, n);
    macs_per_iter = 12 * 16;
  } else {
    sec = time_loop([&](int64_t k) { loop_fma256(k, reinterpret_cast<__m256*>(sink)); }, n);
    macs_per_iter = 12 * 8;
  }
  benchmark::DoNotOptimize(sink);
  c = macs_per_iter * n / sec;
  return c;
}

void bm_prefill(benchmark::State& st, DType t, CpuIsa isa, bool packed, int64_t n_in, int64_t n_out, int64_t rows,
                int threads) {
  Weights& w = weights_for(t, n_in, n_out, 0.0, packed);
  const ActPack x = make_acts(t, n_in, rows);
  std::vector<float> y(static_cast<size_t>(rows * n_out));
  std::unique_ptr<Team> team = threads > 1 ? std::make_unique<Team>(threads) : nullptr;
  for (auto _ : st) {
    product(isa, w, 0, x, y.data(), team.get());
    benchmark::DoNotOptimize(y.data());
  }
  const double gop = 2.0 * n_in * n_out * rows / 1e9;
  st.counters["GOP/s"] = benchmark::Counter(gop, benchmark::Counter::kIsIterationInvariantRate);
  const double peak = peak_macs(isa, t) * 2 / 1e9 * threads;
  if (peak > 0) {
    st.counters["pct_peak"] = benchmark::Counter(gop * 100.0 / peak, benchmark::Counter::kIsIterationInvariantRate);
    st.counters["peak_GOP/s"] = peak;
  }
  st.SetLabel(label(isa, packed));
}

// The same product on oneDNN: f32 against the FMA peak of the widest path,
// bf16 against vdpbf16ps (where the CPU has it).
void bm_prefill_dnnl(benchmark::State& st, DType t, DnnlPrecision prec, int64_t n_in, int64_t n_out, int64_t rows,
                     int threads) {
  Weights& w = weights_for(t, n_in, n_out, 0.0, false);
  Xoshiro256 rng(7);
  std::vector<float> xf(static_cast<size_t>(n_in * rows));
  for (auto& v : xf) v = static_cast<float>(rng.uniform() * 2 - 1);
  DnnlActs x;
  x.prepare(prec, xf.data(), n_in, n_in, rows);
  std::vector<float> y(static_cast<size_t>(rows * n_out));
  std::unique_ptr<Team> team = threads > 1 ? std::make_unique<Team>(threads) : nullptr;
  bool ok = true;
  auto job = [&](int m) {
    const auto [b, e] = slice(w.n_out, m, team ? team->size() : 1);
    if (!dnnl_gemm_rows(t, w.copy(0), n_in, b, e, x, y.data(), n_out).is_ok()) ok = false;
  };
  const std::function<void(int)> f = job;
  for (auto _ : st) {
    if (team) {
      team->run(f);
    } else {
      job(0);
    }
    benchmark::DoNotOptimize(y.data());
  }
  if (!ok) st.SkipWithError("oneDNN product failed");
  const double gop = 2.0 * n_in * n_out * rows / 1e9;
  st.counters["GOP/s"] = benchmark::Counter(gop, benchmark::Counter::kIsIterationInvariantRate);
  // The peak of the vector width oneDNN runs at ($DNNL_MAX_CPU_ISA=AVX2
  // holds it to 256 bits).
  const std::string disa = dnnl_cpu_isa();
  const CpuIsa width = disa.rfind("avx512", 0) == 0 || disa == "amx" ? CpuIsa::kAvx512 : CpuIsa::kAvx2;
  const double peak = peak_macs(width, prec == DnnlPrecision::kF32 ? DType::kF32 : DType::kBF16) * 2 / 1e9 * threads;
  if (peak > 0) {
    st.counters["pct_peak"] = benchmark::Counter(gop * 100.0 / peak, benchmark::Counter::kIsIterationInvariantRate);
    st.counters["peak_GOP/s"] = peak;
  }
  st.SetLabel(std::string("onednn-") + dnnl_precision_name(prec) + " (" + disa + ")");
}

struct Shape {
  int64_t n_in, n_out;
};
// Expert matrices, ggml terms n_in x n_out: DeepSeek-V3 gate/up and down,
// Qwen3-30B-A3B gate/up and down, Qwen3-235B gate/up.
constexpr Shape kDecodeShapes[] = {{7168, 2048}, {2048, 7168}, {2048, 768}, {768, 2048}, {4096, 1536}};
constexpr Shape kPrefillShapes[] = {{2048, 768}, {7168, 2048}};
const DType kTypes[] = {DType::kQ2_K,   DType::kQ3_K,   DType::kQ4_K,   DType::kQ5_K,   DType::kQ6_K,
                        DType::kQ8_0,   DType::kQ4_0,   DType::kIQ4_NL, DType::kIQ4_XS, DType::kIQ2_XXS,
                        DType::kIQ2_XS, DType::kIQ2_S,  DType::kIQ3_XXS, DType::kIQ3_S, DType::kIQ1_S,
                        DType::kIQ1_M,  DType::kBF16,   DType::kF16,    DType::kF32};

void register_all() {
  std::vector<CpuIsa> paths = {CpuIsa::kScalar};
  if (cpu_isa_missing(CpuIsa::kAvx2).empty()) paths.push_back(CpuIsa::kAvx2);
  if (cpu_isa_missing(CpuIsa::kAvx512).empty()) paths.push_back(CpuIsa::kAvx512);
  const int all = hw_threads();
  for (DType t : kTypes) {
    const std::string tn(dtype_name(t));
    // Kernel paths of this type: each ISA on GGUF rows, and "<isa>+packed"
    // where the ISA has a packed kernel (shapes here are all multiples of 16).
    struct Path {
      CpuIsa isa;
      bool packed;
      std::string name;
    };
    std::vector<Path> kpaths;
    for (CpuIsa isa : paths) {
      kpaths.push_back({isa, false, std::string(cpu_isa_name(isa))});
      if (qgemm_packed_fast(isa, t)) kpaths.push_back({isa, true, std::string(cpu_isa_name(isa)) + "+packed"});
    }
    // AMX differs from AVX-512 only in packed products of 16 rows or more:
    // prefill only.
    std::vector<Path> prefill_paths = kpaths;
    if (cpu_isa_missing(CpuIsa::kAmx).empty() && qgemm_packed_fast(CpuIsa::kAmx, t) &&
        qgemm_detail::kernel_table(CpuIsa::kAmx).packed[static_cast<int>(t)] !=
            qgemm_detail::kernel_table(CpuIsa::kAvx512).packed[static_cast<int>(t)]) {
      prefill_paths.push_back({CpuIsa::kAmx, true, "amx+packed"});
    }
    for (const Shape& s : kDecodeShapes) {
      const std::string sn = std::to_string(s.n_in) + "x" + std::to_string(s.n_out);
      for (const Path& kp : kpaths) {
        for (int threads : {1, all}) {
          for (int64_t rows : {1, 2, 4, 8}) {
            const std::string name = "decode/" + tn + "/" + kp.name + "/" + sn + "/rows:" + std::to_string(rows) +
                                     "/threads:" + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), bm_decode, t, kp.isa, kp.packed, s.n_in, s.n_out, rows, threads)
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
          if (all == 1) break;
        }
      }
    }
    for (const Path& kp : kpaths) {
      for (int64_t rows : {1, 2, 4, 8}) {
        const std::string name = "peak/" + tn + "/" + kp.name + "/rows:" + std::to_string(rows);
        benchmark::RegisterBenchmark(name.c_str(), bm_peak, t, kp.isa, kp.packed, rows)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
    for (const Shape& s : kPrefillShapes) {
      const std::string sn = std::to_string(s.n_in) + "x" + std::to_string(s.n_out);
      for (int64_t rows : {512, 32}) {
        const std::string rn = "/rows:" + std::to_string(rows) + "/threads:";
        for (const Path& kp : prefill_paths) {
          if (kp.isa == CpuIsa::kScalar && s.n_in * s.n_out > 2048 * 768) continue;  // minutes per iteration
          for (int threads : {1, all}) {
            const std::string name = "prefill/" + tn + "/" + kp.name + "/" + sn + rn + std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), bm_prefill, t, kp.isa, kp.packed, s.n_in, s.n_out, rows, threads)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
            if (all == 1) break;
          }
        }
        for (DnnlPrecision prec : {DnnlPrecision::kF32, DnnlPrecision::kBF16}) {
          if (!dnnl_precision_available(prec)) continue;
          for (int threads : {1, all}) {
            const std::string name = "prefill/" + tn + "/onednn-" + dnnl_precision_name(prec) + "/" + sn + rn +
                                     std::to_string(threads);
            benchmark::RegisterBenchmark(name.c_str(), bm_prefill_dnnl, t, prec, s.n_in, s.n_out, rows, threads)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
            if (all == 1) break;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  using namespace strata;
  // The probes first, in this process: all threads, then one.
  BandwidthProbeOptions po;
  po.n_runs = 5;
  auto all = probe_read_bandwidth(po);
  po.n_threads = 1;
  auto one = probe_read_bandwidth(po);
  if (!all.is_ok() || !one.is_ok()) {
    std::fprintf(stderr, "bench_cpu_kernels: bandwidth probe failed: %s\n",
                 (all.is_ok() ? one.status() : all.status()).to_string().c_str());
    return 1;
  }
  g_probe_gbps = all->median_gbps;
  g_probe_gbps_1t = one->median_gbps;
  g_probe_loop = all->kernel;
  const CpuFeatures f = detect_cpu_features();
  benchmark::AddCustomContext("read_probe_gbps_all_threads", std::to_string(g_probe_gbps));
  benchmark::AddCustomContext("read_probe_gbps_one_thread", std::to_string(g_probe_gbps_1t));
  benchmark::AddCustomContext("read_probe_threads", std::to_string(all->n_threads));
  benchmark::AddCustomContext("read_probe_buffer_bytes", std::to_string(all->buffer_bytes));
  benchmark::AddCustomContext("read_probe_loop", all->kernel);
  benchmark::AddCustomContext("cpu_isa_best", std::string(cpu_isa_name(best_cpu_isa())));
  benchmark::AddCustomContext("qgemm_variant", std::string(qgemm_variant_name(best_cpu_isa())));
  benchmark::AddCustomContext("cpu_features", std::string("avx2_fma=") + (f.avx2_fma ? "1" : "0") +
                                                  " avx512=" + (f.avx512 ? "1" : "0") +
                                                  " avx512_vnni=" + (f.avx512_vnni ? "1" : "0") +
                                                  " avx512_bf16=" + (f.avx512_bf16 ? "1" : "0") +
                                                  " amx_int8=" + (f.amx_int8 ? "1" : "0"));
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
