// RELIABILITY.md §1.5 SD-3 … SD-6 and §2.3 US-1 against the real momentkvd serving stories260K,
// driven as systemd drives it: a datagram NOTIFY_SOCKET whose messages are timestamped on
// arrival, WATCHDOG_USEC, kill -HUP and kill -TERM; US-1 connects as uid 65534 (fork, setuid).
// Sized for CI (2 cores, also under ASan+UBSan): the watchdog runs 10 s instead of 20 s with the
// same ping-rate threshold (≥ 0.95 pings/s, max gap ≤ 1.0 s). Each test prints
// `FIGURE ID: ...` with what it measured and asserts the thresholds; timing thresholds that a
// sanitizer's slowdown can miss are asserted in plain builds only.
#include <grp.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cmath>

#include "tests/reliability/socket_fault_scenarios.h"

namespace momentkv::test::socket_faults {
namespace {

using TimePoint = DaemonProcess::Clock::time_point;

double ms_between(TimePoint a, TimePoint b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// momentkvd's command line on dir/d.sock with the telemetry database in `dir` (or off).
DaemonProcess::Command daemon_command(const TempDir& dir, const std::string& config, bool telemetry,
                                      bool wait_ready = true) {
  std::vector<std::string> argv = {
      momentkvd_binary(), "--socket", dir.file("d.sock"), "--config", config,
      "--model",          model(),    "--threads",        "1"};
  argv.insert(argv.end(),
              {"--telemetry-db", telemetry ? dir.file("telemetry.db") : std::string("off")});
  return DaemonProcess::Command{argv, dir.file("d.sock"), wait_ready};
}

// Reads notifications for `ms` milliseconds (each is timestamped as it arrives).
void listen_for(DaemonProcess& d, int ms) {
  d.wait_notification("\x01never sent", ms);
}

// Indices of the notifications that contain `text`.
std::vector<size_t> find_all(DaemonProcess& d, const std::string& text) {
  std::vector<size_t> out;
  const auto& m = d.notifications();
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i].find(text) != std::string::npos) out.push_back(i);
  }
  return out;
}

// Arrival times of the WATCHDOG=1 pings within [from, to].
std::vector<TimePoint> pings(DaemonProcess& d, TimePoint from, TimePoint to) {
  std::vector<TimePoint> out;
  const auto& m = d.notifications();
  const auto& t = d.notification_times();
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i].find("WATCHDOG=1") != std::string::npos && t[i] >= from && t[i] <= to) {
      out.push_back(t[i]);
    }
  }
  return out;
}

// PRAGMA integrity_check of an SQLite file ("ok" when sound).
std::string integrity_check(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    const std::string e = db ? sqlite3_errmsg(db) : "cannot open";
    sqlite3_close(db);
    return e;
  }
  std::string result;
  char* err = nullptr;
  sqlite3_exec(
      db, "PRAGMA integrity_check",
      [](void* out, int n, char** values, char**) {
        auto& r = *static_cast<std::string*>(out);
        if (!r.empty()) r += "; ";
        r += n > 0 && values[0] ? values[0] : "";
        return 0;
      },
      &result, &err);
  if (err) {
    result = err;
    sqlite3_free(err);
  }
  sqlite3_close(db);
  return result;
}

// ---- SD-3 ----------------------------------------------------------------------------------

TEST(SystemdNotify, Sd3ReadyOnceAfterSocketModelAndTelemetry) {
  TempDir dir("mkvd-sd3");
  const std::string cfg = write_config(dir, "[server]\nmax_connections = 8\n");
  DaemonProcess d(daemon_command(dir, cfg, true, false), "sd3");
  ASSERT_TRUE(d.wait_notification("READY=1", 20000)) << d.log();
  const auto ready_at = d.notification_times()[find_all(d, "READY=1").front()];
  // At READY=1 everything is in place: the socket accepts and answers at once, the model is
  // loaded (/health ok, a completion is served) and the telemetry database exists.
  const bool socket_there = std::filesystem::exists(d.socket());
  const auto t_health = Clock::now();
  const auto health = ipc::unix_http(d.socket(), "GET", "/health", "");
  const double health_ms = ms_since(t_health);
  const bool db_there = std::filesystem::exists(dir.file("telemetry.db"));
  const auto r = ipc::unix_http(d.socket(), "POST", "/v1/completions", completion(4, false));
  listen_for(d, 600);  // anything sent after READY (a second READY=1 would show here)
  const double exec_to_ready = ms_between(d.started_at(), ready_at);
  const auto ready = find_all(d, "READY=1");
  const auto status = find_all(d, "STATUS=");
  const auto loading = find_all(d, "STATUS=loading");
  const std::string log = d.log();
  const size_t telemetry_line = log.find("telemetry ok");
  const size_t ready_line = log.find("ready: serving");
  EXPECT_EQ(ready.size(), 1u);
  EXPECT_TRUE(socket_there);
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(db_there) << log;
  ASSERT_FALSE(loading.empty());
  EXPECT_LT(loading.front(), ready.front()) << "STATUS=loading must come before READY=1";
  EXPECT_NE(d.notifications()[ready.front()].find("STATUS=serving"), std::string::npos);
  EXPECT_NE(d.notifications()[ready.front()].find("telemetry ok"), std::string::npos);
  EXPECT_LT(telemetry_line, ready_line) << log;

  // Telemetry degraded (its directory missing): READY=1 still, once, and STATUS says so.
  TempDir dir2("mkvd-sd3b");
  DaemonProcess::Command c = daemon_command(dir2, cfg, false);
  c.argv.back() = dir2.file("missing/telemetry.db");
  DaemonProcess off(c, "sd3b");
  ASSERT_TRUE(off.ready()) << off.log();
  const auto off_ready_at = off.notification_times()[find_all(off, "READY=1").front()];
  const auto off_health = ipc::unix_http(off.socket(), "GET", "/health", "");
  listen_for(off, 300);
  const auto off_ready = find_all(off, "READY=1");
  const std::string off_status = off.notifications()[off_ready.front()];
  EXPECT_EQ(off_ready.size(), 1u);
  EXPECT_EQ(off_health.status, 200);
  EXPECT_EQ(off_status.find("telemetry ok"), std::string::npos) << off_status;
  EXPECT_NE(off_status.find("telemetry "), std::string::npos) << off_status;
  figure("SD-3", std::to_string(ready.size()) + " READY=1 " + fmt(exec_to_ready, 0) +
                     " ms after exec (telemetry ok; " +
                     fmt(ms_between(off.started_at(), off_ready_at), 0) +
                     " ms with telemetry off: " + std::to_string(off_ready.size()) +
                     " READY=1); at READY the socket " + (socket_there ? "exists" : "is missing") +
                     " and /health answered " + std::to_string(health.status) + " in " +
                     fmt(health_ms, 1) + " ms, telemetry.db " + (db_there ? "exists" : "missing") +
                     "; " + std::to_string(status.size()) + " STATUS= lines (" +
                     std::to_string(loading.size()) + " loading, before READY)");
}

// ---- SD-4 ----------------------------------------------------------------------------------

constexpr long long kWatchdogUs = 2'000'000;

TEST(SystemdNotify, Sd4WatchdogPingsUnderLoad) {
  const int seconds = 10;  // RELIABILITY.md: 20 s; CI keeps the rate: ≥ 0.95 pings/s, gap ≤ 1 s
  TempDir dir("mkvd-sd4");
  const std::string cfg = write_config(dir, "[server]\nmax_connections = 8\n");
  DaemonProcess d(daemon_command(dir, cfg, false), "sd4",
                  {"WATCHDOG_USEC=" + std::to_string(kWatchdogUs)});
  ASSERT_TRUE(d.ready()) << d.log();
  // Idle half the time, generating the other half: both count as healthy.
  std::atomic<bool> stop{false};
  std::atomic<int> served{0}, failed{0};
  std::thread client([&] {
    std::this_thread::sleep_for(std::chrono::seconds(seconds / 2));
    while (!stop) {
      const auto r = ipc::unix_http(d.socket(), "POST", "/v1/completions", completion(64, false));
      ++(r.status == 200 ? served : failed);
    }
  });
  const auto from = Clock::now();
  listen_for(d, seconds * 1000);
  const auto to = Clock::now();
  stop = true;
  client.join();
  const auto p = pings(d, from, to);
  double max_gap = p.empty() ? seconds * 1000.0 : ms_between(from, p.front());
  for (size_t i = 1; i < p.size(); ++i) max_gap = std::max(max_gap, ms_between(p[i - 1], p[i]));
  if (!p.empty()) max_gap = std::max(max_gap, ms_between(p.back(), to));
  const double window_s = ms_between(from, to) / 1000.0;
  const auto needed = static_cast<size_t>(std::ceil(0.95 * window_s));
  EXPECT_GE(p.size(), needed);
  EXPECT_LE(max_gap, 1000.0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(served.load(), 0);
  figure("SD-4", std::to_string(p.size()) + " WATCHDOG=1 in " + fmt(window_s, 1) +
                     " s (WATCHDOG_USEC=2000000; ≥ " + std::to_string(needed) +
                     " needed, i.e. 19 per 20 s), max gap " + fmt(max_gap, 0) +
                     " ms (≤ 1000), idle then " + std::to_string(served.load()) +
                     " completions served during the window");
}

TEST(SystemdNotify, Sd4StalledWorkerGetsNoPings) {
  const int stall_ms = 5000;
  TempDir dir("mkvd-sd4s");
  const std::string cfg = write_config(dir, "[server]\nmax_connections = 8\n");
  DaemonProcess d(daemon_command(dir, cfg, false), "sd4s",
                  {"WATCHDOG_USEC=" + std::to_string(kWatchdogUs),
                   "MOMENTKV_DEBUG_STALL_MS=" + std::to_string(stall_ms)});
  ASSERT_TRUE(d.ready()) << d.log();
  listen_for(d, 1000);
  std::atomic<bool> done{false};
  int status = 0;
  TimePoint sent;
  std::thread client([&] {
    sent = Clock::now();
    status = ipc::unix_http(d.socket(), "POST", "/v1/completions", completion(4, false)).status;
    done = true;
  });
  while (!done) listen_for(d, 100);
  client.join();
  listen_for(d, 1500);
  const auto end = Clock::now();
  // The worker sleeps from (just after) `sent` for the stall. Pings go on for one
  // watchdog interval after the last progress the main loop saw (it looks every 250 ms; the
  // worker counts as progressing while it is parked, until it has taken the request, which a
  // sanitizer build makes slow), then the daemon says STATUS=stalled and pings stop until the
  // worker moves. So: no ping between STATUS=stalled and the end of the stall, and STATUS=stalled
  // at most one interval (plus the request's hand-over and a tick) into the stall.
  const auto stalled_msgs = find_all(d, "STATUS=stalled");
  ASSERT_EQ(stalled_msgs.size(), 1u) << d.log();
  const TimePoint stalled_at = d.notification_times()[stalled_msgs.front()];
  const double stalled_after_ms = ms_between(sent, stalled_at);
  // The worker cannot move before `sent` + the stall; after that it finishes the request (slowly
  // under a sanitizer) and the first ping says the pings resume.
  const TimePoint earliest_move = sent + std::chrono::milliseconds(stall_ms);
  const auto during = pings(d, stalled_at, earliest_move);
  const auto before = pings(d, sent - std::chrono::seconds(1), stalled_at);
  const auto after = pings(d, earliest_move, end);
  const double last_ping_ms = before.empty() ? -1 : ms_between(sent, before.back());
  const double resume_ms = after.empty() ? -1 : ms_between(earliest_move, after.front());
  const double quiet_ms = ms_between(stalled_at, earliest_move);
  const double slack_ms = test::kAddressSanitizer || test::kThreadSanitizer ? 2000.0 : 800.0;
  const std::string log = d.log();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(during.size(), 0u);
  EXPECT_GE(quiet_ms, stall_ms - kWatchdogUs / 1000 - slack_ms);
  EXPECT_LE(stalled_after_ms, kWatchdogUs / 1000 + slack_ms);
  EXPECT_LE(last_ping_ms, kWatchdogUs / 1000 + slack_ms);
  ASSERT_FALSE(after.empty()) << "pings did not resume";
  EXPECT_LE(resume_ms, 1000.0 + slack_ms);
  EXPECT_EQ(find_all(d, "STATUS=stalled").size(), 1u) << log;
  EXPECT_NE(log.find("debug stall: the worker sleeps"), std::string::npos) << log;
  figure("SD-4", "worker stalled " + std::to_string(stall_ms) +
                     " ms in a request's first step (MOMENTKV_DEBUG_STALL_MS): last WATCHDOG=1 " +
                     fmt(last_ping_ms, 0) + " ms into the stall (interval 2000 ms), " +
                     std::to_string(during.size()) + " pings in the remaining " + fmt(quiet_ms, 0) +
                     " ms of it, STATUS=stalled " + fmt(stalled_after_ms, 0) +
                     " ms into the stall, pings resumed " + fmt(resume_ms, 0) +
                     " ms after the stall ended; request " + std::to_string(status));
}

// ---- SD-5, SD-5b ---------------------------------------------------------------------------

struct Streams {
  std::vector<std::unique_ptr<RawConnection>> conns;
  std::vector<std::optional<RawResponse>> responses;
  std::vector<std::thread> readers;
  void start(const std::string& sock, int n, int max_tokens) {
    conns.resize(static_cast<size_t>(n));
    responses.resize(static_cast<size_t>(n));
    for (size_t i = 0; i < conns.size(); ++i) {
      conns[i] = std::make_unique<RawConnection>(sock);
      conns[i]->send(http_request("POST", "/v1/completions", completion(max_tokens, true)));
      readers.emplace_back([this, i] { responses[i] = conns[i]->read_response(120000); });
    }
  }
  // Streams that ended with [DONE] and a finish reason.
  int join_completed() {
    for (auto& t : readers) t.join();
    int ok = 0;
    for (const auto& r : responses) {
      ok += r && r->status == 200 && r->complete && parse_sse(r->body).done &&
            !parse_sse(r->body).finish_reason.empty();
    }
    return ok;
  }
};

int decode_budget_of(const std::string& sock) {
  const auto r = ipc::unix_http(sock, "POST", "/v1/completions",
                                json{{"prompt", "Once"}, {"max_tokens", 4}}.dump());
  const json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("compression")) return -1;
  return j["compression"].value("decode_budget", -1);
}

TEST(SystemdNotify, Sd5ReloadKeepsRequestsAndSd5bInvalidKeepsOldConfig) {
  TempDir dir("mkvd-sd5");
  const int n_streams = 4;
  const std::string server = "[server]\nmax_connections = 32\n";
  const std::string cfg = write_config(dir, kv_config(64) + "[model]\ncontext = 4096\n" + server);
  DaemonProcess d(daemon_command(dir, cfg, false), "sd5");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string sock = d.socket();

  // SD-5: a valid reload while streams run.
  Streams valid;
  valid.start(sock, n_streams, 2048);
  ASSERT_TRUE(
      wait_until([&] { return metric(d, "momentkv_active_generations") >= n_streams; }, 10000));
  write_config(dir, kv_config(96) + "[model]\ncontext = 4096\n" + server);
  const auto hup = Clock::now();
  d.signal(SIGHUP);
  ASSERT_TRUE(d.wait_notification("RELOADING=1", 5000)) << d.log();
  ASSERT_TRUE(wait_until([&] { return find_all(d, "READY=1").size() >= 2; }, 5000)) << d.log();
  const double active_after = metric(d, "momentkv_active_generations");
  const auto reloading = find_all(d, "RELOADING=1");
  const auto ready = find_all(d, "READY=1");
  const double reload_ms = ms_between(hup, d.notification_times()[ready[1]]);
  const int valid_ok = valid.join_completed();
  const int budget_after_valid = decode_budget_of(sock);
  EXPECT_EQ(reloading.size(), 1u);
  EXPECT_LT(reloading[0], ready[1]);
  EXPECT_EQ(valid_ok, n_streams);
  EXPECT_EQ(budget_after_valid, 96);
  figure("SD-5", "kill -HUP (valid) with " + std::to_string(n_streams) +
                     " streams in flight: RELOADING=1 then READY=1 " + fmt(reload_ms, 1) +
                     " ms after the signal, " + fmt(active_after, 0) +
                     " still generating at READY; " + std::to_string(n_streams - valid_ok) +
                     " failed in-flight requests; decode_budget 64 -> " +
                     std::to_string(budget_after_valid));

  // SD-5b: an invalid configuration with keep-alive connections open and streams running.
  std::vector<std::unique_ptr<RawConnection>> kept;
  int kept_before = 0;
  for (int i = 0; i < 3; ++i) {
    kept.push_back(std::make_unique<RawConnection>(sock));
    kept.back()->send(http_request("POST", "/v1/completions", completion(4, false)));
    const auto r = kept.back()->read_response();
    kept_before += r && r->status == 200;
  }
  Streams invalid;
  invalid.start(sock, n_streams, 2048);
  ASSERT_TRUE(
      wait_until([&] { return metric(d, "momentkv_active_generations") >= n_streams; }, 10000));
  write_config(dir, "[kv]\npolicy = \"lru\"\n");
  d.signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return find_all(d, "READY=1").size() >= 3; }, 5000)) << d.log();
  const std::string ready_msg = d.notifications()[find_all(d, "READY=1")[2]];
  // The STATUS= line up to where the serving summary starts, the temp path cut.
  std::string reload_status = ready_msg.substr(ready_msg.find("STATUS="));
  reload_status = reload_status.substr(0, reload_status.find("; serving"));
  if (const size_t at = reload_status.find(dir.file("")); at != std::string::npos) {
    reload_status.erase(at, dir.file("").size());
  }
  int kept_after = 0;
  for (auto& c : kept) {
    c->send(http_request("POST", "/v1/completions", completion(4, false)));
    const auto r = c->read_response();
    kept_after += r && r->status == 200;
  }
  const int invalid_ok = invalid.join_completed();
  const int budget_after_invalid = decode_budget_of(sock);
  const double failures = metric(d, "momentkv_config_reload_failures_total");
  EXPECT_EQ(find_all(d, "RELOADING=1").size(), 2u);
  EXPECT_NE(ready_msg.find("STATUS=reload failed"), std::string::npos) << ready_msg;
  EXPECT_NE(ready_msg.find("kv.policy"), std::string::npos) << ready_msg;
  EXPECT_EQ(budget_after_invalid, 96);
  EXPECT_EQ(kept_before, 3);
  EXPECT_EQ(kept_after, 3);
  EXPECT_EQ(invalid_ok, n_streams);
  EXPECT_EQ(failures, 1);
  ASSERT_TRUE(alive(d));
  figure("SD-5b", "kill -HUP (invalid kv.policy): READY=1 with \"" + reload_status +
                      "\"; old config kept (decode_budget " + std::to_string(budget_after_invalid) +
                      "); " + std::to_string(3 - kept_after + n_streams - invalid_ok) +
                      " dropped connections (3 keep-alive + " + std::to_string(n_streams) +
                      " streams)");
}

// ---- SD-6 ----------------------------------------------------------------------------------

TEST(SystemdNotify, Sd6SigtermWith20Streams) {
  const int n_streams = 20;
  const int deadline_ms = 2000;
  TempDir dir("mkvd-sd6");
  const std::string cfg = write_config(
      dir, std::string("[model]\ncontext = 8192\n[server]\nmax_connections = 40\n") +
               "queue_length = 32\nshutdown_deadline_ms = " + std::to_string(deadline_ms) + "\n");
  DaemonProcess d(daemon_command(dir, cfg, true), "sd6");
  ASSERT_TRUE(d.ready()) << d.log();
  Streams s;
  s.start(d.socket(), n_streams, 4096);
  ASSERT_TRUE(
      wait_until([&] { return metric(d, "momentkv_active_generations") >= n_streams; }, 20000))
      << metric(d, "momentkv_active_generations") << " active";
  const auto t0 = Clock::now();
  d.signal(SIGTERM);
  ASSERT_TRUE(d.wait_notification("STOPPING=1", 5000)) << d.log();
  const double stopping_ms = ms_between(t0, d.notification_times()[find_all(d, "STOPPING=1")[0]]);
  const int exit_code = d.wait(15000);
  const double exit_ms = ms_since(t0);
  for (auto& t : s.readers) t.join();
  int completed = 0, shutting_down = 0, silent = 0;
  for (const auto& r : s.responses) {
    const SseOutcome o = r ? parse_sse(r->body) : SseOutcome{};
    if (r && r->complete && o.done && !o.finish_reason.empty()) {
      ++completed;
    } else if (r && r->complete && o.error_code == "shutting_down") {
      ++shutting_down;
    } else {
      ++silent;
    }
  }
  const std::string integrity = integrity_check(dir.file("telemetry.db"));
  EXPECT_LE(stopping_ms, kTimingAsserts ? 100.0 : 500.0);
  EXPECT_EQ(exit_code, 0) << d.log();
  EXPECT_LE(exit_ms, 10000.0);
  EXPECT_EQ(silent, 0);
  EXPECT_EQ(completed + shutting_down, n_streams);
  EXPECT_EQ(integrity, "ok");
  figure("SD-6", "kill -TERM with " + std::to_string(n_streams) + " active streams: STOPPING=1 " +
                     fmt(stopping_ms, 1) + " ms after the signal (≤ 100), exit " +
                     std::to_string(exit_code) + " after " + fmt(exit_ms, 0) +
                     " ms (≤ 10000; shutdown_deadline_ms " + std::to_string(deadline_ms) + "); " +
                     std::to_string(completed) + " completed, " + std::to_string(shutting_down) +
                     " shutting_down error events, " + std::to_string(silent) +
                     " without a terminal event; telemetry integrity_check = " + integrity);
}

// ---- SD-7 (the LISTEN_PID part; activation itself: service_integration_test) -------------

TEST(SystemdNotify, Sd7ForeignListenPidIsIgnored) {
  TempDir dir("mkvd-sd7");
  const std::string cfg = write_config(dir, "[server]\nmax_connections = 8\n");
  // LISTEN_FDS meant for another process (pid 1): the daemon must not take fd 3, and binds.
  DaemonProcess d(daemon_command(dir, cfg, false), "sd7", {"LISTEN_PID=1", "LISTEN_FDS=1"});
  ASSERT_TRUE(d.ready()) << d.log();
  const bool bound = std::filesystem::exists(d.socket());
  const auto health = ipc::unix_http(d.socket(), "GET", "/health", "");
  const bool activated = d.log().find("an activated socket") != std::string::npos;
  EXPECT_TRUE(bound);
  EXPECT_EQ(health.status, 200);
  EXPECT_FALSE(activated) << d.log();
  figure("SD-7", std::string("LISTEN_PID=1 LISTEN_FDS=1 (another process's fds): ") +
                     (activated ? "took fd 3" : "ignored") + ", bound " +
                     (bound ? "its own socket" : "nothing") + ", /health " +
                     std::to_string(health.status));
}

// ---- US-1 ----------------------------------------------------------------------------------

constexpr uid_t kNobody = 65534;

struct AsNobody {
  int connect_errno = 0;
  int status = 0;  // HTTP status of the reply, 0 when none
};

// Connects to `sock` as uid/gid 65534 without supplementary groups (a forked child that drops
// privileges and makes only system calls) and sends `request`.
AsNobody connect_as_nobody(const std::string& sock, const std::string& request) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  int fds[2];
  if (pipe(fds) != 0) return {-1, 0};
  const pid_t pid = fork();
  if (pid == 0) {
    int out[2] = {0, 0};
    if (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(2);
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      out[0] = errno;
    } else if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buf[64] = {};
      size_t got = 0;
      while (got < 12) {
        const ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      if (got >= 12) out[1] = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    }
    if (write(fds[1], out, sizeof out) != sizeof out) _exit(3);
    _exit(0);
  }
  close(fds[1]);
  int out[2] = {-1, 0};
  const ssize_t n = read(fds[0], out, sizeof out);
  close(fds[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  if (n != sizeof out) return {-1, 0};
  return {out[0], out[1]};
}

double served_requests(const DaemonProcess& d) {
  double total = 0;
  for (const char* outcome : {"ok", "error", "cancelled", "rejected"}) {
    total += std::max(
        0.0, metric(d, std::string("momentkv_requests_total{outcome=\"") + outcome + "\"}"));
  }
  return total;
}

TEST(SystemdNotify, Us1SocketModeAndPeerAllowlist) {
  if (geteuid() != 0) GTEST_SKIP() << "US-1 switches to uid 65534: run as root";
  const std::string request = http_request("POST", "/v1/completions", completion(4, false));

  // server.socket_mode = "0660": the file has that mode; uid 65534, in neither the owner's
  // nor the group's class, is refused by the kernel.
  TempDir dir("mkvd-us1");
  std::filesystem::permissions(dir.file(""), std::filesystem::perms(0755));
  const std::string cfg = write_config(dir, "[server]\nsocket_mode = \"0660\"\n");
  AsNobody refused;
  unsigned mode = 0;
  uid_t owner = 0;
  gid_t group = 0;
  {
    DaemonProcess d(daemon_command(dir, cfg, false), "us1");
    ASSERT_TRUE(d.ready()) << d.log();
    struct stat st {};
    ASSERT_EQ(stat(d.socket().c_str(), &st), 0);
    mode = st.st_mode & 07777;
    owner = st.st_uid;
    group = st.st_gid;
    refused = connect_as_nobody(d.socket(), request);
    EXPECT_EQ(served_requests(d), 0);
  }
  EXPECT_EQ(mode, 0660u);
  EXPECT_EQ(refused.connect_errno, EACCES) << std::strerror(refused.connect_errno);

  // An open socket (0666) with server.allowed_uids = [0]: uid 65534 connects and gets 403,
  // nothing is served to it; root is served.
  TempDir dir2("mkvd-us1b");
  std::filesystem::permissions(dir2.file(""), std::filesystem::perms(0755));
  const std::string cfg2 =
      write_config(dir2, "[server]\nsocket_mode = \"0666\"\nallowed_uids = [0]\n");
  DaemonProcess d(daemon_command(dir2, cfg2, false), "us1b");
  ASSERT_TRUE(d.ready()) << d.log();
  const AsNobody denied = connect_as_nobody(d.socket(), request);
  const double served_to_nobody = served_requests(d);
  const auto root = ipc::unix_http(d.socket(), "POST", "/v1/completions", completion(4, false));
  EXPECT_EQ(denied.connect_errno, 0) << std::strerror(denied.connect_errno);
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(served_to_nobody, 0);
  EXPECT_EQ(root.status, 200);
  char mode_text[8];
  std::snprintf(mode_text, sizeof mode_text, "%04o", mode);
  figure("US-1", std::string("socket_mode \"0660\": socket ") + mode_text + " uid " +
                     std::to_string(owner) + " gid " + std::to_string(group) +
                     ", connect as uid 65534: " +
                     (refused.connect_errno ? std::strerror(refused.connect_errno) : "accepted") +
                     "; allowed_uids = [0] on a 0666 socket: uid 65534 gets " +
                     std::to_string(denied.status) + ", " + fmt(served_to_nobody, 0) +
                     " requests served to it; uid 0 gets " + std::to_string(root.status));
}

}  // namespace
}  // namespace momentkv::test::socket_faults
