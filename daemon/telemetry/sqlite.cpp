#include "daemon/telemetry/sqlite.h"

namespace momentkv::telemetry {

namespace {
[[noreturn]] void fail(sqlite3* db, int rc, const std::string& what) {
  std::string msg = what + ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int code = db ? sqlite3_extended_errcode(db) : rc;
  throw SqliteError(code, msg);
}
}  // namespace

SqliteError::SqliteError(int code, const std::string& message)
    : Error(message + " (sqlite " + std::to_string(code) + ")"), code_(code) {}

bool SqliteError::transient() const {
  switch (primary()) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
      return true;
    default:
      return false;
  }
}

Database::Database(const std::string& path, Mode mode, const std::string& vfs) : path_(path) {
  const int flags = (mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY
                                             : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, vfs.empty() ? nullptr : vfs.c_str());
  if (rc != SQLITE_OK) {
    std::string msg = "cannot open " + path + ": ";
    msg += db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    const int code = db_ ? sqlite3_extended_errcode(db_) : rc;
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw SqliteError(code, msg);
  }
  sqlite3_extended_result_codes(db_, 1);
}

Database::~Database() {
  sqlite3_close_v2(db_);
}

void Database::exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    const std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw SqliteError(sqlite3_extended_errcode(db_), path_ + ": " + msg);
  }
}

std::optional<int64_t> Database::query_int(const std::string& sql) {
  Statement s(*this, sql);
  if (!s.step() || s.column_null(0)) return std::nullopt;
  return s.column_int(0);
}

std::optional<std::string> Database::query_text(const std::string& sql) {
  Statement s(*this, sql);
  if (!s.step() || s.column_null(0)) return std::nullopt;
  return s.column_text(0);
}

Statement Database::prepare(const std::string& sql) {
  return Statement(*this, sql);
}

int64_t Database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

int Database::changes() const {
  return sqlite3_changes(db_);
}

void Database::busy_timeout(int ms) {
  sqlite3_busy_timeout(db_, ms);
}

Statement::Statement(Database& db, const std::string& sql) : db_(&db) {
  const int rc = sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &stmt_, nullptr);
  if (rc != SQLITE_OK) fail(db.handle(), rc, db.path() + ": cannot prepare '" + sql + "'");
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

Statement::Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) {
  o.stmt_ = nullptr;
}

Statement& Statement::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Statement& Statement::bind(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}

Statement& Statement::bind(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind_null(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3_reset(stmt_);
  fail(db_->handle(), rc, db_->path());
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::column_int(int i) const {
  return sqlite3_column_int64(stmt_, i);
}

double Statement::column_double(int i) const {
  return sqlite3_column_double(stmt_, i);
}

std::string Statement::column_text(int i) const {
  const auto* p = sqlite3_column_text(stmt_, i);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(stmt_, i)))
           : std::string();
}

bool Statement::column_null(int i) const {
  return sqlite3_column_type(stmt_, i) == SQLITE_NULL;
}

Transaction::Transaction(Database& db) : db_(db) {
  // A transaction is still open when a COMMIT failed and the ROLLBACK after it failed too (an
  // I/O error on both): what it holds was reported as not written, so it must never be committed
  // along with this one.
  if (!sqlite3_get_autocommit(db_.handle())) db_.exec("ROLLBACK");
  db_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (!open_) return;
  try {
    db_.exec("ROLLBACK");
  } catch (...) {
    // A failed rollback (the transaction was already rolled back by SQLite) leaves nothing open.
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

}  // namespace momentkv::telemetry
