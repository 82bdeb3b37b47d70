// RELIABILITY.md DB-6: every file operation of the telemetry path fails in turn. A fault-injecting
// VFS (tests/support/fault_vfs.h) fails the N-th xRead / xWrite / xTruncate / xSync / xFileSize,
// once or for good, with SQLITE_IOERR_* or SQLITE_FULL, for N = 1 ... the calls of a fault-free
// run (SQLite's own I/O-error loops). Two levels:
//  - the store, single-threaded and deterministic: open + schema creation, batches of requests
//    (with layer rows), probes and events, a retention step that deletes rows, quick_check and
//    the checkpoint; then the fault clears and the same store must write again;
//  - the writer thread (Telemetry): it must go degraded while the fault lasts and recover by
//    itself when it clears.
// After every run: no crash or exception escaped, integrity_check is ok on the file, every
// acknowledged row is there (and nothing that was not acknowledged), the fault never got a healthy
// file quarantined.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/telemetry/schema.h"
#include "daemon/telemetry/telemetry.h"
#include "tests/support/fault_vfs.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::FaultVfs;
using test::TempDir;

constexpr int64_t kDayMs = 86'400'000;

// Where the runs' databases go: /dev/shm when there is one. A run syncs a few times and the loop
// makes over a thousand runs; on a disk the fsyncs alone take tens of seconds.
std::filesystem::path scratch() {
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec) && access("/dev/shm", W_OK) == 0) {
    return "/dev/shm";
  }
  return std::filesystem::temp_directory_path();
}

struct FaultKind {
  const char* name;
  unsigned ops;
  FaultVfs::Mode mode;
  FaultVfs::Error error;
};

std::vector<FaultKind> all_kinds() {
  std::vector<FaultKind> kinds;
  const struct {
    const char* name;
    unsigned ops;
  } ops[] = {{"xRead", FaultVfs::kRead},
             {"xWrite", FaultVfs::kWrite},
             {"xTruncate", FaultVfs::kTruncate},
             {"xSync", FaultVfs::kSync},
             {"xFileSize", FaultVfs::kFileSize}};
  for (const auto& op : ops) {
    for (const auto mode : {FaultVfs::Mode::kOnce, FaultVfs::Mode::kForever}) {
      kinds.push_back({op.name, op.ops, mode, FaultVfs::Error::kIo});
    }
  }
  // A full disk shows up on writes.
  kinds.push_back({"xWrite", FaultVfs::kWrite, FaultVfs::Mode::kOnce, FaultVfs::Error::kFull});
  kinds.push_back({"xWrite", FaultVfs::kWrite, FaultVfs::Mode::kForever, FaultVfs::Error::kFull});
  return kinds;
}

std::string describe(const FaultKind& k) {
  std::string s = k.name;
  s += k.mode == FaultVfs::Mode::kOnce ? " once" : " forever";
  s += k.error == FaultVfs::Error::kFull ? " SQLITE_FULL" : " SQLITE_IOERR";
  return s;
}

RequestRecord request(const std::string& id, int64_t time_ms, int n_layers = 0) {
  RequestRecord r;
  r.time_ms = time_ms;
  r.request_id = id;
  r.endpoint = "completions";
  r.model = "m";
  r.policy = "moment";
  r.scope = "unified";
  r.finish_reason = "length";
  r.error.assign(300, 'e');  // a few rows per page: batches span several pages
  for (int l = 0; l < n_layers; ++l) r.layers.push_back(LayerRecord{l, 1.0, 2.0, 3, 4.0, 5});
  return r;
}

// Ten requests named `prefix`-i; `old` ones are past the retention age.
std::vector<Record> batch(const std::string& prefix, bool old, int n_layers = 0) {
  std::vector<Record> b;
  const int64_t t = old ? 1000 : unix_ms();
  for (int i = 0; i < 10; ++i) {
    b.push_back(request(prefix + "-" + std::to_string(i), t + i, n_layers));
  }
  return b;
}

StoreOptions store_options() {
  StoreOptions o;
  o.busy_timeout_ms = 100;
  o.max_age_ms = kDayMs;
  o.retention_chunk = 7;  // several steps for the old rows
  o.vfs = FaultVfs::kName;
  o.wal_checkpoint_pages = 8;  // the store's own checkpoints run within the loop too
  o.wal_checkpoint_wait_ms = 100;
  return o;
}

// What the file holds, read through the default VFS.
struct FileState {
  bool integrity_ok = false;
  std::string integrity;
  int64_t live_rows = -1, old_rows = -1;
  int schema_version = -1;
};

FileState inspect(const std::string& path) {
  FileState s;
  Database db(path, Database::Mode::kReadWrite);
  db.busy_timeout(1000);
  s.integrity = db.query_text("PRAGMA integrity_check").value_or("");
  s.integrity_ok = s.integrity == "ok";
  s.schema_version = schema_version(db);
  if (db.query_int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'requests'").value_or(0)) {
    s.live_rows =
        db.query_int("SELECT COUNT(*) FROM requests WHERE request_id LIKE 'live%'").value_or(-1);
    s.old_rows =
        db.query_int("SELECT COUNT(*) FROM requests WHERE request_id LIKE 'old%'").value_or(-1);
  } else {
    s.live_rows = 0;
    s.old_rows = 0;
  }
  return s;
}

int quarantine_files(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".corrupt-") != std::string::npos && name.find("-wal") == std::string::npos &&
        name.find("-shm") == std::string::npos) {
      ++n;
    }
  }
  return n;
}

struct Totals {
  int64_t runs = 0, faults = 0, failed_ops = 0, acknowledged = 0, lost = 0, extra = 0;
  int64_t integrity_failures = 0, quarantines = 0, unexpected_exceptions = 0;
  int64_t not_recovered = 0, degraded_runs = 0, tolerated = 0;
  double worst_recovery_ms = 0;
};

// One run of the store scenario with the fault armed at call `n` (0: count only). Returns the
// armed calls seen.
int64_t store_run(const FaultKind& kind, int64_t n, Totals& t) {
  TempDir dir("momentkv-faultvfs", scratch());
  const std::string path = dir.file("t.db");
  FaultVfs& vfs = FaultVfs::instance();
  int64_t acked = 0;
  std::unique_ptr<TelemetryStore> store;
  std::string unexpected;
  // A step that fails with SQLITE_IOERR/FULL is what the fault is for; anything else is noted.
  auto step = [&](const char* what, auto&& fn) -> bool {
    try {
      fn();
      return true;
    } catch (const SqliteError& e) {
      ++t.failed_ops;
      if (!e.transient()) unexpected += std::string(what) + ": " + e.what() + "; ";
    } catch (const std::exception& e) {
      ++t.failed_ops;
      unexpected += std::string(what) + ": " + e.what() + "; ";
    }
    return false;
  };
  auto open = [&] {
    step("open", [&] { store = std::make_unique<TelemetryStore>(path, store_options()); });
    if (store && store->quarantined()) ++t.quarantines;
  };

  vfs.arm(kind.ops, n, kind.mode, kind.error);
  open();
  if (!store) open();  // the writer's retry
  if (store) {
    step("write old", [&] { store->write(batch("old", true)); });
    if (step("write live-a", [&] { store->write(batch("live-a", false)); })) acked += 10;
    for (int i = 0; i < 3; ++i) {
      step("retention", [&] { store->retention_step(unix_ms()); });
    }
    std::vector<Record> mixed = batch("live-b", false, 4);
    mixed.push_back(ProbeRecord{unix_ms(), "live-b-0", "m", "", "moment", "unified", 0.5, 32, true,
                                16, 0.01, 0.1, 0.9, 3.0});
    mixed.push_back(EventRecord{unix_ms(), "start", "fault test"});
    if (step("write live-b", [&] { store->write(mixed); })) acked += 10;
    step("quick_check", [&] {
      std::string detail;
      // A fault while checking is an error to retry, never a verdict of corruption.
      if (!store->quick_check(&detail)) unexpected += "quick_check said corrupt: " + detail + "; ";
    });
    step("checkpoint", [&] { store->checkpoint(); });
  }
  const int64_t calls = vfs.calls();
  t.faults += vfs.faults();
  vfs.disarm();

  // The fault is gone: the same store (or a new one) must work again.
  if (!store) open();
  if (store) {
    if (step("write live-c", [&] { store->write(batch("live-c", false)); })) {
      acked += 10;
    } else {
      ++t.not_recovered;
    }
    step("retention after", [&] { store->retention_step(unix_ms()); });
    step("checkpoint after", [&] { store->checkpoint(); });
  } else {
    ++t.not_recovered;
  }
  store.reset();

  const FileState s = inspect(path);
  ++t.runs;
  t.acknowledged += acked;
  if (!s.integrity_ok) ++t.integrity_failures;
  if (s.live_rows < acked) t.lost += acked - s.live_rows;
  if (s.live_rows > acked) t.extra += s.live_rows - acked;
  t.quarantines += quarantine_files(dir.file(""));
  if (!unexpected.empty()) ++t.unexpected_exceptions;
  EXPECT_TRUE(s.integrity_ok) << describe(kind) << " N=" << n << ": " << s.integrity;
  EXPECT_EQ(s.live_rows, acked) << describe(kind) << " N=" << n;
  EXPECT_EQ(s.schema_version, kSchemaVersion) << describe(kind) << " N=" << n;
  EXPECT_TRUE(unexpected.empty()) << describe(kind) << " N=" << n << ": " << unexpected;
  return calls;
}

TEST(FaultVfs, PassesThroughWhenDisarmed) {
  TempDir dir;
  StoreOptions o = store_options();
  FaultVfs::instance().arm(FaultVfs::kRead | FaultVfs::kWrite | FaultVfs::kSync, 0,
                           FaultVfs::Mode::kOnce, FaultVfs::Error::kIo);
  {
    TelemetryStore store(dir.file("t.db"), o);
    store.write(batch("live", false));
    store.checkpoint();
  }
  EXPECT_GT(FaultVfs::instance().calls(), 0);
  EXPECT_EQ(FaultVfs::instance().faults(), 0);
  FaultVfs::instance().disarm();
  EXPECT_EQ(inspect(dir.file("t.db")).live_rows, 10);
}

// Runs `run(kind, N, t)` for N = 1, 2, ... until the N-th call no longer comes (every fault point
// of `kind` covered; a fault-free run first counts the calls), adding to `points` and `ranges`.
void sweep(const FaultKind& kind, int64_t (*run)(const FaultKind&, int64_t, Totals&), Totals& t,
           int64_t& points, std::string& ranges) {
  Totals calibrate;
  const int64_t k = run(kind, 0, calibrate);  // the calls of a fault-free run
  ASSERT_EQ(calibrate.faults, 0);
  int64_t n = 1;
  for (;; ++n) {
    const int64_t faults_before = t.faults;
    run(kind, n, t);
    if (t.faults == faults_before) break;  // past the last call: every point covered
    ASSERT_LT(n, 4 * k + 100) << describe(kind) << ": the fault keeps firing";
  }
  points += n - 1;
  ranges += std::string(ranges.empty() ? "" : ", ") + describe(kind) +
            (n > 1 ? " N=1.." + std::to_string(n - 1) : std::string(" (no calls)"));
}

TEST(FaultVfs, StoreSurvivesEveryFaultPoint) {
  Totals t;
  std::string ranges;
  int64_t points = 0;
  const auto t0 = Clock::now();
  for (const FaultKind& kind : all_kinds()) {
    sweep(kind, store_run, t, points, ranges);
    if (HasFatalFailure()) return;
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "FIGURE DB-6 (store): %lld fault points covered (%s) in %.1f s; %lld faults injected, %lld "
      "operations failed; 0 crashes; %lld unexpected errors; %lld integrity_check failures; "
      "%lld acknowledged rows, %lld lost, %lld unacknowledged present; %lld quarantines; "
      "%lld runs where the store did not write again after the fault cleared\n",
      static_cast<long long>(points), ranges.c_str(), s, static_cast<long long>(t.faults),
      static_cast<long long>(t.failed_ops), static_cast<long long>(t.unexpected_exceptions),
      static_cast<long long>(t.integrity_failures), static_cast<long long>(t.acknowledged),
      static_cast<long long>(t.lost), static_cast<long long>(t.extra),
      static_cast<long long>(t.quarantines), static_cast<long long>(t.not_recovered));
  EXPECT_EQ(t.integrity_failures, 0);
  EXPECT_EQ(t.lost, 0);
  EXPECT_EQ(t.extra, 0);
  EXPECT_EQ(t.quarantines, 0);
  EXPECT_EQ(t.not_recovered, 0);
  EXPECT_EQ(t.unexpected_exceptions, 0);
}

// One run of the writer thread with the fault armed at call `n` for good (0: count only).
int64_t writer_run(const FaultKind& kind, int64_t n, Totals& t) {
  TempDir dir("momentkv-faultvfs", scratch());
  const std::string path = dir.file("t.db");
  FaultVfs& vfs = FaultVfs::instance();
  TelemetryOptions o;
  o.path = path;
  o.store = store_options();
  o.retry_ms = 5;
  o.retention_interval_ms = 0;
  o.check_interval_ms = 0;
  int64_t submitted = 0, calls = 0, old_written = 0;
  bool degraded = false, recovered = false;
  TelemetryHealth h;
  {
    vfs.arm(kind.ops, n, kind.mode, kind.error);
    Telemetry w(o);
    // Records wait in the queue while the database cannot be opened: flush() returns only once
    // they are written or dropped, so the batches stop at the first sign of trouble.
    auto submit = [&](std::vector<Record> b) {
      for (auto& r : b) {
        w.submit(std::move(r));
        ++submitted;
      }
      return w.flush(2s);
    };
    // Old rows first, alone: retention deletes them, so the live rows written are counted from
    // what was written after them.
    bool old_settled = false;
    if (w.health().state == TelemetryState::kOk) {
      old_settled = submit(batch("old", true));
      old_written = w.health().written;
    }
    for (int k = 1; old_settled && k < 4 && w.health().state == TelemetryState::kOk; ++k) {
      // Live ones, live ones with layer rows, and one more write after whatever failed: it
      // must meet the fault too.
      if (!submit(batch("live-" + std::to_string(k), false, k == 2 ? 4 : 0))) break;
    }
    if (vfs.faults() > 0 && w.health().state == TelemetryState::kOk) {
      submit(batch("live-e", false));  // the fault hit housekeeping after the last batch
    }
    calls = vfs.calls();
    const int64_t faults = vfs.faults();
    t.faults += faults;
    const TelemetryHealth during = w.health();
    degraded = during.state == TelemetryState::kDegraded;
    if (faults > 0 && !degraded) {
      // SQLite rode over the fault (a call whose failure it tolerates, e.g. while shrinking the
      // WAL): then nothing may have been lost either.
      ++t.tolerated;
      EXPECT_EQ(during.dropped_failed, 0) << describe(kind) << " N=" << n;
    }
    vfs.disarm();
    const auto t0 = Clock::now();
    int i = 0;
    while (Clock::now() - t0 < 3s) {
      std::vector<Record> one;
      one.push_back(request("live-d-" + std::to_string(i++), unix_ms()));
      submit(std::move(one));
      if (w.health().state == TelemetryState::kOk && w.health().written > 0) {
        recovered = true;
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (degraded) t.worst_recovery_ms = std::max(t.worst_recovery_ms, ms);
    h = w.health();
  }  // clean stop: checkpoint
  const FileState s = inspect(path);
  ++t.runs;
  if (degraded) ++t.degraded_runs;
  if (!recovered) ++t.not_recovered;
  // Every live request written is in the file, and nothing else (the old ones may be deleted
  // by retention).
  const int64_t live_written = h.written - old_written;
  t.acknowledged += live_written;
  if (s.live_rows < live_written) t.lost += live_written - s.live_rows;
  if (s.live_rows > live_written) t.extra += s.live_rows - live_written;
  EXPECT_LE(s.old_rows, old_written) << describe(kind) << " N=" << n;
  if (!s.integrity_ok) ++t.integrity_failures;
  t.quarantines += h.quarantines;
  EXPECT_TRUE(recovered) << describe(kind) << " N=" << n << ": " << h.reason;
  EXPECT_TRUE(s.integrity_ok) << describe(kind) << " N=" << n << ": " << s.integrity;
  EXPECT_EQ(s.live_rows, live_written) << describe(kind) << " N=" << n;
  EXPECT_EQ(h.written + h.dropped_failed + h.dropped_queue, submitted)
      << describe(kind) << " N=" << n;
  EXPECT_EQ(h.quarantines, 0) << describe(kind) << " N=" << n << ": " << h.reason;
  EXPECT_FALSE(std::filesystem::exists(path + "-wal") &&
               std::filesystem::file_size(path + "-wal") > 0)
      << describe(kind) << " N=" << n << ": the clean stop left a WAL";
  return calls;
}

TEST(FaultVfs, WriterDegradesAndRecoversAtEveryFaultPoint) {
  Totals t;
  std::string ranges;
  int64_t points = 0;
  const auto t0 = Clock::now();
  for (const FaultKind& kind : all_kinds()) {
    if (kind.mode != FaultVfs::Mode::kForever) continue;
    sweep(kind, writer_run, t, points, ranges);
    if (HasFatalFailure()) return;
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "FIGURE DB-6 (writer): %lld fault points covered (%s) in %.1f s; degraded in %lld runs "
      "(%lld faults tolerated by SQLite without a failed write), recovered in all but %lld (worst "
      "%.0f ms after the fault cleared, back-off 5 ms); "
      "%lld acknowledged rows, %lld lost, %lld unacknowledged present; %lld integrity_check "
      "failures; %lld quarantines\n",
      static_cast<long long>(points), ranges.c_str(), s, static_cast<long long>(t.degraded_runs),
      static_cast<long long>(t.tolerated), static_cast<long long>(t.not_recovered),
      t.worst_recovery_ms, static_cast<long long>(t.acknowledged), static_cast<long long>(t.lost),
      static_cast<long long>(t.extra), static_cast<long long>(t.integrity_failures),
      static_cast<long long>(t.quarantines));
  EXPECT_EQ(t.not_recovered, 0);
  EXPECT_EQ(t.integrity_failures, 0);
  EXPECT_EQ(t.lost, 0);
  EXPECT_EQ(t.extra, 0);
  EXPECT_EQ(t.quarantines, 0);
}

}  // namespace
}  // namespace momentkv::telemetry
