// The telemetry database, used from one thread (the writer's, or a tool's): opening with WAL,
// synchronous=NORMAL and a busy timeout, quarantining a corrupt file, writing a batch of records
// in one transaction with prepared statements, and retention by age and size in small steps.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/telemetry/records.h"
#include "daemon/telemetry/sqlite.h"

namespace momentkv::telemetry {

struct StoreOptions {
  int busy_timeout_ms = 1000;  // how long a write waits for another process's lock
  int64_t max_age_ms = 0;      // retention by age; 0: keep forever
  uint64_t max_bytes = 0;      // retention by size (live pages); 0: unlimited
  int retention_chunk = 1000;  // rows deleted per transaction
  bool check_on_open = true;   // PRAGMA quick_check when opening
  int64_t max_page_count = 0;  // a hard cap on the file's pages (tests: a full disk); 0 none
  std::string vfs;             // SQLite VFS of every connection; empty: the default (tests: faults)
  // WAL size (pages) that triggers a checkpoint after a commit, and how long that checkpoint may
  // wait for readers of older snapshots (stats queries) so that the WAL starts over.
  int wal_checkpoint_pages = 1000;
  int wal_checkpoint_wait_ms = 5000;
};

// The file at the database path is not SQLite at all (another program's file, e.g. a model a
// wrong `[telemetry] path` points at): never opened, renamed or written.
class ForeignFileError : public Error {
 public:
  using Error::Error;
};

class TelemetryStore {
 public:
  // Opens (creating) and migrates `path`. A SQLite file that is damaged (SQLITE_CORRUPT or
  // SQLITE_NOTADB, or quick_check fails) is renamed aside (quarantined() says where) and a fresh
  // one created. Throws ForeignFileError when the file exists and does not start with the SQLite
  // header, SqliteError when it cannot be opened or written (missing or read-only directory, disk
  // full, locked).
  TelemetryStore(const std::string& path, const StoreOptions& options);
  ~TelemetryStore();

  // Writes the records in one transaction. Throws SqliteError (nothing is written then).
  void write(const std::vector<Record>& batch);
  // One retention step: deletes at most retention_chunk rows that are too old or, while the live
  // data exceeds max_bytes, the oldest ones; gives freed pages back. Returns the rows deleted
  // (0: nothing left to do).
  int64_t retention_step(int64_t now_ms);
  // PRAGMA quick_check on a fresh connection; false with the first problem in `detail`.
  bool quick_check(std::string* detail);
  // Caps the database's pages (PRAGMA max_page_count): past it writes fail as on a full disk.
  // 0 lifts the cap.
  void set_max_page_count(int64_t pages);
  // Checkpoints the WAL into the database and truncates it (clean stop).
  void checkpoint();
  // Pages in the WAL after the last commit, and checkpoints that could not restart the WAL
  // because readers held on past wal_checkpoint_wait_ms.
  int wal_pages() const { return wal_pages_; }
  int64_t checkpoints_busy() const { return checkpoints_busy_; }
  // Live bytes: pages in use times the page size.
  uint64_t live_bytes();
  // Where a corrupt file found at open was moved, if one was.
  const std::optional<std::string>& quarantined() const { return quarantined_; }
  Database& db() { return *db_; }
  const std::string& path() const { return path_; }

 private:
  void open();
  void prepare();
  // Checkpoints when the WAL holds at least the due number of pages less `headroom_pages`.
  void checkpoint_if_due(int headroom_pages = 0);
  static int on_wal_commit(void* self, sqlite3* db, const char* name, int pages);

  std::string path_;
  StoreOptions options_;
  std::unique_ptr<Database> db_;
  std::optional<Statement> insert_request_, insert_layer_, insert_probe_, insert_event_;
  std::optional<std::string> quarantined_;
  int wal_pages_ = 0;
  int next_checkpoint_pages_ = 0;
  int64_t checkpoints_busy_ = 0;
};

// Throws ForeignFileError when the file at `path` exists, is not empty and does not start with
// the SQLite header.
void check_not_foreign(const std::string& path);

// Renames `path` and its -wal/-shm files to `path.corrupt-<UTC time>`; returns the new name.
// Throws Error when the rename fails.
std::string quarantine_database(const std::string& path);

// Sets the pragmas every connection uses: WAL, synchronous=NORMAL, busy timeout, foreign keys.
void configure_connection(Database& db, int busy_timeout_ms);

}  // namespace momentkv::telemetry
