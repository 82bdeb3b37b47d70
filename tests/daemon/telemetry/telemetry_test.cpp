// The writer thread: batching, queue overflow accounting, and the failure modes of
// RELIABILITY.md DB-2 (disk full), DB-4 (corrupt at run time), DB-5 (locked by another process),
// DB-7 (missing or read-only directory), DB-9 (queue overflow).
#include "daemon/telemetry/telemetry.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::TempDir;

RequestRecord request(int i, size_t error_bytes = 0) {
  RequestRecord r;
  r.time_ms = unix_ms();
  r.request_id = "cmpl-";
  r.request_id.append(std::to_string(i));
  r.endpoint = "completions";
  r.model = "m";
  r.policy = "moment";
  r.scope = "unified";
  r.finish_reason = "length";
  r.error.assign(error_bytes, 'e');
  return r;
}

int64_t count(const std::string& path, const std::string& sql) {
  Database db(path, Database::Mode::kReadOnly);
  db.busy_timeout(5000);
  return db.query_int(sql).value_or(-1);
}

TelemetryOptions options(const std::string& path) {
  TelemetryOptions o;
  o.path = path;
  o.retry_ms = 100;
  o.store.busy_timeout_ms = 100;
  return o;
}

// Holds the database's write lock from a child process (as `sqlite3 db 'BEGIN IMMEDIATE;'` would)
// until the returned pid is killed. The child runs this test binary anew (kLocker below): a fork
// of a process with threads may only exec, since the Telemetry writer thread may hold one of
// SQLite's mutexes at the fork, and a child that then used SQLite waited on it forever.
pid_t lock_from_another_process(const std::string& path) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  const std::string db_env = "MOMENTKV_TEST_LOCKER_DB=" + path;
  const std::string fd_env = "MOMENTKV_TEST_LOCKER_FD=" + std::to_string(ready[1]);
  std::string name = "telemetry_test_locker";
  char* const argv[] = {name.data(), nullptr};
  char* const envp[] = {const_cast<char*>(db_env.c_str()), const_cast<char*>(fd_env.c_str()),
                        nullptr};
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    execve("/proc/self/exe", argv, envp);
    _exit(127);
  }
  close(ready[1]);
  char c = 0;
  const bool locked = read(ready[0], &c, 1) == 1;
  close(ready[0]);
  if (!locked) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
  }
  return pid;
}

// In lock_from_another_process's child, before main: take the lock, say so, wait to be killed.
[[maybe_unused]] const bool kLocker = [] {
  const char* path = std::getenv("MOMENTKV_TEST_LOCKER_DB");
  const char* fd = std::getenv("MOMENTKV_TEST_LOCKER_FD");
  if (path == nullptr || fd == nullptr) return false;
  Database db(path, Database::Mode::kReadWrite);
  db.exec("BEGIN IMMEDIATE");
  db.exec("INSERT INTO events (time_ms, kind, detail) VALUES (0, 'lock', '')");
  const char ok = 'y';
  (void)!write(std::atoi(fd), &ok, 1);
  for (;;) pause();
}();

void release(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST(Telemetry, WritesWhatIsSubmittedInBatches) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  std::atomic<int> commits{0};
  Telemetry t(options(path));
  ASSERT_EQ(t.health().state, TelemetryState::kOk);
  t.set_commit_listener([&](int64_t) { ++commits; });
  // The first record goes alone; while another process holds the lock the rest accumulate and
  // are written in transactions of up to batch_max records.
  const pid_t locker = lock_from_another_process(path);
  ASSERT_GT(locker, 0) << "could not start the process that holds the lock";
  for (int i = 0; i < 1500; ++i) ASSERT_TRUE(t.submit(request(i)));
  release(locker);
  ASSERT_TRUE(t.flush(10s));
  const TelemetryHealth h = t.health();
  EXPECT_EQ(h.written + h.dropped_failed, 1500);
  EXPECT_EQ(count(path, "SELECT COUNT(*) FROM requests"), h.written);
  EXPECT_GE(h.written, 1000);  // at most the batches that met the lock were lost
  EXPECT_LE(commits.load(), 8);
  EXPECT_EQ(h.dropped_queue, 0);
}

TEST(Telemetry, QueueOverflowIsBoundedAndCountedExactly) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  TelemetryOptions o = options(path);
  o.queue_capacity = 64;
  o.store.busy_timeout_ms = 2000;  // the writer waits on the lock, the queue fills
  Telemetry t(o);
  const pid_t locker = lock_from_another_process(path);
  ASSERT_GT(locker, 0) << "could not start the process that holds the lock";
  int accepted = 0;
  for (int i = 0; i < 1000; ++i) accepted += t.submit(request(i)) ? 1 : 0;
  const TelemetryHealth during = t.health();
  EXPECT_LE(during.queue_depth, 64u);
  EXPECT_LE(during.queue_peak, 64u);
  EXPECT_EQ(during.dropped_queue, 1000 - accepted);
  EXPECT_LE(accepted, 2 * 64);  // the queue plus the batch in flight
  release(locker);
  ASSERT_TRUE(t.flush(10s));
  const TelemetryHealth h = t.health();
  // Every record is either in the database or counted as dropped.
  EXPECT_EQ(count(path, "SELECT COUNT(*) FROM requests") + h.dropped_queue + h.dropped_failed,
            1000);
  // And the drops were reported in the database as an event.
  ASSERT_TRUE(t.submit(request(2000)));
  ASSERT_TRUE(t.flush(10s));
  Database db(path, Database::Mode::kReadOnly);
  const std::string last =
      db.query_text("SELECT detail FROM events WHERE kind = 'telemetry_drops' ORDER BY id DESC")
          .value_or("");
  EXPECT_NE(last.find("(total " + std::to_string(h.dropped_queue + h.dropped_failed) + ")"),
            std::string::npos)
      << last;
}

TEST(Telemetry, SubmitNeverWaitsForALockedDatabase) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  TelemetryOptions o = options(path);
  o.store.busy_timeout_ms = 1000;
  Telemetry t(o);
  ASSERT_TRUE(t.submit(request(0)));
  ASSERT_TRUE(t.flush(5s));
  const pid_t locker = lock_from_another_process(path);
  ASSERT_GT(locker, 0) << "could not start the process that holds the lock";
  std::vector<double> took_us;
  const auto until = Clock::now() + 2500ms;
  int i = 1;
  while (Clock::now() < until) {
    const auto t0 = Clock::now();
    t.submit(request(i++));
    took_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    std::this_thread::sleep_for(2ms);
  }
  const TelemetryHealth locked = t.health();
  release(locker);
  // A mutex and a push, never the 1,000 ms busy wait. The writer retried through the lock for
  // 2.5 s, so a submit that waited on it would take a good part of a second. A single submit can
  // still be preempted on two busy cores (5.4 ms seen in the plain build, 5.45 ms under a
  // sanitizer), hence the worst case is held to a quarter of the busy wait and the median to 1 ms.
  std::sort(took_us.begin(), took_us.end());
  ASSERT_FALSE(took_us.empty());
  EXPECT_LT(took_us.back(), 250000.0);
  EXPECT_LT(took_us[took_us.size() / 2], 1000.0);
  EXPECT_EQ(locked.state, TelemetryState::kDegraded);
  EXPECT_NE(locked.reason.find("locked"), std::string::npos) << locked.reason;
  EXPECT_GT(locked.dropped_failed, 0);
  // Recovers once the lock is gone.
  const auto deadline = Clock::now() + 5s;
  while (t.health().state != TelemetryState::kOk && Clock::now() < deadline) {
    t.submit(request(i++));
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(t.health().state, TelemetryState::kOk);
}

TEST(Telemetry, DiskFullDegradesThenRecoversWhenSpaceReturns) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  Telemetry t(options(path));
  ASSERT_TRUE(t.submit(request(0)));
  ASSERT_TRUE(t.flush(5s));
  const int64_t pages = count(path, "PRAGMA page_count");
  t.set_page_limit(pages + 2);
  // Records of ~4 KB fill two pages at once.
  for (int i = 1; i <= 20; ++i) {
    t.submit(request(i, 4000));
    t.flush(5s);
  }
  TelemetryHealth full = t.health();
  EXPECT_EQ(full.state, TelemetryState::kDegraded);
  EXPECT_NE(full.reason.find("full"), std::string::npos) << full.reason;
  EXPECT_GT(full.dropped_failed, 0);
  // Space returns: within one back-off period the next batch is written.
  t.set_page_limit(0);
  const auto t0 = Clock::now();
  while (t.health().state != TelemetryState::kOk && Clock::now() - t0 < 5s) {
    t.submit(request(100, 4000));
    t.flush(5s);
  }
  const double recovery_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  EXPECT_EQ(t.health().state, TelemetryState::kOk);
  EXPECT_LT(recovery_ms, 100.0 + 500.0);  // retry_ms + slack
  const TelemetryHealth h = t.health();
  EXPECT_EQ(count(path, "SELECT COUNT(*) FROM requests"), h.written);
  Database db(path, Database::Mode::kReadOnly);
  EXPECT_EQ(db.query_text("PRAGMA integrity_check").value(), "ok");
}

TEST(Telemetry, ACorruptDatabaseAtRunTimeIsQuarantinedAndReplaced) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  TelemetryOptions o = options(path);
  o.check_interval_ms = 50;
  Telemetry t(o);
  for (int i = 0; i < 2000; ++i) t.submit(request(i));
  ASSERT_TRUE(t.flush(10s));
  {
    Database db(path, Database::Mode::kReadWrite);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    for (long page = 4; page < 12; ++page) {
      f.seekp(page * 4096);
      f.write(std::string(64, '\xA5').data(), 64);
    }
  }
  const auto deadline = Clock::now() + 5s;
  while (t.health().quarantines == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(t.health().quarantines, 1);
  ASSERT_TRUE(t.submit(request(5000)));
  ASSERT_TRUE(t.flush(5s));
  EXPECT_EQ(t.health().state, TelemetryState::kOk);
  EXPECT_EQ(count(path, "SELECT COUNT(*) FROM requests"), 1);
  EXPECT_EQ(count(path, "SELECT COUNT(*) FROM events WHERE kind = 'quarantine'"), 1);
  int moved = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    if (e.path().filename().string().starts_with("t.db.corrupt-") &&
        e.path().extension() != ".db-wal") {
      ++moved;
    }
  }
  EXPECT_GE(moved, 1);
}

TEST(Telemetry, AMissingDirectoryTurnsTelemetryOffWithAReason) {
  TempDir dir;
  Telemetry t(options(dir.file("nowhere/t.db")));
  const TelemetryHealth h = t.health();
  EXPECT_EQ(h.state, TelemetryState::kOff);
  EXPECT_NE(h.reason.find("does not exist"), std::string::npos) << h.reason;
  EXPECT_FALSE(t.submit(request(1)));
  EXPECT_EQ(t.health().dropped_failed, 1);
}

TEST(Telemetry, AReadOnlyDirectoryTurnsTelemetryOff) {
  TempDir dir;
  const std::string sub = dir.file("ro");
  std::filesystem::create_directory(sub);
  std::filesystem::permissions(
      sub, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec |
               std::filesystem::perms::group_read | std::filesystem::perms::group_exec |
               std::filesystem::perms::others_read | std::filesystem::perms::others_exec);
  // Root writes anywhere: check as an unprivileged user in a child.
  const pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    Telemetry t(options(sub + "/t.db"));
    const TelemetryHealth h = t.health();
    if (h.state != TelemetryState::kOff) _exit(1);
    if (h.reason.find("not writable") == std::string::npos) _exit(2);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Telemetry, AForeignFileAtThePathTurnsTelemetryOff) {
  TempDir dir;
  const std::string path = dir.file("model.gguf");
  std::ofstream(path, std::ios::binary) << "GGUF and then weights";
  Telemetry t(options(path));
  const TelemetryHealth h = t.health();
  EXPECT_EQ(h.state, TelemetryState::kOff);
  EXPECT_NE(h.reason.find("not a SQLite database"), std::string::npos) << h.reason;
  EXPECT_EQ(h.quarantines, 0);
  EXPECT_FALSE(t.submit(request(1)));
}

TEST(Telemetry, DisabledByConfigurationWritesNothingAndCountsNothing) {
  TempDir dir;
  TelemetryOptions o = options(dir.file("t.db"));
  o.enabled = false;
  Telemetry t(o);
  EXPECT_EQ(t.health().state, TelemetryState::kOff);
  EXPECT_FALSE(t.submit(request(1)));
  EXPECT_EQ(t.health().dropped_failed, 0);
  EXPECT_FALSE(std::filesystem::exists(dir.file("t.db")));
}

TEST(Telemetry, ACleanStopLeavesAnEmptyWal) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  {
    Telemetry t(options(path));
    for (int i = 0; i < 300; ++i) t.submit(request(i));
  }
  EXPECT_EQ(count(path, "SELECT COUNT(*) FROM requests"), 300);
  EXPECT_FALSE(std::filesystem::exists(path + "-wal") &&
               std::filesystem::file_size(path + "-wal") > 0);
}

}  // namespace
}  // namespace momentkv::telemetry
