#include "daemon/telemetry/telemetry.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace momentkv::telemetry {

using Clock = std::chrono::steady_clock;

const char* to_string(TelemetryState s) {
  switch (s) {
    case TelemetryState::kOff:
      return "off";
    case TelemetryState::kOk:
      return "ok";
    case TelemetryState::kDegraded:
      return "degraded";
  }
  return "?";
}

namespace {
// Why the database's directory cannot hold it, or empty.
std::string directory_problem(const std::string& path) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path().empty()
                                        ? std::filesystem::path(".")
                                        : std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return "directory " + dir.string() + " does not exist";
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return "directory " + dir.string() + " is not writable (" + std::strerror(errno) + ")";
  }
  if (access(path.c_str(), F_OK) == 0 && access(path.c_str(), W_OK) != 0) {
    return path + " is read-only";
  }
  return {};
}
}  // namespace

Telemetry::Telemetry(TelemetryOptions options) : options_(std::move(options)) {
  health_.path = options_.path;
  health_.queue_capacity = options_.queue_capacity;
  if (!options_.enabled) {
    set_state(TelemetryState::kOff, "disabled in the configuration");
    return;
  }
  if (const std::string problem = directory_problem(options_.path); !problem.empty()) {
    set_state(TelemetryState::kOff, problem);
    return;
  }
  if (!try_open() && health_.state == TelemetryState::kOff) return;  // a foreign file: no writer
  const auto now = Clock::now();
  next_retention_ = now;
  next_check_ = now + std::chrono::milliseconds(options_.check_interval_ms);
  writer_ = std::thread([this] { run(); });
}

Telemetry::~Telemetry() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void Telemetry::set_state(TelemetryState s, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  health_.state = s;
  health_.reason = reason;
}

bool Telemetry::try_open() {
  try {
    StoreOptions store_options;
    {
      std::lock_guard<std::mutex> lock(mu_);
      store_options = options_.store;
    }
    store_ = std::make_unique<TelemetryStore>(options_.path, store_options);
    if (store_->quarantined()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++health_.quarantines;
      }
      pending_events_.push_back(
          EventRecord{unix_ms(), "quarantine",
                      "the database was corrupt at open; moved to " + *store_->quarantined()});
    }
    set_state(TelemetryState::kOk, "");
    return true;
  } catch (const ForeignFileError& e) {
    store_.reset();
    set_state(TelemetryState::kOff, e.what());
    return false;
  } catch (const std::exception& e) {
    store_.reset();
    set_state(TelemetryState::kDegraded, e.what());
    retry_at_ = Clock::now() + std::chrono::milliseconds(options_.retry_ms);
    return false;
  }
}

bool Telemetry::submit(Record record) {
  std::lock_guard<std::mutex> lock(mu_);
  if (health_.state == TelemetryState::kOff || stopping_) {
    if (options_.enabled) ++health_.dropped_failed;
    return false;
  }
  if (queue_.size() >= options_.queue_capacity) {
    ++health_.dropped_queue;
    return false;
  }
  queue_.push_back(std::move(record));
  health_.queue_peak = std::max(health_.queue_peak, queue_.size());
  cv_.notify_one();
  return true;
}

TelemetryHealth Telemetry::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  TelemetryHealth h = health_;
  h.queue_depth = queue_.size();
  return h;
}

bool Telemetry::flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!writer_.joinable()) return queue_.empty();
  cv_.notify_all();
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !writing_; });
}

void Telemetry::set_commit_listener(std::function<void(int64_t)> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  on_commit_ = std::move(listener);
}

void Telemetry::set_page_limit(int64_t pages) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    page_limit_ = pages;
    options_.store.max_page_count = pages;  // also for a database reopened later
  }
  cv_.notify_all();
}

void Telemetry::quarantine_now(const std::string& why) {
  store_.reset();
  std::string moved;
  try {
    check_not_foreign(options_.path);
  } catch (const ForeignFileError& e) {
    set_state(TelemetryState::kOff, e.what());
    return;
  }
  try {
    moved = quarantine_database(options_.path);
  } catch (const std::exception& e) {
    set_state(TelemetryState::kDegraded, why + "; " + e.what());
    retry_at_ = Clock::now() + std::chrono::milliseconds(options_.retry_ms);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++health_.quarantines;
  }
  pending_events_.push_back(
      EventRecord{unix_ms(), "quarantine", "corrupt database (" + why + ") moved to " + moved});
  try_open();
}

void Telemetry::handle_failure(const SqliteError& e, size_t lost) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    health_.dropped_failed += static_cast<int64_t>(lost);
    health_.state = TelemetryState::kDegraded;
    health_.reason = e.what();
  }
  retry_at_ = Clock::now() + std::chrono::milliseconds(options_.retry_ms);
}

void Telemetry::write_batch(std::vector<Record>& batch) {
  const size_t submitted = batch.size();
  // Events of the writer itself (quarantine, drops) ride in front of the batch.
  std::vector<Record> records = std::move(pending_events_);
  pending_events_.clear();
  int64_t drops = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    drops = health_.dropped_queue + health_.dropped_failed;
  }
  if (drops > drops_reported_) {
    records.push_back(EventRecord{unix_ms(), "telemetry_drops",
                                  std::to_string(drops - drops_reported_) +
                                      " records dropped since the last report (total " +
                                      std::to_string(drops) + ")"});
  }
  const size_t own = records.size();
  for (auto& r : batch) records.push_back(std::move(r));
  batch.clear();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!store_) break;
    try {
      store_->write(records);
      drops_reported_ = drops;
      std::function<void(int64_t)> listener;
      int64_t written = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        health_.written += static_cast<int64_t>(submitted);
        health_.state = TelemetryState::kOk;
        health_.reason.clear();
        written = health_.written;
        listener = on_commit_;
      }
      if (listener) listener(written);
      return;
    } catch (const SqliteError& e) {
      if (e.corrupt() && attempt == 0) {
        quarantine_now(e.what());
        continue;  // once more into the fresh database
      }
      // Keep the writer's own events for the next try; the batch is lost (and counted).
      pending_events_.assign(std::make_move_iterator(records.begin()),
                             std::make_move_iterator(records.begin() + static_cast<long>(own)));
      handle_failure(e, submitted);
      return;
    } catch (const std::exception& e) {
      handle_failure(SqliteError(SQLITE_ERROR, e.what()), submitted);
      return;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  health_.dropped_failed += static_cast<int64_t>(submitted);
}

void Telemetry::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    const bool degraded = health_.state == TelemetryState::kDegraded;
    if (degraded && !stopping_ && Clock::now() < retry_at_) {
      cv_.wait_until(lock, retry_at_, [&] { return stopping_; });
      continue;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(200),
                 [&] { return stopping_ || !queue_.empty(); });
    if (stopping_ && (queue_.empty() || degraded)) {
      health_.dropped_failed += static_cast<int64_t>(queue_.size());
      queue_.clear();
      break;
    }
    if (!store_) {
      lock.unlock();
      try_open();
      lock.lock();
      if (!store_) continue;
    }
    if (page_limit_) {
      const int64_t pages = *page_limit_;
      page_limit_.reset();
      lock.unlock();
      try {
        store_->set_max_page_count(pages);
      } catch (const SqliteError&) {
        // Applied again at the next open.
      }
      lock.lock();
    }
    if (!queue_.empty()) {
      std::vector<Record> batch;
      while (!queue_.empty() && batch.size() < options_.batch_max) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      writing_ = true;
      lock.unlock();
      write_batch(batch);
      lock.lock();
      writing_ = false;
    }
    if (queue_.empty()) idle_cv_.notify_all();
    // Housekeeping only when nothing waits.
    const auto now = Clock::now();
    if (queue_.empty() && store_ && !stopping_ && now >= next_retention_) {
      lock.unlock();
      int64_t deleted = 0;
      try {
        deleted = store_->retention_step(unix_ms());
      } catch (const SqliteError& e) {
        if (e.corrupt()) {
          quarantine_now(e.what());
        } else {
          handle_failure(e, 0);  // shows as degraded; retried after the back-off
        }
      }
      lock.lock();
      health_.retention_deleted += deleted;
      // More to delete: another step soon (after any queued records), else wait an interval.
      next_retention_ =
          deleted > 0 ? now : now + std::chrono::milliseconds(options_.retention_interval_ms);
    }
    if (queue_.empty() && store_ && !stopping_ && options_.check_interval_ms > 0 &&
        now >= next_check_) {
      lock.unlock();
      std::string detail;
      bool ok = true;
      try {
        ok = store_->quick_check(&detail);
      } catch (const SqliteError& e) {
        ok = !e.corrupt();
        detail = e.what();
      }
      if (!ok) quarantine_now(detail);
      lock.lock();
      next_check_ = now + std::chrono::milliseconds(options_.check_interval_ms);
    }
  }
  idle_cv_.notify_all();
  lock.unlock();
  if (store_) {
    try {
      if (!pending_events_.empty()) store_->write(pending_events_);
      store_->checkpoint();
    } catch (const std::exception&) {
      // A clean stop is best effort: the WAL is replayed at the next open.
    }
    store_.reset();
  }
}

}  // namespace momentkv::telemetry
