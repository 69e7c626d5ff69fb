// The persistent thread pool: every index of a parallel_for runs exactly once,
// node-bound items run only on their node's threads, nested and concurrent
// ops, the sleep/wake path, thread placement from topologies, and errors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "offload/cpu_pool.h"
#include "offload/topology.h"

namespace strata {
namespace {

std::string fixture(const char* name) { return std::string(STRATA_TEST_FIXTURES) + "/topology/" + name; }

std::unique_ptr<CpuPool> flat_pool(int n, int spin_us = 100) {
  CpuPoolOptions o;
  o.spin_us = spin_us;
  return std::make_unique<CpuPool>(std::vector<CpuThreadPlace>(size_t(n)), nullptr, o);
}

TEST(CpuPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 4}) {
    auto pool = flat_pool(threads);
    EXPECT_EQ(pool->n_threads(), threads);
    for (int64_t n : {0, 1, 7, 64, 1000}) {
      for (int64_t grain : {1, 3, 64, 5000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad_thread{0};
        pool->parallel_for(n, grain, [&](int64_t b, int64_t e, int t) {
          if (t < 0 || t >= threads || e - b > grain || b >= e) bad_thread.fetch_add(1);
          for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
        });
        EXPECT_EQ(bad_thread.load(), 0) << threads << " threads, n " << n << ", grain " << grain;
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "index " << i << ", n " << n;
      }
    }
  }
}

TEST(CpuPool, RunOnAllGivesEachThreadItsIndex) {
  auto pool = flat_pool(4);
  std::vector<std::atomic<int>> seen(4);
  std::set<std::thread::id> ids;
  std::mutex mu;
  pool->run_on_all([&](int t) {
    seen[size_t(t)].fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
  EXPECT_EQ(ids.size(), 4u);  // four distinct OS threads, the caller among them
  EXPECT_TRUE(ids.count(std::this_thread::get_id()));
}

TEST(CpuPool, ManyOpsAcrossTheSleepPath) {
  // spin_us 0: workers sleep on the futex between ops, so every op wakes them.
  for (int spin : {0, 50}) {
    auto pool = flat_pool(3, spin);
    std::atomic<int64_t> sum{0};
    for (int op = 0; op < 500; ++op) {
      pool->parallel_for(8, 1, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) sum.fetch_add(i + op);
      });
    }
    int64_t want = 0;
    for (int op = 0; op < 500; ++op) want += 28 + 8 * op;
    EXPECT_EQ(sum.load(), want) << "spin " << spin;
    EXPECT_EQ(pool->stats().n_ops, 500u);
  }
}

TEST(CpuPool, LateWakersNeitherRepeatNorMissWork) {
  // Threads that sleep between ops wake at different times; an op must count
  // each unit once, and run_on_all must run on every thread exactly once.
  for (int spin : {0, 20}) {
    auto pool = flat_pool(4, spin);
    std::vector<std::atomic<int>> per_thread(4);
    std::atomic<int64_t> units{0};
    for (int op = 0; op < 300; ++op) {
      if (op % 3 == 0) {
        pool->run_on_all([&](int t) { per_thread[size_t(t)].fetch_add(1); });
      } else {
        pool->parallel_for(5, 1, [&](int64_t b, int64_t e, int) { units.fetch_add(e - b); });
      }
    }
    for (auto& c : per_thread) EXPECT_EQ(c.load(), 100) << "spin " << spin;
    EXPECT_EQ(units.load(), 200 * 5) << "spin " << spin;
  }
}

TEST(CpuPool, DestroyedWhileAWorkerWakesLate) {
  // A worker that wakes for an op it never gets to run, while the pool is
  // being destroyed, must still see the stop: it once checked the stop flag
  // before reading the epoch the destructor had just bumped, took that
  // epoch as seen, and slept on it forever (a hang in ~CpuPool). A watchdog
  // turns a hang into a failure.
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 1200 && !finished.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!finished.load()) {
      std::fprintf(stderr, "CpuPool.DestroyedWhileAWorkerWakesLate: ~CpuPool did not return in 120 s\n");
      std::abort();
    }
  });
  int64_t units = 0;
  for (int round = 0; round < 4000; ++round) {
    auto pool = flat_pool(4, round % 2 ? 0 : 5);
    std::atomic<int64_t> n{0};
    // One unit: the caller usually takes it, and the woken workers are late.
    pool->parallel_for(2, 1, [&](int64_t b, int64_t e, int) { n.fetch_add(e - b); });
    units += n.load();
  }
  finished = true;
  watchdog.join();
  EXPECT_EQ(units, 4000 * 2);
}

TEST(CpuPool, NestedOpsRunInline) {
  auto pool = flat_pool(3);
  std::atomic<int> inner{0};
  pool->parallel_for(6, 1, [&](int64_t, int64_t, int t) {
    pool->parallel_for(10, 2, [&](int64_t b, int64_t e, int t2) {
      EXPECT_EQ(t2, t);  // inline on the same thread
      inner.fetch_add(int(e - b));
    });
  });
  EXPECT_EQ(inner.load(), 60);
}

TEST(CpuPool, OpsFromSeveralThreadsAreSerialized) {
  auto pool = flat_pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&] {
      for (int op = 0; op < 300; ++op) {
        pool->parallel_for(16, 2, [&](int64_t b, int64_t e, int) { total.fetch_add(e - b); });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 3 * 300 * 16);
}

TEST(CpuPool, NodeItemsRunOnTheirNode) {
  // Two nodes with two threads each, a third node without threads.
  std::vector<CpuThreadPlace> places = {{-1, 0}, {-1, 0}, {-1, 1}, {-1, 1}, };
  CpuPool pool(places, nullptr);
  ASSERT_EQ(pool.n_nodes(), 2);
  EXPECT_EQ(pool.threads_of_node(1), (std::vector<int>{2, 3}));
  const std::vector<int64_t> n_per_node = {37, 11};
  std::vector<std::vector<std::atomic<int>>> hits(2);
  hits[0] = std::vector<std::atomic<int>>(37);
  hits[1] = std::vector<std::atomic<int>>(11);
  std::atomic<int> off_node{0};
  for (int rep = 0; rep < 50; ++rep) {
    for (auto& h : hits) {
      for (auto& x : h) x.store(0);
    }
    pool.parallel_for_nodes(n_per_node, [&](int node, int64_t i, int t) {
      if (pool.node_of_thread(t) != node) off_node.fetch_add(1);
      hits[size_t(node)][size_t(i)].fetch_add(1);
    });
    for (auto& h : hits) {
      for (auto& x : h) ASSERT_EQ(x.load(), 1);
    }
  }
  EXPECT_EQ(off_node.load(), 0);
}

TEST(CpuPool, ItemsOfANodeWithoutThreadsRunAnywhere) {
  // A topology of two nodes, threads only on node 0.
  auto topo = Topology::synthetic("pack:2 numa:1 core:2 pu:1");
  ASSERT_TRUE(topo.is_ok()) << topo.status().to_string();
  CpuPool pool({{0, 0}, {1, 0}}, &topo.value());
  ASSERT_EQ(pool.n_nodes(), 2);
  EXPECT_TRUE(pool.threads_of_node(1).empty());
  std::atomic<int> n{0};
  const std::vector<int64_t> n_per_node = {5, 9};
  pool.parallel_for_nodes(n_per_node, [&](int, int64_t, int) { n.fetch_add(1); });
  EXPECT_EQ(n.load(), 14);
}

TEST(CpuPool, PlacesFollowTheTopology) {
  auto two = Topology::from_xml(fixture("2socket.xml"));
  ASSERT_TRUE(two.is_ok()) << two.status().to_string();
  const int n_cores = int(two->cores().size());
  ASSERT_EQ(two->numa_nodes().size(), 2u);
  // All cores by default, node 0's first.
  auto all = cpu_pool_places(*two, 0);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(int(all->size()), n_cores);
  EXPECT_EQ((*all)[0].numa, 0);
  EXPECT_EQ(all->back().numa, 1);
  // Six threads over two equal nodes: three each, on each node's first cores.
  auto six = cpu_pool_places(*two, 6);
  ASSERT_TRUE(six.is_ok());
  ASSERT_EQ(six->size(), 6u);
  for (int i = 0; i < 6; ++i) {
    const CpuThreadPlace& p = (*six)[size_t(i)];
    EXPECT_EQ(p.numa, i < 3 ? 0 : 1) << i;
    EXPECT_EQ(two->cores()[size_t(p.core)].numa, p.numa) << i;
  }
  // Five threads over four nodes: 2 + 1 + 1 + 1.
  auto four = Topology::from_xml(fixture("4node.xml"));
  ASSERT_TRUE(four.is_ok()) << four.status().to_string();
  auto five = cpu_pool_places(*four, 5);
  ASSERT_TRUE(five.is_ok());
  std::vector<int> per(4, 0);
  for (const auto& p : *five) ++per[size_t(p.numa)];
  EXPECT_EQ(per, (std::vector<int>{2, 1, 1, 1}));
  // A pool on a file's topology is not pinned (binding needs this machine).
  auto pool = CpuPool::create(*two, {4, true, 100});
  ASSERT_TRUE(pool.is_ok());
  EXPECT_FALSE((*pool)->pinned());
  EXPECT_EQ((*pool)->n_nodes(), 2);
}

TEST(CpuPool, BadThreadCountsAreErrors) {
  auto topo = Topology::synthetic("pack:1 numa:1 core:4 pu:2");
  ASSERT_TRUE(topo.is_ok());
  auto many = CpuPool::create(*topo, {5, true, 100});
  ASSERT_FALSE(many.is_ok());
  EXPECT_EQ(many.status().message(), "thread pool: expected at most 4 threads (one per physical core), got 5");
  auto neg = CpuPool::create(*topo, {-1, true, 100});
  ASSERT_FALSE(neg.is_ok());
  EXPECT_NE(neg.status().message().find("got -1"), std::string::npos);
}

TEST(CpuPool, ThisMachine) {
  auto topo = Topology::this_machine();
  ASSERT_TRUE(topo.is_ok()) << topo.status().to_string();
  auto pool = CpuPool::create(*topo);
  ASSERT_TRUE(pool.is_ok()) << pool.status().to_string();
  EXPECT_EQ((*pool)->n_threads(), int(topo->cores().size()));
  std::atomic<int64_t> sum{0};
  (*pool)->parallel_for(1000, 10, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
  });
  EXPECT_EQ(sum.load(), 999 * 1000 / 2);
}

}  // namespace
}  // namespace strata
