// The socket-server fault scenarios of RELIABILITY.md §2.3 (US-2 … US-11) against the real
// momentkvd serving stories260K. Each scenario takes its sizes as parameters: the integration
// test runs CI-sized ones (2 cores, also under ASan+UBSan), the slow test the full sizes. Each
// prints one line `FIGURE US-n: ...` with what it measured and asserts the thresholds.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipc/unix_http_client.h"
#include "tests/support/daemon_process.h"
#include "tests/support/raw_http_client.h"
#include "tests/support/sanitizers.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv::test::socket_faults {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

inline std::string model() {
  return model_path("stories260K/stories260K.gguf");
}

inline double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Prints the scenario's figure line (stdout, one line).
inline void figure(const std::string& id, const std::string& text) {
  std::printf("FIGURE %s: %s\n", id.c_str(), text.c_str());
  std::fflush(stdout);
}

inline std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// The p-th percentile (0..100) of `v` (nearest rank).
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

// Polls `done` every few milliseconds for up to timeout_ms.
template <class Pred>
bool wait_until(Pred done, int timeout_ms) {
  const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A config file in `dir` with `text`; its path.
inline std::string write_config(const TempDir& dir, const std::string& text) {
  const std::string path = dir.file("momentkvd.toml");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << text;
  }
  std::filesystem::rename(tmp, path);  // a reload never reads half a file
  return path;
}

inline std::vector<std::string> daemon_args(const std::string& config, bool telemetry = false) {
  std::vector<std::string> a = {"--config", config, "--model", model(), "--threads", "1"};
  if (!telemetry) a.insert(a.end(), {"--telemetry-db", "off"});
  return a;
}

inline std::string completion(int max_tokens, bool stream, int decode_budget = 64,
                              const std::string& prompt = "Once upon a time") {
  return json{{"prompt", prompt},
              {"max_tokens", max_tokens},
              {"temperature", 0},
              {"stream", stream},
              {"compression", {{"policy", "moment"}, {"decode_budget", decode_budget}}}}
      .dump();
}

// Timing thresholds are asserted in plain builds; a sanitizer's slowdown only reports them.
inline constexpr bool kTimingAsserts = !test::kSanitizer;

// True while the process runs (not exited, not a zombie).
inline bool alive(const DaemonProcess& d) {
  std::ifstream in("/proc/" + std::to_string(d.pid()) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

inline double metric(const DaemonProcess& d, const std::string& name) {
  return daemon_metric(d.socket(), name);
}

// Waits until no generation runs or waits; false after timeout_ms.
inline bool quiesce(const DaemonProcess& d, int timeout_ms) {
  return wait_until(
      [&] {
        return metric(d, "momentkv_active_generations") == 0 &&
               metric(d, "momentkv_queue_length") == 0;
      },
      timeout_ms);
}

// The daemon's open descriptors once connections that clients just closed are gone: the least
// seen over 300 ms.
inline int quiet_fd_count(const DaemonProcess& d) {
  int least = open_fd_count(d.pid());
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    least = std::min(least, open_fd_count(d.pid()));
  }
  return least;
}

// Wall milliseconds of one short completion on a fresh connection; -1 when it failed.
inline double timed_completion(const std::string& sock, int max_tokens) {
  const auto t0 = Clock::now();
  const auto r = ipc::unix_http(sock, "POST", "/v1/completions", completion(max_tokens, false));
  return r.status == 200 ? ms_since(t0) : -1;
}

// ---- US-2 ----------------------------------------------------------------------------------

inline void stale_socket_and_second_instance() {
  TempDir dir("mkvd-us2");
  const std::string sock = dir.file("s.sock");
  const std::vector<std::string> argv = {
      momentkvd_binary(), "--model", model(),          "--threads", "1",
      "--socket",         sock,      "--telemetry-db", "off"};
  {
    DaemonProcess killed(DaemonProcess::Command{argv, sock}, "us2-killed");
    ASSERT_TRUE(killed.ready()) << killed.log();
    killed.signal(SIGKILL);
    killed.wait(5000);
  }
  struct stat st {};
  ASSERT_EQ(::lstat(sock.c_str(), &st), 0) << "the killed instance left no socket file";
  ASSERT_TRUE(S_ISSOCK(st.st_mode));
  const auto t0 = Clock::now();
  DaemonProcess d(DaemonProcess::Command{argv, sock}, "us2");
  ASSERT_TRUE(d.ready()) << d.log();
  const double start_ms = ms_since(t0);
  // Clients of the running instance, on keep-alive connections, before and after the attempt.
  std::vector<std::unique_ptr<RawConnection>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<RawConnection>(sock));
    ASSERT_TRUE(clients.back()->send(http_request("GET", "/health")));
    const auto r = clients.back()->read_response();
    ASSERT_TRUE(r && r->status == 200);
  }
  const ProcessResult second = run_process(argv);
  int disconnects = 0;
  for (auto& c : clients) {
    const auto r =
        c->send(http_request("GET", "/health")) ? c->read_response() : std::optional<RawResponse>();
    if (!r || r->status != 200) ++disconnects;
  }
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("another instance is listening on " + sock), std::string::npos)
      << second.err;
  EXPECT_EQ(disconnects, 0);
  EXPECT_EQ(ipc::unix_http(sock, "GET", "/health", "").status, 200) << "socket file lost";
  const size_t at = second.err.find("another instance");
  const std::string message = at == std::string::npos ? second.err : second.err.substr(at);
  figure("US-2", "stale socket file: restart 1/1 ready in " + fmt(start_ms, 0) +
                     " ms; second instance exit " + std::to_string(second.exit_code) + " (\"" +
                     message.substr(0, message.find('\n')) + "\"); first instance " +
                     std::to_string(disconnects) + " disconnects of " +
                     std::to_string(clients.size()) + " keep-alive clients");
}

// ---- US-3 ----------------------------------------------------------------------------------

struct FrameParams {
  size_t cap = 256 << 10;           // [server] max_body_bytes
  int rss_connections = 16;         // connections holding a body just under the cap at once
  size_t endless_limit = 1u << 30;  // an endless sender gives up after this many bytes
};

// Sends `head` and then `filler` over and over (at most `limit` bytes) until the server stops
// taking them; the bytes sent.
inline size_t send_endless(RawConnection& c, const std::string& head, const std::string& filler,
                           size_t limit) {
  if (!c.send(head)) return 0;
  size_t sent = head.size();
  while (sent < limit && c.send(filler)) sent += filler.size();
  return sent;
}

inline void frame_caps(const FrameParams& p) {
  TempDir dir("mkvd-us3");
  const std::string cfg = write_config(
      dir, "[server]\nmax_body_bytes = " + std::to_string(p.cap) + "\nmax_connections = 256\n");
  DaemonProcess d(daemon_args(cfg), "us3");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string sock = d.socket();
  // cap - 1 and cap are accepted: a valid request padded with whitespace.
  for (size_t size : {p.cap - 1, p.cap}) {
    std::string body = R"({"prompt":"Once","max_tokens":2})";
    body.append(size - body.size(), ' ');
    RawConnection c(sock);
    ASSERT_TRUE(c.send(http_request("POST", "/v1/completions", body)));
    const auto r = c.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200) << size << ": " << r->body;
  }
  struct Over {
    std::string what, head, filler;
    size_t limit;
    std::vector<int> statuses;
  };
  const std::string post = "POST /v1/completions HTTP/1.1\r\nHost: x\r\n";
  std::string over_body = R"({"prompt":"Once","max_tokens":2})";
  over_body.append(p.cap + 1 - over_body.size(), ' ');
  const std::string block(64 << 10, 'a');
  std::string chunk = "10000\r\n";  // 64 KiB chunks
  chunk.append(64 << 10, 'a').append("\r\n");
  const std::vector<Over> cases = {
      {"cap+1", http_request("POST", "/v1/completions", over_body), "", 0, {413}},
      {"16MiB", post + "Content-Length: 16777216\r\n\r\n", block, 16u << 20, {413}},
      {"endless header", post + "X-Fill: ", block, p.endless_limit, {431}},
      {"endless chunked body",
       post + "Transfer-Encoding: chunked\r\n\r\n",
       chunk,
       p.endless_limit,
       {413}},
      {"endless line", "G", block, p.endless_limit, {431, 400}},
  };
  std::string over_figures;
  for (const Over& o : cases) {
    RawConnection c(sock);
    size_t sent = 0;
    Clock::time_point sender_done;
    std::thread sender([&] {
      sent = send_endless(c, o.head, o.filler, o.limit);
      sender_done = Clock::now();
    });
    const auto r = c.read_response(10000);
    const auto answered = Clock::now();
    const long closed_ms = c.wait_closed(5000);
    sender.join();
    const double cut_ms = std::chrono::duration<double, std::milli>(sender_done - answered).count();
    ASSERT_TRUE(r.has_value()) << o.what;
    EXPECT_NE(std::find(o.statuses.begin(), o.statuses.end(), r->status), o.statuses.end())
        << o.what << ": " << r->status << " " << r->body;
    EXPECT_FALSE(r->error_code().empty()) << o.what << ": " << r->body;
    EXPECT_GE(closed_ms, 0) << o.what << ": the connection stayed open";
    if (o.limit == p.endless_limit) {
      EXPECT_LT(sent, o.limit) << o.what << ": the server kept reading";
    }
    EXPECT_LE(cut_ms, 3000.0) << o.what << ": the server kept reading";
    over_figures += o.what + " -> " + std::to_string(r->status) + " " + r->error_code() +
                    " + close (sender cut " + fmt(std::max(cut_ms, 0.0), 0) + " ms after it, " +
                    std::to_string(sent >> 20) + " MiB sent); ";
  }
  // Memory per connection: connections each holding cap - 1 body bytes, then as many endless
  // senders at once; RSS growth and peak growth per connection.
  const uint64_t rss_before = process_rss_bytes(d.pid());
  const bool peak_ok = reset_peak_rss(d.pid());
  const int n = p.rss_connections;
  std::vector<std::unique_ptr<RawConnection>> held;
  std::string partial = post + "Content-Length: " + std::to_string(p.cap) + "\r\n\r\n";
  partial.append(p.cap - 1, ' ');
  for (int i = 0; i < n; ++i) {
    held.push_back(std::make_unique<RawConnection>(sock));
    ASSERT_TRUE(held.back()->send(partial));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const uint64_t rss_held = process_rss_bytes(d.pid());
  std::vector<std::unique_ptr<RawConnection>> endless;
  std::vector<std::thread> senders;
  for (int i = 0; i < n; ++i) endless.push_back(std::make_unique<RawConnection>(sock));
  for (int i = 0; i < n; ++i) {
    senders.emplace_back([&, i] {
      send_endless(*endless[static_cast<size_t>(i)], post + "Transfer-Encoding: chunked\r\n\r\n",
                   chunk, 4 * p.cap);
    });
  }
  for (auto& c : endless) c->read_response(10000);
  for (auto& c : endless) c->close();
  for (auto& t : senders) t.join();
  const uint64_t peak = process_peak_rss_bytes(d.pid());
  held.clear();
  const double per_conn_held =
      (static_cast<double>(rss_held) - static_cast<double>(rss_before)) / n;
  const double per_conn_peak =
      (static_cast<double>(peak) - static_cast<double>(rss_before)) / (2.0 * n);
  const double allowed = static_cast<double>(p.cap + (64 << 10));
  ASSERT_TRUE(alive(d)) << d.log();
  EXPECT_EQ(ipc::unix_http(sock, "POST", "/v1/completions", completion(4, false)).status, 200);
  if (!kAddressSanitizer && !kThreadSanitizer) {
    // A sanitizer's allocator (redzones, quarantine) makes RSS say little about our buffers.
    EXPECT_LE(per_conn_held, allowed);
    if (peak_ok) {
      EXPECT_LE(per_conn_peak, allowed);
    }
  }
  figure("US-3", "cap " + std::to_string(p.cap) + " B: cap-1 and cap -> 200; " + over_figures +
                     "RSS growth per connection holding cap-1 bytes " +
                     fmt(per_conn_held / 1024.0, 0) + " KiB, peak with " + std::to_string(n) +
                     " held + " + std::to_string(n) + " endless " +
                     (peak_ok ? fmt(per_conn_peak / 1024.0, 0) + " KiB" : std::string("n/a")) +
                     " (limit " + fmt(allowed / 1024.0, 0) + " KiB); 0 crashes");
}

// ---- US-4 ----------------------------------------------------------------------------------

struct SlowlorisParams {
  int connections = 150;
  int read_deadline_ms = 2000;  // [server] idle_timeout_ms: connect to complete request
  int latency_samples = 300;    // before and after the attack; during it, as many as fit
  int sample_gap_ms = 5;        // between a good client's requests, so that the samples under
                                // attack span all of it (connects, bytes and closes included)
  int waves = 3;  // attacks one after another, each followed by latency_samples of calm; the
                  // check takes the median of the waves' p99s under attack
};

// One slowloris wave: p.connections slow clients, each on its own phase (connection i connects at
// i/N of the first second and sends its next byte of `request` on that phase each second after),
// until the daemon has closed them all; meanwhile `meanwhile` is called again and again. An
// epoll loop wakes only when a byte is due or a connection is closed: the attacker's own CPU
// time, on a runner with two cores, must not be what a good client measures.
struct SlowlorisWave {
  std::vector<double> closed_ms;  // per connection, from its connect; -1 when never closed
  int failed_connects = 0;
};
template <typename Meanwhile>
SlowlorisWave slowloris_wave(const std::string& sock, const SlowlorisParams& p,
                             const std::string& request, Meanwhile&& meanwhile) {
  struct Slow {
    std::unique_ptr<RawConnection> conn;
    Clock::time_point opened;
    Clock::time_point next_send;
    size_t next_byte = 0;
    double closed_ms = -1;
  };
  std::vector<Slow> slow(static_cast<size_t>(p.connections));
  SlowlorisWave wave;
  std::atomic<bool> attack_over{false};
  std::thread attacker([&] {
    const auto start = Clock::now();
    const auto period = std::chrono::microseconds(1000000);
    const size_t n = slow.size();
    for (size_t i = 0; i < n; ++i) {
      slow[i].next_send = start + period * static_cast<int64_t>(i) / static_cast<int64_t>(n);
    }
    const auto give_up = start + period + std::chrono::milliseconds(p.read_deadline_ms + 5000);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
      ADD_FAILURE() << "epoll_create1: " << std::strerror(errno);
      attack_over = true;
      return;
    }
    size_t open = n;  // not closed yet (or not connected yet)
    const auto close_now = [&](Slow& s) {
      s.closed_ms = ms_since(s.opened);
      s.conn->close();  // leaves the epoll set with its descriptor
      --open;
    };
    size_t cursor = 0;  // the phases are in index order: the next due byte is the cursor's
    epoll_event events[64];
    while (open > 0 && Clock::now() < give_up) {
      for (size_t scanned = 0; scanned < n; ++scanned, cursor = (cursor + 1) % n) {
        Slow& s = slow[cursor];
        if (s.closed_ms >= 0) continue;
        if (Clock::now() < s.next_send) break;
        if (!s.conn) {
          s.conn = std::make_unique<RawConnection>(sock);
          s.opened = Clock::now();
          epoll_event ev{};
          ev.events = EPOLLRDHUP;
          ev.data.u64 = cursor;
          if (!s.conn->connected() || ::epoll_ctl(ep, EPOLL_CTL_ADD, s.conn->fd(), &ev) != 0) {
            ++wave.failed_connects;
            close_now(s);
            continue;
          }
        }
        if (!s.conn->send(std::string_view(request).substr(s.next_byte, 1))) {
          close_now(s);
          continue;
        }
        s.next_byte = std::min(s.next_byte + 1, request.size() - 2);  // never complete it
        s.next_send += period;
      }
      int timeout_ms = 20;
      if (slow[cursor].closed_ms < 0) {
        const auto wait =
            std::chrono::ceil<std::chrono::milliseconds>(slow[cursor].next_send - Clock::now());
        timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count(), 0, 20));
      }
      const int ready = ::epoll_wait(ep, events, 64, timeout_ms);
      for (int i = 0; i < ready; ++i) {
        Slow& s = slow[events[i].data.u64];
        if (s.closed_ms < 0) close_now(s);
      }
    }
    ::close(ep);
    attack_over = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  while (!attack_over) meanwhile();
  attacker.join();
  for (const Slow& s : slow) wave.closed_ms.push_back(s.closed_ms);
  return wave;
}

inline void slowloris(const SlowlorisParams& p) {
  TempDir dir("mkvd-us4");
  const std::string cfg =
      write_config(dir, "[server]\nidle_timeout_ms = " + std::to_string(p.read_deadline_ms) +
                            "\nmax_connections = " + std::to_string(p.connections + 64) + "\n");
  DaemonProcess d(daemon_args(cfg), "us4");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string sock = d.socket();
  for (int i = 0; i < 10; ++i) timed_completion(sock, 16);  // warm up
  const auto sample = [&](std::vector<double>& into) {
    into.push_back(timed_completion(sock, 16));
    std::this_thread::sleep_for(std::chrono::milliseconds(p.sample_gap_ms));
  };
  std::vector<double> base;
  for (int i = 0; i < p.latency_samples; ++i) sample(base);
  // The attack: every connection sends one byte of a request per second, independently (their
  // seconds are not aligned: one client sending all N bytes in a single burst would time its own
  // process's burst, not the daemon).
  const std::string request = http_request("POST", "/v1/completions", completion(16, false));
  std::vector<double> during;
  std::vector<double> wave_p99;  // each wave's own p99 under attack
  double p99_after = 0;          // the worst of the calm phases after the waves
  int closed = 0, failed_connects = 0;
  double first = 1e18, last = 0;
  for (int w = 0; w < p.waves; ++w) {
    const size_t from = during.size();
    const SlowlorisWave wave = slowloris_wave(sock, p, request, [&] { sample(during); });
    wave_p99.push_back(percentile(
        std::vector<double>(during.begin() + static_cast<std::ptrdiff_t>(from), during.end()), 99));
    std::vector<double> after;
    for (int i = 0; i < p.latency_samples; ++i) sample(after);
    p99_after = std::max(p99_after, percentile(after, 99));
    failed_connects += wave.failed_connects;
    for (double ms : wave.closed_ms) {
      if (ms < 0) continue;
      ++closed;
      first = std::min(first, ms);
      last = std::max(last, ms);
    }
  }
  const double p99_before = percentile(base, 99), p99_during = percentile(during, 99);
  const double p50_base = percentile(base, 50), p50_during = percentile(during, 50);
  EXPECT_EQ(failed_connects, 0);
  EXPECT_EQ(closed, p.connections * p.waves);
  EXPECT_GE(first, p.read_deadline_ms - 50.0);
  EXPECT_LE(last, p.read_deadline_ms + (kTimingAsserts ? 1000.0 : 3000.0));
  EXPECT_EQ(std::count(during.begin(), during.end(), -1.0), 0) << "a good request failed";
  EXPECT_GE(during.size(), static_cast<size_t>(p.waves * p.read_deadline_ms / 40));  // 1 / 40 ms
  // The good client under attack against the calm phases (the worst of the p99s measured before
  // and after the attacks: a shared runner's own jitter). The figure under attack is the median of
  // the waves' p99s: an attack that slows the daemon slows every wave, while a slow spell of a
  // shared host (CI runs saw the calm p50 go from 1.3 to 2.2 ms after a build) can hit one of them.
  // The median request must stay within 10 % (+1 ms); the p99 within 10 % plus 10 ms. On two
  // cores shared by the daemon, the attackers and the client, a p99 of ~400 requests is a handful
  // of preempted ones: one CI run saw 8.3-8.6 ms in every wave against 1.7-2.6 calm, with the p50
  // at 1.30 vs 1.51 ms. A daemon that the attack holds up (a thread or a blocking read per
  // connection) misses both by far more: every request waits for a byte a second.
  const double reference = std::max(p99_before, p99_after);
  std::vector<double> sorted_waves = wave_p99;
  std::sort(sorted_waves.begin(), sorted_waves.end());
  const double p99_waves = sorted_waves[sorted_waves.size() / 2];
  if (kTimingAsserts) {
    EXPECT_LE(p50_during, p50_base * 1.10 + 1.0);
    EXPECT_LE(p99_waves, reference * 1.10 + 10.0)
        << "p50 " << p50_base << " ms before, " << p50_during << " ms under attack";
  }
  figure("US-4", std::to_string(closed) + "/" + std::to_string(p.connections * p.waves) +
                     " slowloris connections (1 byte/s, " + std::to_string(p.waves) +
                     " waves) closed by the " + std::to_string(p.read_deadline_ms) +
                     " ms request-read deadline after " + fmt(first / 1000.0, 2) + "-" +
                     fmt(last / 1000.0, 2) + " s; good client p99 " + fmt(p99_before, 2) +
                     " ms before / " + fmt(p99_during, 2) + " ms under attack (the waves' median " +
                     fmt(p99_waves, 2) + ") / " + fmt(p99_after, 2) + " ms after (worst) (p50 " +
                     fmt(p50_base, 2) + " vs " + fmt(p50_during, 2) + " ms; " +
                     std::to_string(during.size()) + " requests under attack, 0 failed)");
}

// ---- US-5 ----------------------------------------------------------------------------------

struct SlowReaderParams {
  int max_tokens = 4096;
  size_t output_cap = 64 << 10;  // [server] output_buffer_bytes for the cap case
  int write_timeout_ms = 3000;   // [server] write_timeout_ms for the deadline case
  int stuck_readers = 2;         // held while another client is timed
  // 256-token requests timed per phase (median): ~0.3 s of them, so that a hiccup of a shared
  // host that slows a few does not move it.
  int rate_samples = 21;
};

// Median decode tokens/s of `n` 256-token requests.
inline double median_tokens_per_s(const std::string& sock, int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) {
    const auto r = ipc::unix_http(sock, "POST", "/v1/completions", completion(256, false, 256));
    const json j = json::parse(r.body, nullptr, false);
    if (r.status != 200 || !j.contains("timings")) return -1;
    v.push_back(j["timings"]["predicted_per_second"].get<double>());
  }
  return percentile(v, 50);
}

inline void slow_reader(const SlowReaderParams& p) {
  const std::string never_read =
      http_request("POST", "/v1/completions", completion(p.max_tokens, true));
  double cap_cancel_ms = -1;
  bool cap_cancelled = false, by_cap = false;
  {
    // Both limits as in production: a stream nobody reads is cut off once `output_cap` bytes
    // wait for it, or once its socket has taken nothing for write_timeout_ms.
    TempDir dir("mkvd-us5a");
    const std::string cfg = write_config(
        dir,
        "[model]\ncontext = 8192\n[server]\noutput_buffer_bytes = " + std::to_string(p.output_cap) +
            "\nwrite_timeout_ms = " + std::to_string(p.write_timeout_ms) + "\n");
    DaemonProcess d(daemon_args(cfg), "us5a");
    ASSERT_TRUE(d.ready()) << d.log();
    RawConnection c(d.socket());
    const auto t0 = Clock::now();
    ASSERT_TRUE(c.send(never_read));
    const long hung_up = c.wait_hangup(p.write_timeout_ms + 30000);
    cap_cancel_ms = ms_since(t0);
    ASSERT_GE(hung_up, 0) << "the stuck connection stayed open";
    EXPECT_TRUE(quiesce(d, 5000));
    EXPECT_EQ(metric(d, "momentkv_kv_reserved_bytes"), 0);
    cap_cancelled = metric(d, "momentkv_requests_total{outcome=\"cancelled\"}") == 1;
    by_cap = d.log().find("took no response bytes") == std::string::npos;
    // 64 KiB is far below what 4096 streamed tokens take: the cap must hit first.
    if (p.output_cap <= (64u << 10)) {
      EXPECT_TRUE(by_cap) << d.log();
      EXPECT_TRUE(cap_cancelled);
    }
  }
  // Write-progress deadline: output under the cap, but the socket takes nothing for
  // write_timeout_ms. Another client's decode speed while those connections hang.
  TempDir dir("mkvd-us5b");
  const std::string cfg = write_config(
      dir,
      "[model]\ncontext = 8192\n[server]\noutput_buffer_bytes = 67108864\nwrite_timeout_ms = " +
          std::to_string(p.write_timeout_ms) + "\n");
  DaemonProcess d(daemon_args(cfg), "us5b");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string sock = d.socket();
  median_tokens_per_s(sock, 2);  // warm up
  const double base_rate = median_tokens_per_s(sock, p.rate_samples);
  std::vector<std::unique_ptr<RawConnection>> stuck;
  const auto t0 = Clock::now();
  for (int i = 0; i < p.stuck_readers; ++i) {
    stuck.push_back(std::make_unique<RawConnection>(sock));
    ASSERT_TRUE(stuck.back()->send(never_read));
  }
  // Their generations end (or are cut off); the connections stay stuck with unread output.
  ASSERT_TRUE(wait_until(
      [&] {
        return metric(d, "momentkv_requests_total{outcome=\"ok\"}") +
                   metric(d, "momentkv_requests_total{outcome=\"cancelled\"}") >=
               p.rate_samples + 2 + p.stuck_readers;
      },
      30000))
      << d.log();
  const double generated_ms = ms_since(t0);
  const double stuck_rate = median_tokens_per_s(sock, p.rate_samples);
  const double rate_done_ms = ms_since(t0);
  double first_cut = 1e18, last_cut = 0;
  int cut = 0;
  for (auto& s : stuck) {
    const long waited = s->wait_hangup(p.write_timeout_ms + 10000);
    if (waited < 0) continue;
    ++cut;
    const double at = ms_since(t0);
    first_cut = std::min(first_cut, at);
    last_cut = std::max(last_cut, at);
  }
  const double after_rate = median_tokens_per_s(sock, p.rate_samples);
  EXPECT_EQ(cut, p.stuck_readers);
  EXPECT_TRUE(quiesce(d, 5000));
  EXPECT_EQ(metric(d, "momentkv_kv_reserved_bytes"), 0);
  EXPECT_NE(d.log().find("took no response bytes"), std::string::npos) << d.log();
  if (kTimingAsserts) {
    EXPECT_LE(last_cut, generated_ms + p.write_timeout_ms + 1500.0);
  }
  // Against the mean of the rates before and after; the drift between those two is the
  // machine's own noise (CI runners are shared), allowed on top of 10 %. One-sided: stuck
  // connections must not slow others down (a faster phase is the runner's noise too). The stuck
  // phase is timed after the stuck generations have ended, so what it can catch is work the
  // daemon does for a connection that takes no bytes (a thread spinning on it would cost half
  // of two cores); 5 % failed once on a clean clone with the test alone on the machine, when
  // the CI-sized test still timed 7 requests a phase instead of rate_samples' 21: 14,306 ->
  // 13,413 -> 14,589 tokens/s, -7.2 % against a 2.0 % drift.
  const double reference = (base_rate + after_rate) / 2;
  const double change = (stuck_rate - reference) / reference * 100.0;
  const double drift = std::abs(after_rate - base_rate) / reference * 100.0;
  if (kTimingAsserts) {
    // The rate was timed while the stuck connections were still open.
    EXPECT_LT(rate_done_ms, first_cut);
    EXPECT_GE(change, -(10.0 + drift))
        << base_rate << " -> " << stuck_rate << " -> " << after_rate << " tokens/s";
  }
  figure("US-5", "never-reading client asking " + std::to_string(p.max_tokens) +
                     " tokens: cut off by the " +
                     (by_cap ? std::to_string(p.output_cap >> 10) + " KiB output cap"
                             : std::string("write-progress deadline")) +
                     " after " + fmt(cap_cancel_ms, 0) + " ms (" +
                     (cap_cancelled ? "generation cancelled" : "generation had finished") +
                     "); with a " + std::to_string(p.write_timeout_ms) +
                     " ms write-progress deadline " + std::to_string(cut) + "/" +
                     std::to_string(p.stuck_readers) + " cut off " + fmt(first_cut, 0) + "-" +
                     fmt(last_cut, 0) + " ms after sending (generations ended after " +
                     fmt(generated_ms, 0) + " ms); KV reserved 0 after; other client " +
                     fmt(base_rate, 0) + " / " + fmt(stuck_rate, 0) + " / " + fmt(after_rate, 0) +
                     " tokens/s before / while stuck / after (" + fmt(change, 1) +
                     " % vs before+after, their drift " + fmt(drift, 1) + " %)");
}

// ---- US-6 ----------------------------------------------------------------------------------

struct MaxConnParams {
  int max_connections = 32;
  int extra = 100;
  int extra_threads = 4;
};

inline void max_connections(const MaxConnParams& p) {
  TempDir dir("mkvd-us6");
  const std::string cfg =
      write_config(dir, "[server]\nmax_connections = " + std::to_string(p.max_connections) +
                            "\nidle_timeout_ms = 60000\n");
  DaemonProcess d(daemon_args(cfg), "us6");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string sock = d.socket();
  ASSERT_EQ(ipc::unix_http(sock, "GET", "/health", "").status, 200);
  const int fds_before = quiet_fd_count(d);
  ASSERT_GT(fds_before, 0);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < p.max_connections; ++i) {
    held.push_back(std::make_unique<RawConnection>(sock));
  }
  ASSERT_TRUE(
      wait_until([&] { return open_fd_count(d.pid()) >= fds_before + p.max_connections; }, 3000));
  std::mutex mu;
  std::vector<double> busy_ms;
  int busy = 0, other = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < p.extra_threads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < p.extra / p.extra_threads; ++i) {
        const auto t0 = Clock::now();
        RawConnection c(sock);
        const auto r = c.read_response(2000);
        const bool closed = c.wait_closed(2000) >= 0;
        const double ms = ms_since(t0);
        std::lock_guard lock(mu);
        if (r && r->status == 503 && r->error_code() == "too_many_connections" && closed) {
          ++busy;
          busy_ms.push_back(ms);
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  // The admitted ones still work.
  int held_ok = 0;
  for (auto& c : held) {
    const auto r =
        c->send(http_request("GET", "/health")) ? c->read_response() : std::optional<RawResponse>();
    if (r && r->status == 200) ++held_ok;
  }
  held.clear();
  int fds_after = -1;
  wait_until([&] { return (fds_after = open_fd_count(d.pid())) == fds_before; }, 3000);
  const int n_extra = p.extra / p.extra_threads * p.extra_threads;
  EXPECT_EQ(busy, n_extra);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(held_ok, p.max_connections);
  EXPECT_LE(percentile(busy_ms, 100), kTimingAsserts ? 50.0 : 200.0);
  EXPECT_EQ(fds_after, fds_before);
  // At RLIMIT_NOFILE: more connections than descriptors left. accept() fails (EMFILE) and is
  // retried; nothing crashes and serving resumes once descriptors are free.
  rlimit old_limit{}, low{};
  ASSERT_EQ(::prlimit(d.pid(), RLIMIT_NOFILE, nullptr, &old_limit), 0);
  low = old_limit;
  low.rlim_cur = static_cast<rlim_t>(fds_before + 8);
  ASSERT_EQ(::prlimit(d.pid(), RLIMIT_NOFILE, &low, nullptr), 0);
  std::vector<std::unique_ptr<RawConnection>> flood;
  for (int i = 0; i < p.max_connections; ++i) {
    flood.push_back(std::make_unique<RawConnection>(sock));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const bool survived = alive(d);
  flood.clear();
  ASSERT_EQ(::prlimit(d.pid(), RLIMIT_NOFILE, &old_limit, nullptr), 0);
  const bool serving = wait_until(
      [&] {
        try {
          return ipc::unix_http(sock, "GET", "/health", "").status == 200;
        } catch (const std::exception&) {
          return false;
        }
      },
      5000);
  int fds_final = -1;
  wait_until([&] { return (fds_final = open_fd_count(d.pid())) == fds_before; }, 3000);
  EXPECT_TRUE(survived) << d.log();
  EXPECT_TRUE(serving) << d.log();
  EXPECT_NE(d.log().find("accept failed"), std::string::npos) << "RLIMIT_NOFILE was not reached";
  EXPECT_EQ(fds_final, fds_before);
  figure("US-6", "max_connections " + std::to_string(p.max_connections) + " + " +
                     std::to_string(n_extra) + ": " + std::to_string(busy) +
                     " extra got 503 too_many_connections then close, p50 " +
                     fmt(percentile(busy_ms, 50), 2) + " ms, max " +
                     fmt(percentile(busy_ms, 100), 2) + " ms; " + std::to_string(held_ok) +
                     " admitted still served; open fds " + std::to_string(fds_before) +
                     " before, " + std::to_string(fds_after) + " after; at RLIMIT_NOFILE (" +
                     std::to_string(fds_before + 8) + ") " + (survived ? "no crash" : "CRASH") +
                     ", serving again, fds " + std::to_string(fds_final));
}

// ---- US-7 ----------------------------------------------------------------------------------

struct StormParams {
  int disconnects = 1000;
  int threads = 8;
};

inline void disconnect_storm(const StormParams& p) {
  TempDir dir("mkvd-us7");
  const std::string cfg = write_config(dir, "[server]\nmax_connections = 256\n");
  DaemonProcess d(daemon_args(cfg), "us7");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string sock = d.socket();
  ASSERT_EQ(ipc::unix_http(sock, "POST", "/v1/completions", completion(4, false)).status, 200);
  const double used_before = metric(d, "momentkv_memory_used_bytes");
  const int fds_before = quiet_fd_count(d);
  const auto t0 = Clock::now();
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < p.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(1234 + t));
      for (int i = t; i < p.disconnects; i += p.threads) {
        RawConnection c(sock);
        const int max_tokens = 8 + static_cast<int>(rng() % 400);
        const unsigned how = rng() % 4;
        // A reader that may see the whole stream asks for the connection to end with it.
        if (!c.send(http_request("POST", "/v1/completions", completion(max_tokens, true),
                                 how == 1 ? "Connection: close\r\n" : ""))) {
          continue;
        }
        switch (how) {
          case 0:  // gone at once
            c.close();
            break;
          case 1: {  // read a little of the stream, then go
            const size_t want = 1 + rng() % 4000;
            std::string got;
            char buf[4096];
            while (got.size() < want) {
              const ssize_t n = ::recv(c.fd(), buf, std::min(sizeof buf, want - got.size()), 0);
              if (n <= 0) break;
              got.append(buf, static_cast<size_t>(n));
            }
            c.close();
            break;
          }
          case 2:  // a reset after a moment
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
            c.reset();
            break;
          default: {  // half-close after the first bytes
            char buf[256];
            (void)::recv(c.fd(), buf, sizeof buf, 0);
            ::shutdown(c.fd(), SHUT_WR);
            c.close();
          }
        }
        ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double storm_ms = ms_since(t0);
  const bool quiet = quiesce(d, 15000);
  int fds_after = -1;
  wait_until([&] { return (fds_after = open_fd_count(d.pid())) == fds_before; }, 3000);
  const double reserved = metric(d, "momentkv_kv_reserved_bytes");
  const double used_after = metric(d, "momentkv_memory_used_bytes");
  const double ok = metric(d, "momentkv_requests_total{outcome=\"ok\"}") - 1;
  const double cancelled = metric(d, "momentkv_requests_total{outcome=\"cancelled\"}");
  const double errors = metric(d, "momentkv_requests_total{outcome=\"error\"}");
  ASSERT_TRUE(alive(d)) << d.log();
  EXPECT_TRUE(quiet);
  EXPECT_EQ(done.load(), p.disconnects);
  EXPECT_EQ(reserved, 0);
  EXPECT_EQ(used_after, used_before);
  EXPECT_EQ(fds_after, fds_before);
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(ipc::unix_http(sock, "POST", "/v1/completions", completion(8, false)).status, 200);
  figure("US-7", std::to_string(done.load()) + " random mid-stream disconnects (close, partial " +
                     "read, RST, half-close) in " + fmt(storm_ms / 1000.0, 1) + " s: 0 crashes; " +
                     fmt(cancelled, 0) + " cancelled, " + fmt(ok, 0) + " finished first, " +
                     fmt(errors, 0) + " errors; after quiesce KV reserved " + fmt(reserved, 0) +
                     " B, memory used " + fmt(used_after, 0) + " B (before " + fmt(used_before, 0) +
                     "), open fds " + std::to_string(fds_after) + " (before " +
                     std::to_string(fds_before) + ")");
}

// ---- US-8 ----------------------------------------------------------------------------------

struct SigtermParams {
  int streams = 50;
  int shutdown_deadline_ms = 500;
};

inline void sigterm_under_load(const SigtermParams& p) {
  TempDir dir("mkvd-us8");
  const std::string cfg = write_config(
      dir, "[model]\ncontext = 8192\n[server]\nmax_connections = " +
               std::to_string(p.streams + 16) + "\nqueue_length = " + std::to_string(p.streams) +
               "\nshutdown_deadline_ms = " + std::to_string(p.shutdown_deadline_ms) + "\n");
  DaemonProcess d(daemon_args(cfg), "us8");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string sock = d.socket();
  struct Stream {
    std::unique_ptr<RawConnection> conn;
    std::optional<RawResponse> response;
  };
  std::vector<Stream> streams(static_cast<size_t>(p.streams));
  std::vector<std::thread> readers;
  for (size_t i = 0; i < streams.size(); ++i) {
    // Most would run for many seconds; every tenth is short and finishes.
    const int max_tokens = i % 10 == 0 ? 32 : 4096;
    streams[i].conn = std::make_unique<RawConnection>(sock);
    ASSERT_TRUE(streams[i].conn->send(
        http_request("POST", "/v1/completions", completion(max_tokens, true))));
    readers.emplace_back([&, i] { streams[i].response = streams[i].conn->read_response(30000); });
  }
  ASSERT_TRUE(wait_until(
      [&] { return metric(d, "momentkv_active_generations") >= p.streams * 8 / 10; }, 10000));
  const auto t0 = Clock::now();
  d.signal(SIGTERM);
  ASSERT_TRUE(d.wait_notification("STOPPING=1", 5000));
  RawConnection late(sock);
  const int late_errno = late.connect_errno();
  const int exit_code = d.wait(p.shutdown_deadline_ms + 10000);
  const double exit_ms = ms_since(t0);
  for (auto& t : readers) t.join();
  int completed = 0, shutting_down = 0, truncated = 0;
  std::string example;
  for (const auto& s : streams) {
    const SseOutcome o = s.response ? parse_sse(s.response->body) : SseOutcome{};
    if (s.response && s.response->complete && o.done && !o.finish_reason.empty()) {
      ++completed;
    } else if (s.response && s.response->complete && o.error_code == "shutting_down") {
      ++shutting_down;
    } else {
      ++truncated;
      if (example.empty() && s.response) {
        example = s.response->body.substr(
            s.response->body.size() > 300 ? s.response->body.size() - 300 : 0);
      }
    }
  }
  EXPECT_EQ(truncated, 0) << example;
  EXPECT_EQ(completed + shutting_down, p.streams);
  EXPECT_EQ(exit_code, 0) << d.log();
  EXPECT_LE(exit_ms, p.shutdown_deadline_ms + (kTimingAsserts ? 3000.0 : 6000.0));
  EXPECT_FALSE(late.connected()) << "a connection was accepted after STOPPING=1";
  figure("US-8", std::to_string(p.streams) + " streams in flight at SIGTERM: " +
                     std::to_string(completed) + " completed, " + std::to_string(shutting_down) +
                     " ended with a shutting_down error event, " + std::to_string(truncated) +
                     " silent truncations; exit " + std::to_string(exit_code) + " after " +
                     fmt(exit_ms, 0) + " ms (shutdown_deadline_ms " +
                     std::to_string(p.shutdown_deadline_ms) + "); connect after STOPPING=1: " +
                     (late.connected() ? std::string("accepted") : std::strerror(late_errno)));
}

// ---- US-9 ----------------------------------------------------------------------------------

struct SighupParams {
  int reloads = 100;
  int client_threads = 3;
};

inline std::string kv_config(int decode_budget) {
  return "[kv]\npolicy = \"moment\"\ndecode_budget = " + std::to_string(decode_budget) + "\n";
}

inline void sighup_storm(const SighupParams& p) {
  TempDir dir("mkvd-us9");
  const std::string cfg = write_config(dir, kv_config(64));
  DaemonProcess d(daemon_args(cfg), "us9");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string sock = d.socket();
  const std::string generation = "momentkv_config_generation";
  ASSERT_EQ(metric(d, generation), 1);
  std::atomic<bool> stop{false};
  std::atomic<int> served{0}, failed{0};
  std::mutex mu;
  std::string failure;
  std::vector<std::thread> clients;
  for (int t = 0; t < p.client_threads; ++t) {
    clients.emplace_back([&, t] {
      // One thread keeps one keep-alive connection; the others connect per request.
      std::unique_ptr<RawConnection> kept;
      for (int i = 0; !stop; ++i) {
        const bool stream = i % 2 == 0;
        const std::string body = json{
            {"prompt", "Once upon a time"},
            {"max_tokens", 24},
            {"temperature", 0},
            {"stream", stream}}.dump();
        std::optional<RawResponse> r;
        if (t == 0) {
          if (!kept) kept = std::make_unique<RawConnection>(sock);
          if (kept->send(http_request("POST", "/v1/completions", body))) r = kept->read_response();
        } else {
          RawConnection c(sock);
          if (c.send(http_request("POST", "/v1/completions", body))) r = c.read_response();
        }
        const bool ok =
            r && r->status == 200 && r->complete && (!stream || parse_sse(r->body).done);
        if (ok) {
          ++served;
        } else {
          ++failed;
          std::lock_guard lock(mu);
          if (failure.empty()) failure = r ? std::to_string(r->status) + " " + r->body : "none";
        }
      }
    });
  }
  const auto t0 = Clock::now();
  int reloads = 0;
  for (int i = 1; i <= p.reloads; ++i) {
    write_config(dir, kv_config(i % 2 ? 96 : 64));
    d.signal(SIGHUP);
    // The test reads the daemon's notifications (RELOADING=1, READY=1) as systemd would.
    if (!wait_until(
            [&] {
              d.notifications();
              return metric(d, generation) == 1 + i;
            },
            5000)) {
      break;
    }
    ++reloads;
  }
  const double storm_ms = ms_since(t0);
  const double gen_after_storm = metric(d, generation);
  const int last_budget = p.reloads % 2 ? 96 : 64;
  // An invalid configuration: refused, the old one kept.
  write_config(dir, "[kv]\npolicy = \"lru\"\n");
  d.signal(SIGHUP);
  const bool refused =
      wait_until([&] { return metric(d, "momentkv_config_reload_failures_total") == 1; }, 5000);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  for (auto& t : clients) t.join();
  const double gen_after_invalid = metric(d, generation);
  const json r = json::parse(ipc::unix_http(sock, "POST", "/v1/completions",
                                            json{{"prompt", "Once"}, {"max_tokens", 4}}.dump())
                                 .body,
                             nullptr, false);
  EXPECT_EQ(reloads, p.reloads);
  EXPECT_EQ(failed.load(), 0) << failure;
  EXPECT_GT(served.load(), 0);
  EXPECT_TRUE(refused) << d.log();
  EXPECT_EQ(gen_after_invalid, gen_after_storm);
  EXPECT_EQ(r["compression"]["decode_budget"], last_budget) << r.dump();
  ASSERT_TRUE(alive(d));
  figure("US-9", std::to_string(reloads) + " SIGHUP reloads in " + fmt(storm_ms / 1000.0, 1) +
                     " s during traffic: " + std::to_string(served.load()) + " requests served, " +
                     std::to_string(failed.load()) + " failed; config generation 1 -> " +
                     fmt(gen_after_storm, 0) + "; invalid config refused, generation stays " +
                     fmt(gen_after_invalid, 0) + ", decode_budget stays " +
                     std::to_string(last_budget));
}

// ---- US-10 ---------------------------------------------------------------------------------

inline void pipelined_ordering(int calls) {
  TempDir dir("mkvd-us10");
  const std::string cfg = write_config(dir, "[server]\nmax_connections = 8\n");
  DaemonProcess d(daemon_args(cfg), "us10");
  ASSERT_TRUE(d.ready()) << d.log();
  // Each call's expected answer identifies it: its route, and for completions the token count.
  struct Call {
    std::string bytes;
    int status;
    int tokens;  // completions: usage.completion_tokens; 0 otherwise
    bool stream;
  };
  std::vector<Call> plan;
  std::string all;
  for (int i = 0; i < calls; ++i) {
    Call c{};
    if (i % 10 == 9) {
      c = {http_request("GET", "/nope"), 404, 0, false};
    } else if (i % 10 == 4) {
      c = {http_request("GET", "/health"), 200, 0, false};
    } else if (i % 10 == 7) {
      c = {http_request("POST", "/v1/completions", completion(1 + i % 5, true)), 200, 1 + i % 5,
           true};
    } else {
      c = {http_request("POST", "/v1/completions", completion(1 + i % 13, false)), 200, 1 + i % 13,
           false};
    }
    all += c.bytes;
    plan.push_back(std::move(c));
  }
  RawConnection conn(d.socket());
  std::thread sender([&] { conn.send(all); });  // one burst; the server reads as it answers
  int in_order = 0, mismatched = 0, ids_increasing = 0, plain_completions = 0;
  long last_id = 0;
  std::string first_bad;
  for (int i = 0; i < calls; ++i) {
    const auto r = conn.read_response(10000);
    const Call& c = plan[static_cast<size_t>(i)];
    bool ok = r && r->complete && r->status == c.status;
    if (ok && c.tokens > 0 && !c.stream) {
      const json j = json::parse(r->body, nullptr, false);
      ok = j.is_object() && j["usage"]["completion_tokens"] == c.tokens;
      const std::string id = j.value("id", "cmpl-0");
      const long n = std::atol(id.c_str() + 5);
      ++plain_completions;
      if (n > last_id) ++ids_increasing;
      last_id = n;
    } else if (ok && c.stream) {
      const SseOutcome o = parse_sse(r->body);
      ok = o.done && o.finish_reason == "length";
    } else if (ok && c.status == 200) {
      ok = r->body == R"({"status":"ok"})";
    }
    if (ok) {
      ++in_order;
    } else {
      ++mismatched;
      if (first_bad.empty()) {
        first_bad = "call " + std::to_string(i) + ": " + (r ? r->body.substr(0, 200) : "none");
      }
      if (!r) break;
    }
  }
  sender.join();
  EXPECT_EQ(in_order, calls) << first_bad;
  EXPECT_EQ(mismatched, 0);
  EXPECT_EQ(ids_increasing, plain_completions);
  figure("US-10", std::to_string(calls) + " pipelined calls on one connection (completions, " +
                      "streams, /health, 404s): " + std::to_string(in_order) +
                      " answered in call order, " + std::to_string(mismatched) +
                      " out of order or interleaved; completion ids increasing " +
                      std::to_string(ids_increasing) + "/" + std::to_string(plain_completions));
}

// ---- US-11 ---------------------------------------------------------------------------------

inline void idle_timeout(int idle_ms) {
  TempDir dir("mkvd-us11");
  const std::string cfg =
      write_config(dir, "[server]\nidle_timeout_ms = " + std::to_string(idle_ms) + "\n");
  DaemonProcess d(daemon_args(cfg), "us11");
  ASSERT_TRUE(d.ready()) << d.log();
  RawConnection after_request(d.socket());
  ASSERT_TRUE(after_request.send(http_request("GET", "/health")));
  ASSERT_TRUE(after_request.read_response().has_value());
  const long kept_ms = after_request.wait_closed(idle_ms + 5000);
  RawConnection silent(d.socket());
  const long silent_ms = silent.wait_closed(idle_ms + 5000);
  EXPECT_GE(kept_ms, idle_ms - 100);
  EXPECT_LE(kept_ms, idle_ms + 500);
  EXPECT_GE(silent_ms, idle_ms - 20);
  EXPECT_LE(silent_ms, idle_ms + 500);
  EXPECT_EQ(ipc::unix_http(d.socket(), "GET", "/health", "").status, 200);
  figure("US-11", "idle_timeout_ms " + std::to_string(idle_ms) + ": keep-alive connection closed " +
                      std::to_string(kept_ms) +
                      " ms after its response, a connection that never sent a byte after " +
                      std::to_string(silent_ms) + " ms");
}

}  // namespace momentkv::test::socket_faults
