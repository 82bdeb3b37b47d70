// A load generator for momentkvd (`momentkv load`, and the memory tests MB-2/6/7 in
// tests/reliability/): N client loops that, for a fixed duration, send streamed completions with a
// seeded mix of short and long generations and hang up mid-stream on a share of them. It reports
// what came back (completions, hang-ups, errors by kind), latencies (time to first token,
// inter-token, refusals), aggregate tokens/s, and the daemon's side: its resident memory from
// /proc/PID/status against the memory budget from /metrics, and the admission counters.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tools/load_client.h"

namespace momentkv::tools {

struct LoadOptions {
  std::string socket;
  double duration_s = 60;
  int concurrency = 8;            // client loops, each with one request in flight
  int short_tokens = 16;          // max_tokens of a short generation
  int long_tokens = 256;          // max_tokens of a long one
  double long_share = 0.25;       // share of long generations
  double disconnect_share = 0.1;  // share of requests the client hangs up on, at a random token
  uint64_t seed = 1;
  double temperature = 0.8;
  pid_t pid = 0;                     // the daemon's pid; 0: the socket's peer (SO_PEERCRED)
  int read_timeout_ms = 60'000;      // per read (a queued request waits with no byte)
  int refusal_pause_ms = 20;         // a loop's pause after a refusal or a failed connect
  std::vector<std::string> prompts;  // empty: a built-in set of short story openings
};

// Nearest-rank percentiles of a sample, in its unit.
struct Percentiles {
  int64_t n = 0;
  double p50 = 0, p99 = 0, max = 0;
  static Percentiles of(std::vector<double> values);
};

struct LoadReport {
  LoadOptions options;
  double wall_s = 0;  // from the start until the last request ended
  int64_t requests = 0, completed = 0, disconnected = 0;
  // Failures by kind: "HTTP 503 queue_full", "connect ENOENT", "truncated", "timeout",
  // "stream error shutting_down", "malformed". A refusal is a kind of HTTP error.
  std::map<std::string, int64_t> errors;
  int64_t refused = 0;  // HTTP 503: the daemon said busy (queue_full, too_many_connections, ...)
  int64_t failed = 0;   // every error that is not such a refusal
  Percentiles ttft_ms, inter_token_ms, refusal_ms;
  int64_t tokens = 0;  // generated tokens received (completions' usage; token events otherwise)
  double tokens_per_s = 0;

  // The daemon, where it could be read (0 / -1: unknown).
  pid_t pid = 0;
  std::string pid_source;      // "--pid" or "SO_PEERCRED"
  uint64_t peak_rss = 0;       // the process's peak since it started: VmHWM at the end, or the
                               // highest VmRSS sampled if higher (the kernel updates VmHWM lazily)
  uint64_t rss_end = 0;        // VmRSS at the end
  uint64_t rss_peak_run = 0;   // highest VmRSS sampled during the run (every 100 ms)
  uint64_t memory_budget = 0;  // momentkv_memory_budget_bytes (0: none or unknown)
  uint64_t memory_used_peak = 0;                      // highest momentkv_memory_used_bytes sampled
  int64_t admitted = -1, queued = -1, rejected = -1;  // counter deltas over the run
  int64_t queue_peak = -1, active_peak = -1;          // sampled gauges

  std::string text() const;
  nlohmann::json to_json() const;
};

// Runs the load; returns when the duration is over and every loop's last request has ended.
// `stop` (optional) ends it early. Throws Error when the socket path is empty.
LoadReport run_load(const LoadOptions& options, const std::atomic<bool>* stop = nullptr);

// ---- what the daemon exposes, for the load report and the tests ----

// The value of a sample in Prometheus text (`name` with its labels, e.g.
// momentkv_requests_total{outcome="rejected"}); nullopt when absent.
std::optional<double> metric_value(const std::string& metrics_text, const std::string& name);
// GET /metrics; "" when the daemon cannot be reached.
std::string fetch_metrics(const std::string& socket);

struct ProcMemory {
  uint64_t rss = 0;  // VmRSS, bytes
  uint64_t hwm = 0;  // VmHWM, bytes
};
// /proc/PID/status; nullopt when it cannot be read.
std::optional<ProcMemory> read_proc_memory(pid_t pid);
// Entries in /proc/PID/fd; -1 when it cannot be read.
int count_open_fds(pid_t pid);

}  // namespace momentkv::tools
