// What the daemon records (DESIGN.md §9): one row per request (with per-layer compression
// statistics for sampled requests), fidelity-probe results, and events. Plain values: building
// one never touches SQLite, so the decode loop only moves a record into the writer's queue.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace momentkv::telemetry {

// One layer's cache at the end of a request (means over its KV lanes).
struct LayerRecord {
  int32_t layer = 0;
  double resident_prompt = 0;     // prompt tokens resident
  double resident_generated = 0;  // generated tokens resident
  int64_t evicted = 0;            // slots evicted, summed over the layer's lanes
  double mean_kept_age = 0;       // decode steps since the kept generated tokens were written
  int64_t oldest_kept_age = 0;
};

struct RequestRecord {
  int64_t time_ms = 0;  // Unix time the request finished
  std::string request_id;
  int64_t client_uid = -1, client_gid = -1, client_pid = -1;  // SO_PEERCRED; -1 unknown
  std::string endpoint;                                       // "completions" or "chat"
  std::string model, model_hash;
  std::string policy, scope;
  double alpha = 0;
  int32_t decode_budget = 0, prefill_budget = 0;
  int32_t prompt_tokens = 0, generated_tokens = 0;
  int64_t evicted = 0, prompt_evicted = 0;
  int64_t peak_kv_bytes = 0, reserved_kv_bytes = 0;
  double queue_ms = 0;  // submitted -> picked up by the worker
  double ttft_ms = -1;  // submitted -> first token; -1 none
  double decode_tokens_per_s = 0;
  double total_ms = 0;
  std::string finish_reason;  // stop, length, cancelled, error
  bool context_altered = false;
  std::string error;                // code: message, when finish_reason is "error"
  std::vector<LayerRecord> layers;  // sampled requests only
};

// One candidate configuration replayed against a full cache for one finished request.
struct ProbeRecord {
  int64_t time_ms = 0;
  std::string request_id, model, model_hash;
  std::string policy, scope;
  double alpha = 0;
  int32_t decode_budget = 0;
  bool request_config = false;  // the configuration the request ran with
  int32_t tokens = 0;           // teacher-forced positions scored
  double kl_mean = 0, kl_max = 0, top1_agreement = 0;
  double duration_ms = 0;  // compute time of the whole probe
};

struct EventRecord {
  int64_t time_ms = 0;
  std::string kind;  // start, stop, reload, config, model, error, telemetry_drops, quarantine, ...
  std::string detail;
};

using Record = std::variant<RequestRecord, ProbeRecord, EventRecord>;

// Milliseconds since the Unix epoch.
int64_t unix_ms();

// A KvConfig alpha (float) as stored: rounded to 6 decimals, so 0.9f is 0.9.
inline double round_alpha(float alpha) {
  return static_cast<double>(static_cast<int64_t>(static_cast<double>(alpha) * 1e6 + 0.5)) / 1e6;
}

}  // namespace momentkv::telemetry
