// `momentkv stats --db` and `momentkv tune` on a telemetry database with known contents: the
// counts come back exactly, and tune recommends the budget the recorded probes support and
// writes it into a config file that momentkvd accepts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "daemon/daemon_config.h"
#include "daemon/telemetry/telemetry_store.h"
#include "tests/support/daemon_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

using nlohmann::json;
using telemetry::ProbeRecord;
using telemetry::Record;
using telemetry::RequestRecord;

// 40 requests of 300 generated tokens at budget 128, and probes of budgets 64/128/256/512 whose
// agreement is 0.80/0.90/0.96/0.99 (+-0.005): 0.95 is first met at 256.
void fill(const std::string& path) {
  telemetry::TelemetryStore store(path, {});
  const int64_t now = telemetry::unix_ms();
  std::vector<Record> rows;
  for (int i = 0; i < 40; ++i) {
    RequestRecord r;
    r.time_ms = now - 1000 * i;
    r.request_id = "cmpl-";
    r.request_id.append(std::to_string(i));
    r.endpoint = "completions";
    r.model = "tiny";
    r.policy = "moment";
    r.scope = "unified";
    r.alpha = 0.9;
    r.decode_budget = 128;
    r.prompt_tokens = 20;
    r.generated_tokens = 300;
    r.evicted = 192;
    r.context_altered = true;
    r.decode_tokens_per_s = 100 + i;
    r.ttft_ms = 10 + i;
    r.finish_reason = "length";
    rows.push_back(r);
    const std::pair<int, double> ladder[] = {{64, 0.80}, {128, 0.90}, {256, 0.96}, {512, 0.99}};
    for (const auto& [budget, agreement] : ladder) {
      ProbeRecord p;
      p.time_ms = r.time_ms;
      p.request_id = r.request_id;
      p.model = "tiny";
      p.policy = "moment";
      p.scope = "unified";
      p.alpha = 0.9;
      p.decode_budget = budget;
      p.request_config = budget == 128;
      p.tokens = 256;
      p.top1_agreement = agreement + ((i % 3) - 1) * 0.005;
      p.kl_mean = (1 - agreement) / 2;
      rows.push_back(p);
    }
  }
  store.write(rows);
}

TEST(TelemetryCommands, StatsReadsADatabaseWithoutADaemon) {
  test::TempDir dir;
  const std::string db = dir.file("t.db");
  fill(db);
  const auto r =
      test::run_process({test::momentkv_binary(), "stats", "--db", db, "--since", "1h", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["groups"].size(), 1u);
  const json& g = j["groups"][0];
  EXPECT_EQ(g["requests"], 40);
  EXPECT_EQ(g["generated_tokens"], 40 * 300);
  EXPECT_DOUBLE_EQ(g["eviction_rate"].get<double>(), 192.0 / 300.0);
  EXPECT_EQ(g["probes"], 40);  // the requests' own configuration only
  // 0.90 with 14 probes at -0.005 and 13 at +0.005.
  EXPECT_NEAR(g["probe_agreement_mean"].get<double>(), 0.90 - 0.005 / 40, 1e-12);
  EXPECT_DOUBLE_EQ(g["tokens_per_s_p50"].get<double>(), 119.0);  // nearest rank of 100..139
  EXPECT_DOUBLE_EQ(g["ttft_ms_p95"].get<double>(), 47.0);  // rank ceil(0.95 * 40) = 38 of 10..49
  // The human table names the group.
  const auto t = test::run_process({test::momentkv_binary(), "stats", "--db", db});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("moment"), std::string::npos);
  EXPECT_NE(t.out.find("40 requests"), std::string::npos) << t.out;
  // A missing database is a clear error.
  const auto m = test::run_process({test::momentkv_binary(), "stats", "--db", dir.file("no.db")});
  EXPECT_EQ(m.exit_code, 1);
  EXPECT_NE(m.err.find("no telemetry database"), std::string::npos) << m.err;
}

TEST(TelemetryCommands, TuneRecommendsTheSmallestBudgetAndWritesTheConfig) {
  test::TempDir dir;
  const std::string db = dir.file("t.db");
  fill(db);
  const std::string cfg = dir.file("momentkvd.toml");
  std::filesystem::copy_file(std::string(MOMENTKV_SOURCE_DIR) + "/configs/momentkvd.toml", cfg);
  auto r = test::run_process(
      {test::momentkv_binary(), "tune", "--db", db, "--target-agreement", "0.95", "--write", cfg});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("decode_budget 256"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("systemctl reload"), std::string::npos) << r.err;
  const DaemonConfig c = load_daemon_config(cfg);
  EXPECT_EQ(c.kv.decode_budget, 256);
  EXPECT_FLOAT_EQ(c.kv.alpha, 0.9f);
  EXPECT_EQ(c.kv.policy, "moment");
  const auto check = test::run_process({test::momentkvd_binary(), "--check-config", cfg});
  EXPECT_EQ(check.exit_code, 0) << check.err;
  // The comments of the shipped config are kept.
  std::ifstream in(cfg);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("# "), std::string::npos);

  // JSON for scripts, with the evidence.
  r = test::run_process(
      {test::momentkv_binary(), "tune", "--db", db, "--target-agreement", "0.95", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["recommendation"]["decode_budget"], 256);
  EXPECT_EQ(j["candidates"].size(), 4u);
  EXPECT_EQ(j["candidates"][2]["probes"], 40);
  EXPECT_DOUBLE_EQ(j["recommendation"]["share_over_budget"].get<double>(), 1.0);
  // A KL target: mean KL (1 - a) / 2 <= 0.01 first at 512.
  r = test::run_process(
      {test::momentkv_binary(), "tune", "--db", db, "--target-kl", "0.01", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["recommendation"]["decode_budget"], 512);
  // A target no probe meets: exit 1, nothing written.
  r = test::run_process(
      {test::momentkv_binary(), "tune", "--db", db, "--target-agreement", "0.999", "--write", cfg});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(load_daemon_config(cfg).kv.decode_budget, 256);
  // No target: a usage error.
  r = test::run_process({test::momentkv_binary(), "tune", "--db", db});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace momentkv
