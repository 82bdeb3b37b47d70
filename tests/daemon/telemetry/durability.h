// kill -9 durability of the telemetry writer (RELIABILITY.md DB-1): a child process writes
// records as fast as it can through Telemetry and reports, after every commit, how many records
// are committed; the parent kills it with SIGKILL at a random moment, then checks that every
// acknowledged record is in the database and that integrity_check passes. The same database
// goes through every trial, so each one also recovers from the previous kill.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include "daemon/telemetry/telemetry.h"

namespace momentkv::telemetry::test {

struct DurabilityResult {
  int trials = 0;
  int64_t acknowledged = 0;  // records acknowledged over all trials
  int64_t lost = 0;          // acknowledged records missing afterwards
  int integrity_failures = 0;
};

inline DurabilityResult run_kill9_trials(const std::string& path, int trials, uint32_t seed) {
  DurabilityResult result;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(5, 120);
  for (int trial = 0; trial < trials; ++trial) {
    const int64_t base = static_cast<int64_t>(trial) * 1'000'000'000;
    int acks[2];
    if (pipe(acks) != 0) break;
    const pid_t pid = fork();
    if (pid == 0) {
      close(acks[0]);
      TelemetryOptions o;
      o.path = path;
      o.queue_capacity = 1024;
      o.batch_max = 64;
      Telemetry t(o);
      // Records are committed in submission order, so "n committed" acknowledges seq < n.
      t.set_commit_listener([&](int64_t n) { (void)!write(acks[1], &n, sizeof n); });
      RequestRecord proto;
      proto.request_id = std::string("kill9-") + std::to_string(trial);
      proto.endpoint = std::string("completions");
      proto.model = std::string("m");
      proto.policy = std::string("moment");
      proto.scope = std::string("unified");
      proto.finish_reason = std::string("length");
      for (int64_t seq = 0;; ++seq) {
        while (t.health().queue_depth > 512) std::this_thread::yield();
        RequestRecord r = proto;
        r.time_ms = base + seq;
        if (!t.submit(std::move(r))) _exit(2);  // nothing may be dropped in this test
      }
    }
    close(acks[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    int64_t acked = 0, n = 0;
    while (read(acks[0], &n, sizeof n) == static_cast<ssize_t>(sizeof n))
      acked = std::max(acked, n);
    close(acks[0]);
    ++result.trials;
    result.acknowledged += acked;
    Database db(path, Database::Mode::kReadWrite);
    db.busy_timeout(5000);
    if (db.query_text("PRAGMA integrity_check").value_or("") != "ok") ++result.integrity_failures;
    // Killed before the schema was committed: nothing can have been acknowledged.
    int64_t present = 0;
    if (db.query_int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'requests'").value_or(0)) {
      Statement s(db, "SELECT COUNT(*) FROM requests WHERE time_ms >= ?1 AND time_ms < ?2");
      s.bind(1, base).bind(2, base + acked);
      present = s.step() ? s.column_int(0) : 0;
    }
    result.lost += acked - present;
  }
  return result;
}

// Runs the trials on a fresh database, prints the figures and checks them.
inline void expect_no_acknowledged_loss(const std::string& path, int trials, uint32_t seed) {
  const auto r = run_kill9_trials(path, trials, seed);
  std::printf("kill -9: %d trials, %lld acknowledged records, %lld lost, %d integrity failures\n",
              r.trials, static_cast<long long>(r.acknowledged), static_cast<long long>(r.lost),
              r.integrity_failures);
  EXPECT_EQ(r.trials, trials);
  EXPECT_GT(r.acknowledged, trials);
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.integrity_failures, 0);
}

}  // namespace momentkv::telemetry::test
