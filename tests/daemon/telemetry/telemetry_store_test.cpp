#include "daemon/telemetry/telemetry_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "daemon/telemetry/schema.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

using test::TempDir;

// "prefix<i>" (built with append: GCC 12 warns falsely on "literal" + std::to_string()).
std::string numbered(const char* prefix, int i) {
  std::string s(prefix);
  s.append(std::to_string(i));
  return s;
}

RequestRecord request(int64_t time_ms, const std::string& id, int64_t evicted = 3) {
  RequestRecord r;
  r.time_ms = time_ms;
  r.request_id = id;
  r.client_uid = 1000;
  r.client_gid = 1000;
  r.client_pid = 42;
  r.endpoint = "completions";
  r.model = "stories260K";
  r.model_hash = "abc";
  r.policy = "moment";
  r.scope = "unified";
  r.alpha = 0.9;
  r.decode_budget = 128;
  r.prompt_tokens = 10;
  r.generated_tokens = 200;
  r.evicted = evicted;
  r.peak_kv_bytes = 4096;
  r.reserved_kv_bytes = 8192;
  r.queue_ms = 0.5;
  r.ttft_ms = 12.5;
  r.decode_tokens_per_s = 900;
  r.total_ms = 230;
  r.finish_reason = "length";
  r.context_altered = evicted > 0;
  return r;
}

// Column names and types of every table, and the index names: what "the same schema" means.
std::string describe_schema(Database& db) {
  std::string out;
  Statement tables(db,
                   "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                   "ORDER BY type, name");
  while (tables.step()) {
    const std::string type = tables.column_text(0), name = tables.column_text(1);
    out += type + " " + name + "\n";
    if (type != "table") continue;
    Statement cols(db, "SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info('" +
                           name + "') ORDER BY name");
    while (cols.step()) {
      out += "  " + cols.column_text(0) + " " + cols.column_text(1) + " " +
             std::to_string(cols.column_int(2)) + " " + cols.column_text(3) + "\n";
    }
  }
  return out;
}

TEST(TelemetryStore, FreshDatabaseHasTheCurrentSchemaAndPragmas) {
  TempDir dir;
  TelemetryStore store(dir.file("t.db"), {});
  EXPECT_EQ(schema_version(store.db()), kSchemaVersion);
  EXPECT_EQ(store.db().query_text("PRAGMA journal_mode").value(), "wal");
  EXPECT_EQ(store.db().query_int("PRAGMA synchronous").value(), 1);  // NORMAL
  EXPECT_EQ(store.db().query_int("PRAGMA auto_vacuum").value(), 2);  // INCREMENTAL
  EXPECT_EQ(store.db().query_int("PRAGMA foreign_keys").value(), 1);
  const std::string schema = describe_schema(store.db());
  for (const char* t :
       {"table requests", "table layer_stats", "table fidelity_probes", "table events"}) {
    EXPECT_NE(schema.find(t), std::string::npos) << t;
  }
  EXPECT_FALSE(store.quarantined());
}

// Every earlier version, with rows written in that version's shape, reaches the current schema
// with its rows intact and the same schema a fresh database gets.
TEST(TelemetryStore, MigratesForwardFromEveryEarlierVersion) {
  TempDir dir;
  std::string fresh;
  {
    TelemetryStore store(dir.file("fresh.db"), {});
    fresh = describe_schema(store.db());
  }
  for (int from = 0; from < kSchemaVersion; ++from) {
    SCOPED_TRACE("from version " + std::to_string(from));
    const std::string path = dir.file(numbered("v", from) + ".db");
    {
      Database db(path, Database::Mode::kReadWrite);
      migrate(db, from);
      ASSERT_EQ(schema_version(db), from);
      if (from >= 1) {
        db.exec(
            "INSERT INTO requests (time_ms, request_id, endpoint, model, policy, scope, alpha, "
            "decode_budget, prefill_budget, prompt_tokens, generated_tokens, evicted, "
            "prompt_evicted, peak_kv_bytes, reserved_kv_bytes, queue_ms, ttft_ms, "
            "decode_tokens_per_s, total_ms, finish_reason) VALUES "
            "(1, 'cmpl-1', 'completions', 'm', 'moment', 'unified', 0.9, 128, 0, 5, 300, 172, 0, "
            "1, 2, 0, 3, 100, 400, 'length'),"
            "(2, 'cmpl-2', 'completions', 'm', 'moment', 'unified', 0.9, 128, 0, 5, 20, 0, 0, "
            "1, 2, 0, 3, 100, 40, 'stop')");
        db.exec("INSERT INTO events (time_ms, kind, detail) VALUES (1, 'start', 'x')");
      }
      if (from >= 2) {
        db.exec(
            "INSERT INTO fidelity_probes (time_ms, request_id, model, policy, scope, alpha, "
            "decode_budget, request_config, tokens, kl_mean, kl_max, top1_agreement, "
            "duration_ms) VALUES (1, 'cmpl-1', 'm', 'moment', 'unified', 0.9, 128, 1, 300, "
            "0.01, 0.2, 0.97, 50)");
        db.exec("INSERT INTO layer_stats VALUES (1, 0, 5, 128, 172, 40.5, 120)");
      }
    }
    TelemetryStore store(path, {});
    Database& db = store.db();
    EXPECT_EQ(schema_version(db), kSchemaVersion);
    EXPECT_EQ(describe_schema(db), fresh);
    if (from >= 1) {
      EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM requests").value(), 2);
      // Backfilled by version 3: altered exactly when something was evicted.
      EXPECT_EQ(db.query_int("SELECT context_altered FROM requests WHERE request_id = 'cmpl-1'"),
                1);
      EXPECT_EQ(db.query_int("SELECT context_altered FROM requests WHERE request_id = 'cmpl-2'"),
                0);
      EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM events").value(), 1);
    }
    if (from >= 2) {
      EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM fidelity_probes").value(), 1);
      EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM layer_stats").value(), 1);
    }
    // And the store writes into it.
    store.write({request(5, "cmpl-3")});
    EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM requests WHERE request_id = 'cmpl-3'"), 1);
  }
}

TEST(TelemetryStore, RefusesADatabaseFromANewerVersion) {
  TempDir dir;
  {
    Database db(dir.file("new.db"), Database::Mode::kReadWrite);
    db.exec("PRAGMA user_version = 99");
  }
  EXPECT_THROW(TelemetryStore(dir.file("new.db"), {}), Error);
  EXPECT_TRUE(std::filesystem::exists(dir.file("new.db")));  // not quarantined: not corrupt
}

TEST(TelemetryStore, WritesEveryRecordKindInOneTransaction) {
  TempDir dir;
  TelemetryStore store(dir.file("t.db"), {});
  RequestRecord r = request(1000, "cmpl-7");
  r.layers = {{0, 10, 128, 50, 33.5, 90}, {1, 10, 120, 58, 30.0, 88}};
  r.ttft_ms = -1;  // no token: NULL
  ProbeRecord p;
  p.time_ms = 1001;
  p.request_id = "cmpl-7";
  p.model = "stories260K";
  p.policy = "moment";
  p.scope = "unified";
  p.alpha = 0.9;
  p.decode_budget = 64;
  p.tokens = 200;
  p.kl_mean = 0.02;
  p.kl_max = 0.5;
  p.top1_agreement = 0.95;
  store.write({r, p, EventRecord{1002, "start", "hello"}});
  Database& db = store.db();
  EXPECT_EQ(db.query_int("SELECT client_uid FROM requests").value(), 1000);
  EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM requests WHERE ttft_ms IS NULL").value(), 1);
  EXPECT_EQ(db.query_text("SELECT model_hash FROM requests").value(), "abc");
  EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM layer_stats").value(), 2);
  EXPECT_EQ(db.query_int("SELECT evicted FROM layer_stats WHERE layer = 1").value(), 58);
  EXPECT_EQ(db.query_int("SELECT decode_budget FROM fidelity_probes").value(), 64);
  EXPECT_EQ(db.query_text("SELECT detail FROM events").value(), "hello");
  // Layer rows go with their request.
  db.exec("DELETE FROM requests");
  EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM layer_stats").value(), 0);
}

TEST(TelemetryStore, RetentionByAgeDeletesOldRowsInChunks) {
  TempDir dir;
  StoreOptions o;
  o.max_age_ms = 1000;
  o.retention_chunk = 100;
  TelemetryStore store(dir.file("t.db"), o);
  std::vector<Record> batch;
  for (int i = 0; i < 250; ++i) batch.push_back(request(i, numbered("old-", i)));
  for (int i = 0; i < 10; ++i) batch.push_back(request(5000 + i, numbered("new-", i)));
  batch.push_back(EventRecord{1, "start", ""});
  batch.push_back(EventRecord{5500, "reload", ""});
  store.write(batch);
  std::vector<int64_t> steps;
  while (const int64_t n = store.retention_step(6000)) steps.push_back(n);
  ASSERT_EQ(steps.size(), 3u);  // 100 + 100 + 50 requests (the old event in the first)
  EXPECT_EQ(steps[0], 101);
  Database& db = store.db();
  EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM requests").value(), 10);
  EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM requests WHERE request_id LIKE 'new-%'").value(),
            10);
  EXPECT_EQ(db.query_int("SELECT COUNT(*) FROM events").value(), 1);
}

TEST(TelemetryStore, RetentionBySizeKeepsTheNewestAndShrinksTheFile) {
  TempDir dir;
  StoreOptions o;
  o.retention_chunk = 200;
  const std::string path = dir.file("t.db");
  TelemetryStore store(path, o);
  std::vector<Record> batch;
  for (int i = 0; i < 3000; ++i) {
    RequestRecord r = request(i, numbered("r", i));
    r.error = std::string(200, 'x');  // ~0.5 KB a row
    batch.push_back(std::move(r));
  }
  store.write(batch);
  store.checkpoint();
  const uint64_t before_live = store.live_bytes();
  const auto before_file = std::filesystem::file_size(path);
  ASSERT_GT(before_live, 1'000'000u);
  // A new limit of a quarter of the data.
  StoreOptions limited = o;
  limited.max_bytes = before_live / 4;
  TelemetryStore bounded(path, limited);
  int steps = 0;
  while (bounded.retention_step(0) > 0) ++steps;
  EXPECT_GT(steps, 1);
  EXPECT_LE(bounded.live_bytes(), limited.max_bytes);
  bounded.checkpoint();
  EXPECT_LT(std::filesystem::file_size(path), before_file / 2);  // pages given back
  // The newest rows are the ones kept.
  EXPECT_EQ(bounded.db().query_int("SELECT MAX(time_ms) FROM requests").value(), 2999);
  EXPECT_GT(bounded.db().query_int("SELECT MIN(time_ms) FROM requests").value(), 1000);
}

TEST(TelemetryStore, QuarantinesADatabaseWithACorruptHeader) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  {
    std::ofstream f(path, std::ios::binary);
    f << std::string("SQLite format 3\0", 16) << std::string(8192, 'Z');
  }
  TelemetryStore store(path, {});
  ASSERT_TRUE(store.quarantined());
  EXPECT_NE(store.quarantined()->find("t.db.corrupt-"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(*store.quarantined()));
  EXPECT_EQ(std::filesystem::file_size(*store.quarantined()), 16u + 8192u);
  store.write({request(1, "a")});
  EXPECT_EQ(store.db().query_int("SELECT COUNT(*) FROM requests").value(), 1);
}

// A path that points at another program's file (a model, say) is never opened, moved or written.
TEST(TelemetryStore, LeavesAFileThatIsNotSqliteAlone) {
  TempDir dir;
  const std::string path = dir.file("model.gguf");
  const std::string content = "GGUF" + std::string(4096, '\x01');
  {
    std::ofstream f(path, std::ios::binary);
    f << content;
  }
  try {
    TelemetryStore store(path, {});
    FAIL() << "opened a GGUF file as a database";
  } catch (const ForeignFileError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a SQLite database"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("GGUF"), std::string::npos);
  }
  std::ifstream in(path, std::ios::binary);
  const std::string now((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(now, content);
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.file(""))) {
    ++entries;
  }
  EXPECT_EQ(entries, 1);  // no -wal, -shm or quarantine copy
}

// Overwrites bytes of the file in the middle of its pages.
void damage_pages(const std::string& path, size_t offset, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  const std::string junk(n, '\xA5');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
}

TEST(TelemetryStore, QuarantinesADatabaseWithACorruptPage) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  {
    TelemetryStore store(path, {});
    std::vector<Record> batch;
    for (int i = 0; i < 2000; ++i) batch.push_back(request(i, numbered("r", i)));
    store.write(batch);
    store.checkpoint();
  }
  const auto size = std::filesystem::file_size(path);
  ASSERT_GT(size, 16 * 4096u);
  // The headers of pages 5..12 (b-tree pages of the requests table).
  for (size_t page = 4; page < 12; ++page) damage_pages(path, page * 4096, 64);
  std::string detail;
  {
    StoreOptions no_check;
    no_check.check_on_open = false;
    TelemetryStore probe(path, no_check);
    EXPECT_FALSE(probe.quick_check(&detail));
  }
  EXPECT_NE(detail.find("quick_check"), std::string::npos);
  TelemetryStore store(path, {});
  ASSERT_TRUE(store.quarantined());
  EXPECT_EQ(store.db().query_int("SELECT COUNT(*) FROM requests").value(), 0);
}

}  // namespace
}  // namespace momentkv::telemetry
