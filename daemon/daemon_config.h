// The momentkvd configuration (TOML, /etc/momentkv/momentkvd.toml): model, memory budget and KV
// policy. Every key has a default; an unknown key, a wrong type or a value out of range is an
// error that names the key, the value and what is allowed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/kv/kv_config.h"
#include "core/util/error.h"

namespace momentkv {

// [telemetry]: what is recorded in SQLite (DESIGN.md §9, docs/telemetry.md).
struct TelemetryConfig {
  bool enabled = true;
  // path = "...": the database. Empty: $STATE_DIRECTORY/telemetry.db when systemd sets
  // STATE_DIRECTORY, else /var/lib/momentkv/telemetry.db.
  std::string path;
  int32_t max_age_days = 30;           // rows older are deleted; 0: keep forever
  uint64_t max_size = 256ull << 20;    // live bytes kept (oldest deleted first); 0: unlimited
  int32_t queue_length = 4096;         // records waiting for the writer thread
  double layer_stats_rate = 0.1;       // share of requests whose per-layer statistics are kept
  double probe_rate = 0.1;             // share of compressed requests replayed as fidelity probes
  int32_t probe_max_tokens = 256;      // generated tokens a probe replays at most
  std::vector<int32_t> probe_budgets;  // candidate decode budgets; empty: B/4, B/2, B, 2B
  std::vector<double> probe_alphas;    // candidate alphas; empty: the request's
  // The database path this configuration resolves to.
  std::string resolved_path() const;
};

struct DaemonConfig {
  // [model]
  std::string model_path;       // path = "..." (required to serve; `momentkv run` may pass -m)
  int32_t threads = 0;          // 0: one per CPU
  int32_t context = 0;          // positions allowed; 0: the model's trained context
  int32_t batch = 64;           // prompt tokens per forward pass
  bool exact = false;           // f32 activations inside quantized matmuls
  std::string backend = "cpu";  // cpu | cuda (the CUDA engine; needs a restart to change)
  // [memory]
  uint64_t memory_budget = 0;  // budget = "512MiB": weights + KV + scratch; 0: no limit
  // [server]
  std::string socket_path = "/run/momentkv/momentkvd.sock";
  unsigned socket_mode = 0660;
  int32_t max_connections = 64;
  uint64_t max_body_bytes = 1 << 20;
  int32_t idle_timeout_ms = 60000;
  uint64_t output_buffer_bytes = 1 << 20;
  int32_t write_timeout_ms = 30000;  // a client that takes no response bytes this long is cut off
  int32_t queue_length = 16;
  int32_t decode_batch = 8;   // concurrent generations decoded in one pass over the weights
  int32_t max_tokens = 4096;  // largest max_tokens a request may ask for
  int32_t default_max_tokens = 256;
  int32_t shutdown_deadline_ms = 10000;
  std::string chat_template = "auto";  // auto | chatml | llama2 | llama3 | zephyr | plain
  std::vector<int64_t> allowed_uids, allowed_gids;  // empty: anyone the socket mode lets in
  TelemetryConfig telemetry;
  // [kv]: defaults from the fidelity evaluation (docs/results.md).
  KvConfig kv = recommended_kv();

  static KvConfig recommended_kv() {
    KvConfig c;
    c.policy = "moment";
    c.alpha = 0.9f;
    c.normalize = true;
    c.scope = KvScope::kUnified;
    c.decode_budget = 512;
    return c;
  }
};

class ConfigError : public Error {
 public:
  using Error::Error;
};

// Parses TOML text; `source` names it in errors ("momentkvd.toml"). Throws ConfigError.
DaemonConfig parse_daemon_config(const std::string& text, const std::string& source);
// Reads and parses a file. Throws ConfigError (also when it cannot be read).
DaemonConfig load_daemon_config(const std::string& path);

}  // namespace momentkv
