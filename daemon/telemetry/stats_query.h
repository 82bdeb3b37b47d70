// Aggregates over the telemetry database for `GET /v1/stats` and `momentkv stats`: per (model,
// policy, alpha, decode budget) over a time window, requests, tokens, decode tokens/s and time to
// first token (p50, p95), peak KV bytes (p95, max), eviction rate, the share of requests whose
// context was altered, and the fidelity probes of the configurations requests ran with. Also the
// raw rows `momentkv tune` reads.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "daemon/telemetry/sqlite.h"
#include "daemon/telemetry/tuner.h"

namespace momentkv::telemetry {

struct StatsWindow {
  int64_t since_ms = 0;  // inclusive, Unix ms
  int64_t until_ms = std::numeric_limits<int64_t>::max();
};

struct StatsGroup {
  std::string model, policy;
  double alpha = 0;
  int32_t decode_budget = 0;
  int64_t requests = 0, errors = 0, cancelled = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0, evicted = 0;
  double tokens_per_s_p50 = 0, tokens_per_s_p95 = 0;
  double ttft_ms_p50 = 0, ttft_ms_p95 = 0;
  double peak_kv_bytes_p95 = 0, peak_kv_bytes_max = 0;  // KV bytes ever occupied at once
  double eviction_rate = 0;                             // evicted / generated tokens
  double context_altered_share = 0;                     // requests whose cache dropped something
  int64_t probes = 0;
  double probe_kl_mean = 0, probe_agreement_mean = 0;
};

struct StatsReport {
  StatsWindow window;
  std::vector<StatsGroup> groups;  // ordered by model, policy, alpha, budget
  int64_t requests = 0;            // all groups
  int64_t events = 0;              // events in the window
};

StatsReport query_stats(Database& db, const StatsWindow& window);
// The JSON object /v1/stats returns and `momentkv stats --json` prints.
std::string stats_json(const StatsReport& report);
// The report back from stats_json() (a /v1/stats body). Throws Error when it is not one.
StatsReport stats_from_json(const std::string& json_text);
// A human-readable table.
std::string stats_table(const StatsReport& report);

// Fidelity probes and generated lengths in the window (for the tuner).
std::vector<ProbeRow> read_probes(Database& db, const StatsWindow& window,
                                  const std::string& model = "");
std::vector<int32_t> read_generated_tokens(Database& db, const StatsWindow& window,
                                           const std::string& model = "");

// "90s", "15m", "24h", "7d" (or a bare number of seconds) in milliseconds; nullopt if malformed.
std::optional<int64_t> parse_duration_ms(const std::string& text);

// Nearest-rank percentile (q in [0, 1]) of `values` (sorted in place); 0 when empty.
double percentile(std::vector<double>& values, double q);

}  // namespace momentkv::telemetry
