#include <gtest/gtest.h>

#include <cstdio>

#include "tests/daemon/telemetry/durability.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

// DB-1 in CI: 300 kills during continuous writes (the slow label; CI runs 50 in
// telemetry_durability_test).
TEST(TelemetryDurability, Kill9DuringWritesLosesNoAcknowledgedRecord) {
  momentkv::test::TempDir dir;
  const auto r = test::run_kill9_trials(dir.file("t.db"), 300, 7);
  std::printf("kill -9: %d trials, %lld acknowledged records, %lld lost, %d integrity failures\n",
              r.trials, static_cast<long long>(r.acknowledged), static_cast<long long>(r.lost),
              r.integrity_failures);
  EXPECT_EQ(r.trials, 300);
  EXPECT_GT(r.acknowledged, 300);
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.integrity_failures, 0);
}

}  // namespace
}  // namespace momentkv::telemetry
