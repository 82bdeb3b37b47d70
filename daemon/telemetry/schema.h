// The telemetry schema and its forward migrations. The version lives in PRAGMA user_version;
// migration N takes a database from version N-1 to N inside one transaction, so a database of
// any earlier version (or an empty file) reaches the current one, and a crash mid-way leaves the
// previous version intact. docs/telemetry.md documents the tables.
#pragma once

#include "daemon/telemetry/sqlite.h"

namespace momentkv::telemetry {

inline constexpr int kSchemaVersion = 3;

// The database's schema version (0: empty).
int schema_version(Database& db);
// Applies the migrations up to `target` (default: the current version). Throws SqliteError, or
// Error when the database is newer than this program knows.
void migrate(Database& db, int target = kSchemaVersion);

}  // namespace momentkv::telemetry
