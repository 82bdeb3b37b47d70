// A thin RAII layer over the SQLite C API: a connection, a prepared statement, and an error that
// keeps SQLite's result code so callers can tell a full disk from a corrupt file.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/util/error.h"

namespace momentkv::telemetry {

class SqliteError : public Error {
 public:
  SqliteError(int code, const std::string& message);
  int code() const { return code_; }  // extended result code
  int primary() const { return code_ & 0xff; }
  // SQLITE_CORRUPT / SQLITE_NOTADB: the file is damaged and must be quarantined.
  bool corrupt() const { return primary() == SQLITE_CORRUPT || primary() == SQLITE_NOTADB; }
  // SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_CANTOPEN:
  // the environment refuses for now; retry later.
  bool transient() const;

 private:
  int code_;
};

class Statement;

class Database {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  // Opens (creating in kReadWrite) `path` through the SQLite VFS named `vfs` (empty: the
  // default one; tests pass a fault-injecting one). Throws SqliteError.
  Database(const std::string& path, Mode mode, const std::string& vfs = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements without results. Throws SqliteError.
  void exec(const std::string& sql);
  // The first column of the first row of `sql` as an integer / text (nullopt: no row or NULL).
  std::optional<int64_t> query_int(const std::string& sql);
  std::optional<std::string> query_text(const std::string& sql);
  Statement prepare(const std::string& sql);
  int64_t last_insert_rowid() const;
  int changes() const;
  void busy_timeout(int ms);
  sqlite3* handle() { return db_; }
  const std::string& path() const { return path_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Statement {
 public:
  Statement(Database& db, const std::string& sql);
  ~Statement();
  Statement(Statement&& o) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;

  // Binds by 1-based index.
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Statement& bind(int i, double v);
  Statement& bind(int i, std::string_view v);
  Statement& bind_null(int i);
  // Advances: true while a row is available. Throws SqliteError.
  bool step();
  // Runs to completion (a statement without rows) and resets it for reuse.
  void run();
  void reset();
  int64_t column_int(int i) const;
  double column_double(int i) const;
  std::string column_text(int i) const;
  bool column_null(int i) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when left by an exception.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  void commit();

 private:
  Database& db_;
  bool open_ = true;
};

}  // namespace momentkv::telemetry
