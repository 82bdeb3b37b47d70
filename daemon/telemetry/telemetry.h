// The daemon's telemetry: a bounded queue in front of one writer thread that owns the database.
// submit() never waits on SQLite (it takes a mutex only to push); when the queue is full the
// record is dropped and counted, and the count is written as an event once writing works again.
// A write that fails because the disk is full, the file is locked or I/O fails drops that batch
// (counted), marks telemetry degraded and retries after a back-off; a corrupt database is
// quarantined and replaced by a fresh one; a state directory that is missing or read-only turns
// telemetry off. Serving never depends on any of it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/telemetry/records.h"
#include "daemon/telemetry/telemetry_store.h"

namespace momentkv::telemetry {

struct TelemetryOptions {
  bool enabled = true;
  std::string path;  // the database file
  StoreOptions store;
  size_t queue_capacity = 4096;        // records waiting for the writer
  size_t batch_max = 512;              // records per transaction
  int retry_ms = 2000;                 // back-off after a failed write or open
  int retention_interval_ms = 60'000;  // how often retention runs
  int check_interval_ms = 3'600'000;   // how often PRAGMA quick_check runs; 0 never
};

enum class TelemetryState {
  kOff,       // disabled by configuration, or the directory is missing or read-only
  kOk,        // writing
  kDegraded,  // the last write or open failed; retrying
};
const char* to_string(TelemetryState s);

struct TelemetryHealth {
  TelemetryState state = TelemetryState::kOff;
  std::string reason;  // why it is off or degraded
  std::string path;
  size_t queue_depth = 0, queue_capacity = 0, queue_peak = 0;
  int64_t written = 0;         // records committed
  int64_t dropped_queue = 0;   // dropped because the queue was full
  int64_t dropped_failed = 0;  // dropped because the database refused them (or telemetry is off)
  int64_t quarantines = 0;     // corrupt databases moved aside
  int64_t retention_deleted = 0;
};

class Telemetry {
 public:
  // Opens the database synchronously (so start-up status can name its state); never throws.
  explicit Telemetry(TelemetryOptions options);
  // Writes what is queued (bounded by a short deadline), checkpoints and closes.
  ~Telemetry();
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  // Queues a record; false when it was dropped (queue full or telemetry off). Never blocks on I/O.
  bool submit(Record record);
  TelemetryHealth health() const;
  // Waits until everything submitted so far was written or dropped (tests, clean stop).
  bool flush(std::chrono::milliseconds timeout);
  // Caps the database's pages from the writer thread (PRAGMA max_page_count): the fault tests'
  // full disk. 0 lifts the cap.
  void set_page_limit(int64_t pages);
  // Called on the writer thread after each commit with the total records committed.
  void set_commit_listener(std::function<void(int64_t)> listener);
  const TelemetryOptions& options() const { return options_; }

 private:
  void run();
  bool try_open();  // on the writer thread (or in the constructor); false when not usable
  void write_batch(std::vector<Record>& batch);
  void set_state(TelemetryState s, const std::string& reason);
  void handle_failure(const SqliteError& e, size_t lost);
  void quarantine_now(const std::string& why);

  TelemetryOptions options_;
  std::unique_ptr<TelemetryStore> store_;  // writer thread only (after construction)
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Record> queue_;
  bool stopping_ = false;
  bool writing_ = false;        // a batch is in flight
  TelemetryHealth health_;      // guarded by mu_
  int64_t drops_reported_ = 0;  // drops already written as an event (writer thread)
  std::vector<Record> pending_events_;
  std::optional<int64_t> page_limit_;  // guarded by mu_; applied by the writer  // the writer's own
                                       // events (writer thread)
  std::function<void(int64_t)> on_commit_;
  std::chrono::steady_clock::time_point retry_at_, next_retention_, next_check_;
  std::thread writer_;
};

}  // namespace momentkv::telemetry
