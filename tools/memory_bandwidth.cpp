#include "tools/memory_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "core/util/error.h"

namespace momentkv::tools {

namespace {

// Parses sysfs sizes such as "32768K" or "2M".
uint64_t parse_cache_size(const std::string& s) {
  size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(s, &used);
  } catch (const std::exception&) {
    return 0;
  }
  const std::string unit = s.substr(used);
  if (unit.empty()) return v;
  if (unit[0] == 'K') return v << 10;
  if (unit[0] == 'M') return v << 20;
  if (unit[0] == 'G') return v << 30;
  return 0;
}

// Several independent accumulators so the compiler can keep a few vector adds in flight; integer
// adds vectorise without -ffast-math.
uint64_t sum_words(const uint64_t* p, size_t n) {
  constexpr size_t kLanes = 8;
  uint64_t acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t k = 0; k < kLanes; ++k) acc[k] += p[i + k];
  }
  for (; i < n; ++i) acc[0] += p[i];
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

}  // namespace

uint64_t last_level_cache_bytes() {
  for (const char* index : {"index3", "index2"}) {
    std::ifstream in(std::string("/sys/devices/system/cpu/cpu0/cache/") + index + "/size");
    std::string s;
    if (in >> s) {
      if (const uint64_t b = parse_cache_size(s)) return b;
    }
  }
  return 0;
}

uint64_t default_bandwidth_buffer_bytes() {
  constexpr uint64_t kMin = 256ull << 20;
  constexpr uint64_t kMax = 1ull << 30;
  return std::clamp(8 * last_level_cache_bytes(), kMin, kMax);
}

ReadBandwidth measure_read_bandwidth(ThreadPool& pool, uint64_t buffer_bytes, int n_runs) {
  check(n_runs >= 1, "measure_read_bandwidth: n_runs must be >= 1, got " + std::to_string(n_runs));
  if (buffer_bytes == 0) buffer_bytes = default_bandwidth_buffer_bytes();
  const size_t n_words = static_cast<size_t>(buffer_bytes / sizeof(uint64_t));
  check(n_words > 0, "measure_read_bandwidth: buffer of " + std::to_string(buffer_bytes) +
                         " bytes is too small");
  // Left uninitialised by make_unique_for_overwrite; each thread first-touches its own share.
  auto buf = std::make_unique_for_overwrite<uint64_t[]>(n_words);
  const int n_threads = pool.size();
  // One atomic add per thread and run keeps the sums observable without sharing a line in the loop.
  std::atomic<uint64_t> sum{0};
  pool.parallel_for(static_cast<int64_t>(n_words), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) buf[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
  });

  ReadBandwidth r;
  r.buffer_bytes = n_words * sizeof(uint64_t);
  r.n_threads = n_threads;
  r.n_runs = n_runs;
  double total = 0;
  for (int run = -1; run < n_runs; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(static_cast<int64_t>(n_words), [&](int64_t begin, int64_t end) {
      sum.fetch_add(sum_words(buf.get() + begin, static_cast<size_t>(end - begin)),
                    std::memory_order_relaxed);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (run < 0) continue;  // warm-up: page tables and frequency
    const double gbs = static_cast<double>(r.buffer_bytes) / s / 1e9;
    r.gb_per_s = std::max(r.gb_per_s, gbs);
    total += gbs;
  }
  r.mean_gb_per_s = total / n_runs;
  // Checked so the sums stay observable: every word i holds i, so the total is known exactly.
  const uint64_t got = sum.load();
  const uint64_t n = n_words;
  const uint64_t want =
      (n % 2 == 0 ? (n / 2) * (n - 1) : n * ((n - 1) / 2)) * static_cast<uint64_t>(n_runs + 1);
  check(got == want, "measure_read_bandwidth: checksum mismatch");
  return r;
}

}  // namespace momentkv::tools
