#include "daemon/telemetry/schema.h"

#include <array>

namespace momentkv::telemetry {

namespace {

// Migration i takes version i to i + 1. Never edit a released entry: add a new one.
constexpr std::array<const char*, kSchemaVersion> kMigrations = {
    // 0 -> 1: requests and events.
    R"sql(
CREATE TABLE requests (
  id INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  client_uid INTEGER, client_gid INTEGER, client_pid INTEGER,
  endpoint TEXT NOT NULL,
  model TEXT NOT NULL,
  policy TEXT NOT NULL, scope TEXT NOT NULL, alpha REAL NOT NULL,
  decode_budget INTEGER NOT NULL, prefill_budget INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL, generated_tokens INTEGER NOT NULL,
  evicted INTEGER NOT NULL, prompt_evicted INTEGER NOT NULL,
  peak_kv_bytes INTEGER NOT NULL, reserved_kv_bytes INTEGER NOT NULL,
  queue_ms REAL NOT NULL, ttft_ms REAL, decode_tokens_per_s REAL NOT NULL, total_ms REAL NOT NULL,
  finish_reason TEXT NOT NULL, error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX requests_time ON requests(time_ms);
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX events_time ON events(time_ms);
)sql",
    // 1 -> 2: per-layer statistics of sampled requests, fidelity probes.
    R"sql(
CREATE TABLE layer_stats (
  request INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
  layer INTEGER NOT NULL,
  resident_prompt REAL NOT NULL, resident_generated REAL NOT NULL,
  evicted INTEGER NOT NULL, mean_kept_age REAL NOT NULL, oldest_kept_age INTEGER NOT NULL,
  PRIMARY KEY (request, layer)
) WITHOUT ROWID;
CREATE TABLE fidelity_probes (
  id INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  model TEXT NOT NULL,
  policy TEXT NOT NULL, scope TEXT NOT NULL, alpha REAL NOT NULL, decode_budget INTEGER NOT NULL,
  request_config INTEGER NOT NULL,
  tokens INTEGER NOT NULL, kl_mean REAL NOT NULL, kl_max REAL NOT NULL,
  top1_agreement REAL NOT NULL, duration_ms REAL NOT NULL
);
CREATE INDEX fidelity_probes_time ON fidelity_probes(time_ms);
)sql",
    // 2 -> 3: the model file's hash and context_altered on requests and probes (backfilled:
    // a request's context was altered exactly when something was evicted).
    R"sql(
ALTER TABLE requests ADD COLUMN model_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN context_altered INTEGER NOT NULL DEFAULT 0;
UPDATE requests SET context_altered = (evicted > 0 OR prompt_evicted > 0);
ALTER TABLE fidelity_probes ADD COLUMN model_hash TEXT NOT NULL DEFAULT '';
CREATE INDEX requests_group ON requests(policy, model, decode_budget);
)sql",
};

}  // namespace

int schema_version(Database& db) {
  return static_cast<int>(db.query_int("PRAGMA user_version").value_or(0));
}

void migrate(Database& db, int target) {
  const int from = schema_version(db);
  if (from > kSchemaVersion) {
    throw Error(db.path() + " has telemetry schema version " + std::to_string(from) +
                "; this momentkv knows up to " + std::to_string(kSchemaVersion));
  }
  if (db.query_int("PRAGMA page_count").value_or(0) == 0) {
    db.exec("PRAGMA auto_vacuum = INCREMENTAL");  // see TelemetryStore::open
  }
  for (int v = from; v < target && v < kSchemaVersion; ++v) {
    Transaction txn(db);
    db.exec(kMigrations[static_cast<size_t>(v)]);
    db.exec("PRAGMA user_version = " + std::to_string(v + 1));
    txn.commit();
  }
}

}  // namespace momentkv::telemetry
