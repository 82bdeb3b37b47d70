// WAL growth under continuous writes with readers (RELIABILITY.md DB-8): the writer thread gets
// request records at a steady rate (some with layer rows, a probe and an event now and then)
// while two readers run the stats query of `GET /v1/stats` back to back on fresh read-only
// connections (the daemon runs at most two at once), as a dashboard polling the daemon would; a
// sampler records the size of the -wal file every few milliseconds. The WAL must stay below about
// twice the auto-checkpoint size however long it runs, and a clean stop leaves it empty.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon/telemetry/stats_query.h"
#include "daemon/telemetry/telemetry.h"

namespace momentkv::telemetry::test {

struct SoakResult {
  double seconds = 0;
  int64_t submitted = 0, written = 0, dropped = 0, retention_deleted = 0;
  int64_t stats_queries = 0, stats_failures = 0;
  double stats_ms_max = 0;
  uint64_t wal_max_bytes = 0;    // largest -wal size sampled
  uint64_t wal_limit_bytes = 0;  // 2 x wal_autocheckpoint pages x page size
  int64_t wal_samples = 0;
  bool wal_empty_after_stop = false;
  uint64_t db_bytes = 0;
  std::string integrity;
};

// Seconds from MOMENTKV_SOAK_SECONDS, else `fallback`.
inline double soak_seconds(double fallback) {
  const char* s = std::getenv("MOMENTKV_SOAK_SECONDS");
  return s && *s ? std::atof(s) : fallback;
}

inline SoakResult run_wal_soak(const std::string& path, double seconds, int records_per_s) {
  SoakResult r;
  TelemetryOptions o;
  o.path = path;
  // The writer may wait (wal_checkpoint_wait_ms, 5 s) for the readers to let the WAL start over;
  // at this rate (a hundred times a busy daemon's) the queue must hold that long.
  o.queue_capacity = 32768;
  // Retention by size keeps a long soak's file bounded (and deletes while readers read).
  o.store.max_bytes = 24ull << 20;
  o.retention_interval_ms = 1000;
  const auto t0 = std::chrono::steady_clock::now();
  const auto until = t0 + std::chrono::duration<double>(seconds);
  std::atomic<bool> stop{false};
  {
    Telemetry w(o);
    EXPECT_EQ(w.health().state, TelemetryState::kOk) << w.health().reason;
    {
      Database db(path, Database::Mode::kReadOnly);
      const int64_t pages = db.query_int("PRAGMA wal_autocheckpoint").value_or(1000);
      const int64_t page_size = db.query_int("PRAGMA page_size").value_or(4096);
      r.wal_limit_bytes = static_cast<uint64_t>(2 * pages * page_size);
    }
    std::thread sampler([&] {
      std::error_code ec;
      while (!stop.load()) {
        const auto size = std::filesystem::file_size(path + "-wal", ec);
        if (!ec) r.wal_max_bytes = std::max<uint64_t>(r.wal_max_bytes, size);
        ++r.wal_samples;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    std::atomic<int64_t> queries{0}, failures{0};
    std::atomic<int64_t> worst_us{0};
    std::vector<std::thread> readers;
    for (int k = 0; k < 2; ++k) {
      readers.emplace_back([&, k] {
        std::mt19937 rng(static_cast<uint32_t>(k + 1));
        while (!stop.load()) {
          const auto q0 = std::chrono::steady_clock::now();
          try {
            Database db(path, Database::Mode::kReadOnly);
            db.busy_timeout(2000);
            StatsWindow window;
            window.since_ms = unix_ms() - 24LL * 3'600'000;
            (void)query_stats(db, window);
            ++queries;
          } catch (const std::exception& e) {
            if (failures++ == 0) std::printf("stats query failed: %s\n", e.what());
          }
          const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - q0)
                              .count();
          int64_t prev = worst_us.load();
          while (us > prev && !worst_us.compare_exchange_weak(prev, us)) {
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
        }
      });
    }
    // The writer's load: records at a steady rate, in bursts every 10 ms.
    const int per_tick = std::max(1, records_per_s / 100);
    auto next = std::chrono::steady_clock::now();
    int64_t seq = 0;
    // Built once (GCC 12 misreports -Wrestrict on string literals assigned in the loop).
    RequestRecord proto;
    proto.request_id = std::string("soak-");
    proto.endpoint = std::string("completions");
    proto.model = std::string("m");
    proto.scope = std::string("unified");
    proto.alpha = 0.5;
    proto.finish_reason = std::string("length");
    const std::string moment("moment"), window("window");
    while (std::chrono::steady_clock::now() < until) {
      for (int i = 0; i < per_tick; ++i, ++seq) {
        RequestRecord q = proto;
        q.time_ms = unix_ms();
        q.request_id.append(std::to_string(seq));
        q.policy = seq % 3 ? moment : window;
        q.decode_budget = 64 << (seq % 3);
        q.prompt_tokens = static_cast<int32_t>(seq % 500);
        q.generated_tokens = static_cast<int32_t>(seq % 256);
        q.decode_tokens_per_s = 40.0 + static_cast<double>(seq % 7);
        q.ttft_ms = 10.0 + static_cast<double>(seq % 13);
        if (seq % 10 == 0) {
          for (int l = 0; l < 8; ++l) q.layers.push_back(LayerRecord{l, 10, 20, 3, 4.5, 9});
        }
        w.submit(std::move(q));
        ++r.submitted;
        if (seq % 50 == 0) {
          w.submit(ProbeRecord{unix_ms(), "soak", "m", "", "moment", "unified", 0.5, 64, true, 32,
                               0.01, 0.2, 0.95, 5.0});
          ++r.submitted;
        }
      }
      next += std::chrono::milliseconds(10);
      std::this_thread::sleep_until(next);
    }
    stop.store(true);
    for (auto& t : readers) t.join();
    sampler.join();
    EXPECT_TRUE(w.flush(std::chrono::seconds(30)));
    const TelemetryHealth h = w.health();
    r.written = h.written;
    r.dropped = h.dropped_queue + h.dropped_failed;
    r.retention_deleted = h.retention_deleted;
    r.stats_queries = queries.load();
    r.stats_failures = failures.load();
    r.stats_ms_max = static_cast<double>(worst_us.load()) / 1000.0;
  }  // clean stop: the writer checkpoints and truncates the WAL
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::error_code ec;
  const auto wal = std::filesystem::file_size(path + "-wal", ec);
  r.wal_empty_after_stop = ec || wal == 0;
  r.db_bytes = std::filesystem::file_size(path, ec);
  Database db(path, Database::Mode::kReadOnly);
  r.integrity = db.query_text("PRAGMA integrity_check").value_or("");
  return r;
}

// Runs the soak, prints the figure line and checks it.
inline void expect_bounded_wal(const std::string& path, double seconds, int records_per_s) {
  const SoakResult r = run_wal_soak(path, seconds, records_per_s);
  std::printf(
      "FIGURE DB-8: %.0f s at %d records/s with 2 stats readers: -wal max %llu bytes (limit %llu "
      "= 2 x autocheckpoint, %lld samples), after clean stop %s; %lld records submitted, %lld "
      "written, %lld dropped, %lld deleted by retention; %lld stats queries (%lld failed, worst "
      "%.0f ms); database %llu bytes; integrity_check %s\n",
      r.seconds, records_per_s, static_cast<unsigned long long>(r.wal_max_bytes),
      static_cast<unsigned long long>(r.wal_limit_bytes), static_cast<long long>(r.wal_samples),
      r.wal_empty_after_stop ? "0 bytes" : "NOT EMPTY", static_cast<long long>(r.submitted),
      static_cast<long long>(r.written), static_cast<long long>(r.dropped),
      static_cast<long long>(r.retention_deleted), static_cast<long long>(r.stats_queries),
      static_cast<long long>(r.stats_failures), r.stats_ms_max,
      static_cast<unsigned long long>(r.db_bytes), r.integrity.c_str());
  EXPECT_LT(r.wal_max_bytes, r.wal_limit_bytes);
  EXPECT_TRUE(r.wal_empty_after_stop);
  EXPECT_EQ(r.integrity, "ok");
  EXPECT_EQ(r.dropped, 0);
  EXPECT_EQ(r.stats_failures, 0);
  EXPECT_GT(r.stats_queries, 0);
}

}  // namespace momentkv::telemetry::test
