// Telemetry end to end through the real momentkvd (issue 6): requests are recorded with their
// compression, per-layer statistics and fidelity probes; /v1/stats, `momentkv stats` (daemon and
// --db) and the sqlite3 CLI see them while the daemon runs; a corrupt database at start is
// quarantined (DB-3), a locked one degrades telemetry without failing a request (DB-5), and a
// missing state directory serves with telemetry off and says so (DB-7).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "daemon/telemetry/sqlite.h"
#include "ipc/unix_http_client.h"
#include "tests/support/daemon_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string model() {
  return test::model_path("stories260K/stories260K.gguf");
}

json get(const std::string& sock, const std::string& target, int* status = nullptr) {
  const auto r = ipc::unix_http(sock, "GET", target, "");
  if (status) *status = r.status;
  return json::parse(r.body, nullptr, false);
}

json complete(const std::string& sock, const json& body, int* status) {
  const auto r = ipc::unix_http(sock, "POST", "/v1/completions", body.dump());
  *status = r.status;
  return json::parse(r.body, nullptr, false);
}

// A metric's value from the /metrics text (first line starting with `series`), or -1.
double metric(const std::string& sock, const std::string& series) {
  const std::string text = ipc::unix_http(sock, "GET", "/metrics", "").body;
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

int64_t query(const std::string& db_path, const std::string& sql) {
  telemetry::Database db(db_path, telemetry::Database::Mode::kReadOnly);
  db.busy_timeout(5000);
  return db.query_int(sql).value_or(-1);
}

std::string write_config(const std::string& dir, double probe_rate = 1.0) {
  const std::string cfg = dir + "/momentkvd.toml";
  std::ofstream f(cfg);
  f << "[model]\npath = \"" << model() << "\"\nthreads = 1\n[kv]\ndecode_budget = 32\n"
    << "[telemetry]\nprobe_rate = " << probe_rate << "\nlayer_stats_rate = 1.0\n";
  return cfg;
}

TEST(Telemetry, RequestsProbesAndStatsEndToEnd) {
  const std::string dir = ::testing::TempDir() + "/mkvd-tel-e2e";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/telemetry.db";
  test::DaemonProcess d({"--config", write_config(dir), "--telemetry-db", db}, "tel");
  ASSERT_TRUE(d.ready()) << d.log();
  EXPECT_TRUE(d.wait_notification("telemetry ok", 1000));
  int64_t generated = 0;
  for (int i = 0; i < 4; ++i) {
    int status = 0;
    const json r = complete(d.socket(),
                            {{"prompt", "Once upon a time"},
                             {"max_tokens", 120},
                             {"temperature", 0.8},
                             {"seed", i + 1}},
                            &status);
    ASSERT_EQ(status, 200) << r.dump();
    generated += r["usage"]["completion_tokens"].get<int64_t>();
    EXPECT_EQ(r["compression"]["context_altered"], true);
  }
  // One short request whose budget is never reached: recorded, not probed.
  int status = 0;
  complete(d.socket(), {{"prompt", "Tom"}, {"max_tokens", 8}, {"temperature", 0}}, &status);
  ASSERT_EQ(status, 200);
  generated += 8;
  // Probes run while the daemon is idle: wait for the four.
  const auto until = Clock::now() + 30s;
  while (metric(d.socket(), "momentkv_fidelity_probes_total{outcome=\"completed\"}") < 4 &&
         Clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(metric(d.socket(), "momentkv_fidelity_probes_total{outcome=\"completed\"}"), 4);
  EXPECT_EQ(metric(d.socket(), "momentkv_telemetry_state{state=\"ok\"}"), 1);
  // Wait for the writer to commit the probe rows.
  while (query(db, "SELECT COUNT(*) FROM fidelity_probes") < 16 && Clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }

  // /v1/stats.
  const json s = get(d.socket(), "/v1/stats?since=1h", &status);
  ASSERT_EQ(status, 200) << s.dump();
  EXPECT_EQ(s["requests"], 5);
  ASSERT_EQ(s["groups"].size(), 1u);
  const json& g = s["groups"][0];
  EXPECT_EQ(g["policy"], "moment");
  EXPECT_EQ(g["decode_budget"], 32);
  EXPECT_DOUBLE_EQ(g["alpha"].get<double>(), 0.9);
  EXPECT_EQ(g["requests"], 5);
  EXPECT_EQ(g["generated_tokens"], generated);
  EXPECT_DOUBLE_EQ(g["context_altered_share"].get<double>(), 0.8);
  EXPECT_EQ(g["probes"], 4);
  EXPECT_GT(g["probe_agreement_mean"].get<double>(), 0.5);
  EXPECT_GT(g["tokens_per_s_p50"].get<double>(), 0);
  EXPECT_GT(g["ttft_ms_p95"].get<double>(), 0);
  EXPECT_EQ(s["telemetry"]["state"], "ok");
  // A bad window is refused.
  get(d.socket(), "/v1/stats?since=yesterday", &status);
  EXPECT_EQ(status, 400);

  // The sqlite3 CLI reads the live database.
  const auto cli = test::run_process({"/usr/bin/sqlite3", db, "SELECT COUNT(*) FROM requests;"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.out, "5\n");
  // Per-layer rows of every request (rate 1), one per layer.
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM layer_stats"), 5 * 5);
  // Candidates B/4, B/2, B, 2B of each probe; one of them the request's own.
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM fidelity_probes"), 4 * 4);  // budgets 8 16 32 64
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM fidelity_probes WHERE request_config = 1"), 4);
  EXPECT_EQ(query(db,
                  "SELECT COUNT(DISTINCT model_hash) FROM requests WHERE model_hash LIKE "
                  "'sha256:%'"),
            1);
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM requests WHERE client_pid > 0"), 5);

  // `momentkv stats` through the daemon.
  auto r = test::run_process({test::momentkv_binary(), "stats", "--socket", d.socket()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("telemetry ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5 requests"), std::string::npos) << r.out;

  d.signal(SIGTERM);
  ASSERT_EQ(d.wait(15000), 0) << d.log();
  // A clean stop leaves no WAL behind (DB-8), and start/stop events.
  EXPECT_FALSE(std::filesystem::exists(db + "-wal") && std::filesystem::file_size(db + "-wal") > 0);
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM events WHERE kind IN ('start', 'stop')"), 2);

  // `momentkv stats --db` with no daemon: the same counts.
  r = test::run_process({test::momentkv_binary(), "stats", "--db", db, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json offline = json::parse(r.out);
  EXPECT_EQ(offline["requests"], 5);
  EXPECT_EQ(offline["groups"][0]["generated_tokens"], generated);
  EXPECT_EQ(offline["groups"][0]["probes"], 4);
  std::filesystem::remove_all(dir);
}

TEST(Telemetry, CorruptDatabaseAtStartIsQuarantined) {
  const std::string dir = ::testing::TempDir() + "/mkvd-tel-corrupt";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/telemetry.db";
  {
    std::ofstream f(db, std::ios::binary);
    f << std::string("SQLite format 3\0", 16) << std::string(5000, '\x7f');
  }
  const auto t0 = Clock::now();
  test::DaemonProcess d({"--config", write_config(dir), "--telemetry-db", db}, "telq");
  const double ready_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  ASSERT_TRUE(d.ready()) << d.log();
  std::printf("DB-3: READY %.0f ms after start with a corrupt database\n", ready_ms);
  int quarantined = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with("telemetry.db.corrupt-")) ++quarantined;
  }
  EXPECT_EQ(quarantined, 1);
  int status = 0;
  complete(d.socket(), {{"prompt", "Tom"}, {"max_tokens", 4}}, &status);
  EXPECT_EQ(status, 200);
  d.signal(SIGTERM);
  ASSERT_EQ(d.wait(15000), 0) << d.log();
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM events WHERE kind = 'quarantine'"), 1);
  EXPECT_EQ(query(db, "SELECT COUNT(*) FROM requests"), 1);
  std::filesystem::remove_all(dir);
}

TEST(Telemetry, ALockedDatabaseNeverFailsARequest) {
  const std::string dir = ::testing::TempDir() + "/mkvd-tel-lock";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/telemetry.db";
  test::DaemonProcess d({"--config", write_config(dir, 0.0), "--telemetry-db", db}, "tell");
  ASSERT_TRUE(d.ready()) << d.log();
  // Another process holds the write lock (as `sqlite3 db 'BEGIN IMMEDIATE;'` would).
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t locker = fork();
  if (locker == 0) {
    telemetry::Database h(db, telemetry::Database::Mode::kReadWrite);
    h.busy_timeout(5000);
    h.exec("BEGIN IMMEDIATE");
    (void)!write(ready[1], "y", 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  for (int i = 0; i < 6; ++i) {
    int status = 0;
    const auto t0 = Clock::now();
    complete(d.socket(), {{"prompt", "Once upon a time"}, {"max_tokens", 40}}, &status);
    EXPECT_EQ(status, 200);
    EXPECT_LT(Clock::now() - t0, 2s);  // never waits on the lock
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(metric(d.socket(), "momentkv_telemetry_state{state=\"degraded\"}"), 1);
  kill(locker, SIGKILL);
  waitpid(locker, nullptr, 0);
  // Recovers after the back-off: the next request's row is written.
  const auto until = Clock::now() + 10s;
  while (metric(d.socket(), "momentkv_telemetry_state{state=\"ok\"}") != 1 &&
         Clock::now() < until) {
    int status = 0;
    complete(d.socket(), {{"prompt", "Tom"}, {"max_tokens", 4}}, &status);
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(metric(d.socket(), "momentkv_telemetry_state{state=\"ok\"}"), 1);
  const double dropped =
      metric(d.socket(), "momentkv_telemetry_records_dropped_total{reason=\"write_failed\"}");
  EXPECT_GT(dropped, 0);
  d.signal(SIGTERM);
  ASSERT_EQ(d.wait(15000), 0) << d.log();
  EXPECT_GE(query(db, "SELECT COUNT(*) FROM events WHERE kind = 'telemetry_drops'"), 1);
  std::filesystem::remove_all(dir);
}

TEST(Telemetry, AMissingStateDirectoryServesWithTelemetryOff) {
  const std::string dir = ::testing::TempDir() + "/mkvd-tel-off";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  test::DaemonProcess d(
      {"--config", write_config(dir), "--telemetry-db", dir + "/missing/telemetry.db"}, "telo");
  ASSERT_TRUE(d.ready()) << d.log();
  EXPECT_TRUE(d.wait_notification("telemetry off: directory", 1000));
  int status = 0;
  complete(d.socket(), {{"prompt", "Tom"}, {"max_tokens", 4}}, &status);
  EXPECT_EQ(status, 200);
  const json s = get(d.socket(), "/v1/stats", &status);
  EXPECT_EQ(status, 503);
  EXPECT_EQ(s["error"]["code"], "telemetry_off");
  EXPECT_EQ(metric(d.socket(), "momentkv_telemetry_state{state=\"off\"}"), 1);
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(15000), 0);
  EXPECT_FALSE(std::filesystem::exists(dir + "/missing"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace momentkv
