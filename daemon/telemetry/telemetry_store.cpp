#include "daemon/telemetry/telemetry_store.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "daemon/telemetry/schema.h"

namespace momentkv::telemetry {

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void configure_connection(Database& db, int busy_timeout_ms) {
  db.busy_timeout(busy_timeout_ms);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA cache_size = -2000");  // 2000 KiB of page cache (counted in the budget)
  // After a checkpoint the WAL file is truncated to at most this size.
  db.exec("PRAGMA journal_size_limit = 4194304");
}

std::string quarantine_database(const std::string& path) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  std::string target = path + ".corrupt-" + stamp;
  for (int i = 1; std::filesystem::exists(target); ++i) {
    target = path + ".corrupt-" + stamp + "-" + std::to_string(i);
  }
  std::error_code ec;
  std::filesystem::rename(path, target, ec);
  if (ec) throw Error("cannot move corrupt " + path + " aside: " + ec.message());
  for (const char* suffix : {"-wal", "-shm"}) {
    if (std::filesystem::exists(path + suffix)) {
      std::filesystem::rename(path + suffix, target + suffix, ec);
      if (ec) std::filesystem::remove(path + suffix, ec);
    }
  }
  return target;
}

void check_not_foreign(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;  // absent (created) or unreadable (open reports it)
  char head[16] = {};
  in.read(head, sizeof head);
  const auto n = static_cast<size_t>(in.gcount());
  if (n == 0) return;  // empty: SQLite makes it a database
  static constexpr char kMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f',
                                      'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};
  if (n == sizeof head && std::memcmp(head, kMagic, sizeof head) == 0) return;
  std::string shown;
  for (size_t i = 0; i < std::min<size_t>(n, 8); ++i) {
    const char c = head[i];
    shown += (c >= 32 && c < 127) ? c : '.';
  }
  throw ForeignFileError(path + " is not a SQLite database (it starts with \"" + shown +
                         "\"); telemetry leaves it alone: fix [telemetry] path or move the file");
}

TelemetryStore::TelemetryStore(const std::string& path, const StoreOptions& options)
    : path_(path), options_(options) {
  check_not_foreign(path_);
  try {
    open();
  } catch (const SqliteError& e) {
    if (!e.corrupt()) throw;
    // Not a database, or a damaged one: keep it for inspection, start fresh.
    insert_request_.reset();
    insert_layer_.reset();
    insert_probe_.reset();
    insert_event_.reset();
    db_.reset();
    quarantined_ = quarantine_database(path_);
    open();
  }
}

TelemetryStore::~TelemetryStore() = default;

void TelemetryStore::open() {
  db_ = std::make_unique<Database>(path_, Database::Mode::kReadWrite, options_.vfs);
  if (db_->query_int("PRAGMA page_count").value_or(0) == 0) {
    // A new file: deleted rows give their pages back to the file system (retention by size).
    // Settable only before the first table exists and before WAL mode.
    db_->exec("PRAGMA auto_vacuum = INCREMENTAL");
  }
  configure_connection(*db_, options_.busy_timeout_ms);
  if (options_.check_on_open) {
    std::string detail;
    if (!quick_check(&detail)) throw SqliteError(SQLITE_CORRUPT, path_ + ": " + detail);
  }
  migrate(*db_);
  if (options_.max_page_count > 0) set_max_page_count(options_.max_page_count);
  // The store checkpoints itself (checkpoint_if_due); the hook replaces SQLite's automatic
  // PASSIVE checkpoint, which never waits: with stats queries overlapping one another some
  // reader always holds an old snapshot, the WAL never starts over and grows without bound
  // (63 MB in 150 s of tests/daemon/telemetry/wal_soak_slow_test before this).
  wal_pages_ = 0;
  next_checkpoint_pages_ = options_.wal_checkpoint_pages;
  sqlite3_wal_hook(db_->handle(), &TelemetryStore::on_wal_commit, this);
  prepare();
}

int TelemetryStore::on_wal_commit(void* self, sqlite3*, const char*, int pages) {
  static_cast<TelemetryStore*>(self)->wal_pages_ = pages;
  return SQLITE_OK;
}

void TelemetryStore::checkpoint_if_due(int headroom_pages) {
  if (options_.wal_checkpoint_pages <= 0 || wal_pages_ + headroom_pages < next_checkpoint_pages_) {
    return;
  }
  // RESTART waits (up to the wait below) until every reader is on the latest snapshot, copies
  // the WAL into the database, and makes the next commit write the WAL from its start (which
  // journal_size_limit then shrinks). Readers are never blocked by it; only this thread waits.
  db_->busy_timeout(options_.wal_checkpoint_wait_ms);
  int log = 0, done = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(db_->handle(), nullptr, SQLITE_CHECKPOINT_RESTART, &log, &done);
  db_->busy_timeout(options_.busy_timeout_ms);
  if (rc == SQLITE_OK) {
    next_checkpoint_pages_ = options_.wal_checkpoint_pages;
    return;
  }
  // Readers held on (or an I/O error): the committed records are safe in the WAL; try again
  // once it has grown by another step, not after every batch.
  ++checkpoints_busy_;
  next_checkpoint_pages_ = wal_pages_ + options_.wal_checkpoint_pages;
}

void TelemetryStore::prepare() {
  insert_request_.emplace(*db_,
                          "INSERT INTO requests (time_ms, request_id, client_uid, client_gid, "
                          "client_pid, endpoint, model, model_hash, policy, scope, alpha, "
                          "decode_budget, prefill_budget, prompt_tokens, generated_tokens, "
                          "evicted, prompt_evicted, peak_kv_bytes, reserved_kv_bytes, queue_ms, "
                          "ttft_ms, decode_tokens_per_s, total_ms, finish_reason, "
                          "context_altered, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                          "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, "
                          "?24, ?25, ?26)");
  insert_layer_.emplace(*db_,
                        "INSERT INTO layer_stats (request, layer, resident_prompt, "
                        "resident_generated, evicted, mean_kept_age, oldest_kept_age) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  insert_probe_.emplace(*db_,
                        "INSERT INTO fidelity_probes (time_ms, request_id, model, model_hash, "
                        "policy, scope, alpha, decode_budget, request_config, tokens, kl_mean, "
                        "kl_max, top1_agreement, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                        "?8, ?9, ?10, ?11, ?12, ?13, ?14)");
  insert_event_.emplace(*db_, "INSERT INTO events (time_ms, kind, detail) VALUES (?1, ?2, ?3)");
}

namespace {
void bind_optional_id(Statement& s, int i, int64_t v) {
  if (v < 0) {
    s.bind_null(i);
  } else {
    s.bind(i, v);
  }
}
}  // namespace

void TelemetryStore::write(const std::vector<Record>& batch) {
  Transaction txn(*db_);
  for (const Record& record : batch) {
    if (const auto* r = std::get_if<RequestRecord>(&record)) {
      Statement& s = *insert_request_;
      s.bind(1, r->time_ms).bind(2, r->request_id);
      bind_optional_id(s, 3, r->client_uid);
      bind_optional_id(s, 4, r->client_gid);
      bind_optional_id(s, 5, r->client_pid);
      s.bind(6, r->endpoint).bind(7, r->model).bind(8, r->model_hash).bind(9, r->policy);
      s.bind(10, r->scope).bind(11, r->alpha).bind(12, r->decode_budget);
      s.bind(13, r->prefill_budget).bind(14, r->prompt_tokens).bind(15, r->generated_tokens);
      s.bind(16, r->evicted).bind(17, r->prompt_evicted).bind(18, r->peak_kv_bytes);
      s.bind(19, r->reserved_kv_bytes).bind(20, r->queue_ms);
      if (r->ttft_ms < 0) {
        s.bind_null(21);
      } else {
        s.bind(21, r->ttft_ms);
      }
      s.bind(22, r->decode_tokens_per_s).bind(23, r->total_ms).bind(24, r->finish_reason);
      s.bind(25, r->context_altered ? 1 : 0).bind(26, r->error);
      s.run();
      const int64_t row = db_->last_insert_rowid();
      for (const LayerRecord& l : r->layers) {
        Statement& ls = *insert_layer_;
        ls.bind(1, row).bind(2, l.layer).bind(3, l.resident_prompt).bind(4, l.resident_generated);
        ls.bind(5, l.evicted).bind(6, l.mean_kept_age).bind(7, l.oldest_kept_age);
        ls.run();
      }
    } else if (const auto* p = std::get_if<ProbeRecord>(&record)) {
      Statement& s = *insert_probe_;
      s.bind(1, p->time_ms).bind(2, p->request_id).bind(3, p->model).bind(4, p->model_hash);
      s.bind(5, p->policy).bind(6, p->scope).bind(7, p->alpha).bind(8, p->decode_budget);
      s.bind(9, p->request_config ? 1 : 0).bind(10, p->tokens).bind(11, p->kl_mean);
      s.bind(12, p->kl_max).bind(13, p->top1_agreement).bind(14, p->duration_ms);
      s.run();
    } else {
      const auto& e = std::get<EventRecord>(record);
      insert_event_->bind(1, e.time_ms).bind(2, e.kind).bind(3, e.detail);
      insert_event_->run();
    }
  }
  txn.commit();
  checkpoint_if_due();
}

uint64_t TelemetryStore::live_bytes() {
  const int64_t pages = db_->query_int("PRAGMA page_count").value_or(0);
  const int64_t free_pages = db_->query_int("PRAGMA freelist_count").value_or(0);
  const int64_t page_size = db_->query_int("PRAGMA page_size").value_or(4096);
  return static_cast<uint64_t>(std::max<int64_t>(0, pages - free_pages) * page_size);
}

int64_t TelemetryStore::retention_step(int64_t now_ms) {
  // A step (its deletes, then the vacuum) can write hundreds of pages: start it on a WAL with
  // room for them, so that it does not push a nearly full WAL past twice the checkpoint size.
  checkpoint_if_due(options_.wal_checkpoint_pages / 2);
  const std::string chunk = std::to_string(options_.retention_chunk);
  int64_t deleted = 0;
  {
    Transaction txn(*db_);
    if (options_.max_age_ms > 0) {
      const std::string cutoff = std::to_string(now_ms - options_.max_age_ms);
      for (const char* table : {"requests", "fidelity_probes", "events"}) {
        db_->exec(std::string("DELETE FROM ") + table + " WHERE id IN (SELECT id FROM " + table +
                  " WHERE time_ms < " + cutoff + " ORDER BY id LIMIT " + chunk + ")");
        deleted += db_->changes();
      }
    }
    if (deleted == 0 && options_.max_bytes > 0 && live_bytes() > options_.max_bytes) {
      // Over the size limit: drop the oldest requests (their layer rows go with them), and the
      // probes and events older than the oldest request kept.
      db_->exec("DELETE FROM requests WHERE id IN (SELECT id FROM requests ORDER BY id LIMIT " +
                chunk + ")");
      deleted += db_->changes();
      const std::string oldest =
          "(SELECT COALESCE(MIN(time_ms), 9223372036854775807) FROM requests)";
      for (const char* table : {"fidelity_probes", "events"}) {
        db_->exec(std::string("DELETE FROM ") + table + " WHERE id IN (SELECT id FROM " + table +
                  " WHERE time_ms < " + oldest + " ORDER BY id LIMIT " + chunk + ")");
        deleted += db_->changes();
      }
    }
    txn.commit();
  }
  checkpoint_if_due();  // a step can write hundreds of pages; so can the vacuum after it
  if (deleted > 0) {
    try {
      db_->exec("PRAGMA incremental_vacuum");
    } catch (const SqliteError& e) {
      // The rows are gone (committed above) and must be counted; the free pages go back at the
      // next step.
      if (e.corrupt()) throw;
    }
    checkpoint_if_due();
  }
  return deleted;
}

namespace {
// One PRAGMA quick_check on a fresh connection (it reads the file as it is on disk, not this
// connection's page cache): "ok", or the first problem. A page that could not be read is
// reported as a row ("unable to get the page. error code=266"), not as the statement's error; an
// I/O failure (or a full disk, or no memory) says nothing about the file, so it is thrown as that
// error, never returned as a verdict of corruption.
std::string quick_check_once(const std::string& path, const StoreOptions& options) {
  Database checker(path, Database::Mode::kReadOnly, options.vfs);
  checker.busy_timeout(options.busy_timeout_ms);
  Statement s(checker, "PRAGMA quick_check");
  std::string first;
  while (true) {
    try {
      if (!s.step()) break;
    } catch (const SqliteError& e) {
      if (!e.corrupt()) throw;
      // Damage bad enough to stop the check is a verdict too.
      if (first.empty()) first = e.what();
      break;
    }
    const std::string row = s.column_text(0);
    if (first.empty()) first = row;
    static constexpr std::string_view kUnreadable = "unable to get the page. error code=";
    if (const size_t at = row.find(kUnreadable); at != std::string::npos) {
      const int code = std::atoi(row.c_str() + at + kUnreadable.size());
      const int primary = code & 0xff;
      if (primary != SQLITE_CORRUPT && primary != SQLITE_NOTADB) {
        throw SqliteError(code, path + ": quick_check could not read the file: " + row);
      }
    }
  }
  return first;
}
}  // namespace

bool TelemetryStore::quick_check(std::string* detail) {
  const std::string first = quick_check_once(path_, options_);
  if (first == "ok") return true;
  // Some read failures leave no error code in the report ("Failed to read ptrmap key=8"): a
  // damaged file says so again, a passing fault does not. Only a repeated verdict quarantines.
  const std::string again = quick_check_once(path_, options_);
  if (again == "ok") {
    throw SqliteError(SQLITE_IOERR, path_ + ": quick_check failed once (" + first +
                                        ") and then passed: the file system is unreliable");
  }
  if (detail) *detail = "quick_check: " + again;
  return false;
}

void TelemetryStore::set_max_page_count(int64_t pages) {
  // 0 lifts the cap (SQLite's largest page count).
  db_->query_int("PRAGMA max_page_count = " + std::to_string(pages > 0 ? pages : 4294967294LL));
}

void TelemetryStore::checkpoint() {
  db_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

}  // namespace momentkv::telemetry
