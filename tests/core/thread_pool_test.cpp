// ThreadPool: every index runs exactly once, ranges are contiguous and in thread order, the pool
// survives exceptions, nesting, idle gaps longer than its spin time and concurrent callers.
#include "core/util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "core/util/error.h"

namespace momentkv {
namespace {

TEST(ThreadPool, RejectsZeroThreads) {
  EXPECT_THROW(ThreadPool(0), Error);
}

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int n_threads : {1, 2, 3, 4}) {
    ThreadPool pool(n_threads);
    EXPECT_EQ(pool.size(), n_threads);
    for (int64_t n : {0, 1, 2, 3, 5, 7, 64, 1001}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " threads=" << n_threads << " i=" << i;
      }
    }
  }
}

TEST(ThreadPool, SplitsIntoNearEqualContiguousRanges) {
  ThreadPool pool(3);
  std::mutex mu;
  std::set<std::pair<int64_t, int64_t>> ranges;
  std::set<std::thread::id> threads;
  pool.parallel_for(10, [&](int64_t begin, int64_t end) {
    std::lock_guard<std::mutex> lock(mu);
    ranges.insert({begin, end});
    threads.insert(std::this_thread::get_id());
  });
  const std::set<std::pair<int64_t, int64_t>> expected = {{0, 3}, {3, 6}, {6, 10}};
  EXPECT_EQ(ranges, expected);
  EXPECT_EQ(threads.size(), 3u);
  EXPECT_TRUE(threads.count(std::this_thread::get_id()));  // the caller takes part
}

TEST(ThreadPool, ManyQuickCallsAndIdleGaps) {
  ThreadPool pool(2);
  int64_t total = 0;
  for (int call = 0; call < 20000; ++call) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(100, [&](int64_t begin, int64_t end) {
      int64_t s = 0;
      for (int64_t i = begin; i < end; ++i) s += i;
      sum.fetch_add(s);
    });
    total += sum.load();
    // Now and then let the workers fall asleep before the next call.
    if (call % 5000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(total, int64_t{20000} * 4950);
}

TEST(ThreadPool, RethrowsAndStaysUsable) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(30,
                                 [](int64_t begin, int64_t) {
                                   if (begin >= 10) throw std::runtime_error("worker");
                                 }),
               std::runtime_error);
  EXPECT_THROW(pool.parallel_for(30,
                                 [](int64_t begin, int64_t) {
                                   if (begin == 0) throw std::runtime_error("caller");
                                 }),
               std::runtime_error);
  std::atomic<int> count{0};
  pool.parallel_for(
      30, [&](int64_t begin, int64_t end) { count.fetch_add(static_cast<int>(end - begin)); });
  EXPECT_EQ(count.load(), 30);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.parallel_for(4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      pool.parallel_for(3, [&](int64_t b, int64_t e) { inner.fetch_add(static_cast<int>(e - b)); });
    }
  });
  EXPECT_EQ(inner.load(), 12);
}

TEST(ThreadPool, ConcurrentCallersAreSerialised) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  auto caller = [&] {
    for (int k = 0; k < 2000; ++k) {
      pool.parallel_for(8, [&](int64_t begin, int64_t end) { total.fetch_add(end - begin); });
    }
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 2000 * 8);
}

// A callable with a non-const operator() (shared by the threads, so it must itself be safe).
TEST(ThreadPool, AcceptsMutableCallables) {
  ThreadPool pool(2);
  std::atomic<int> calls{0};
  auto fn = [&calls](int64_t begin, int64_t end) mutable {
    calls.fetch_add(static_cast<int>(end - begin));
  };
  pool.parallel_for(2, fn);
  pool.parallel_for(3, std::move(fn));
  EXPECT_EQ(calls.load(), 5);
}

}  // namespace
}  // namespace momentkv
