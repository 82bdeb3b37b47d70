#include "daemon/telemetry/stats_query.h"

#include <gtest/gtest.h>

#include "daemon/telemetry/telemetry_store.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

TEST(StatsQuery, ParsesDurations) {
  EXPECT_EQ(parse_duration_ms("90"), 90'000);
  EXPECT_EQ(parse_duration_ms("90s"), 90'000);
  EXPECT_EQ(parse_duration_ms("15m"), 900'000);
  EXPECT_EQ(parse_duration_ms("24h"), 86'400'000);
  EXPECT_EQ(parse_duration_ms("7d"), 604'800'000);
  for (const char* bad : {"", "h", "1w", "-1h", "1.5h", "yesterday", "99999999999999999d"}) {
    EXPECT_FALSE(parse_duration_ms(bad)) << bad;
  }
}

TEST(StatsQuery, NearestRankPercentiles) {
  std::vector<double> v = {5, 1, 4, 2, 3};
  EXPECT_EQ(percentile(v, 0.5), 3);
  EXPECT_EQ(percentile(v, 0.95), 5);
  EXPECT_EQ(percentile(v, 0.0), 1);
  std::vector<double> none;
  EXPECT_EQ(percentile(none, 0.5), 0);
}

TEST(StatsQuery, GroupsByModelPolicyAlphaBudgetWithinTheWindow) {
  test::TempDir dir;
  TelemetryStore store(dir.file("t.db"), {});
  std::vector<Record> rows;
  auto add = [&](int64_t t, const std::string& policy, int32_t budget, int generated, int evicted,
                 const std::string& finish) {
    RequestRecord r;
    r.time_ms = t;
    r.request_id = std::string("x");
    r.endpoint = std::string("chat");
    r.model = std::string("m");
    r.policy = policy;
    r.scope = std::string("unified");
    r.alpha = policy == "moment" ? 0.9 : 0.0;
    r.decode_budget = budget;
    r.generated_tokens = generated;
    r.evicted = evicted;
    r.peak_kv_bytes = generated * 100;
    r.context_altered = evicted > 0;
    r.decode_tokens_per_s = 50;
    r.finish_reason = finish;
    rows.push_back(r);
  };
  add(100, "moment", 64, 200, 136, "length");
  add(200, "moment", 64, 10, 0, "stop");
  add(300, "moment", 64, 0, 0, "error");
  add(400, "full", 0, 100, 0, "length");
  add(10, "moment", 64, 500, 436, "length");  // before the window
  store.write(rows);
  StatsWindow w;
  w.since_ms = 50;
  const StatsReport r = query_stats(store.db(), w);
  EXPECT_EQ(r.requests, 4);
  ASSERT_EQ(r.groups.size(), 2u);
  const StatsGroup& full = r.groups[0];  // "full" < "moment"
  EXPECT_EQ(full.policy, "full");
  EXPECT_EQ(full.requests, 1);
  const StatsGroup& m = r.groups[1];
  EXPECT_EQ(m.requests, 3);
  EXPECT_EQ(m.errors, 1);
  EXPECT_EQ(m.generated_tokens, 210);
  EXPECT_DOUBLE_EQ(m.eviction_rate, 136.0 / 210.0);
  EXPECT_DOUBLE_EQ(m.context_altered_share, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.peak_kv_bytes_max, 20000);  // the error's 0 bytes are not counted
  EXPECT_DOUBLE_EQ(m.peak_kv_bytes_p95, 20000);
  // The JSON round trip keeps every figure.
  const StatsReport back = stats_from_json(stats_json(r));
  ASSERT_EQ(back.groups.size(), 2u);
  EXPECT_EQ(back.groups[1].generated_tokens, 210);
  EXPECT_DOUBLE_EQ(back.groups[1].eviction_rate, m.eviction_rate);
  EXPECT_NE(stats_table(r).find("4 requests"), std::string::npos);
}

}  // namespace
}  // namespace momentkv::telemetry
