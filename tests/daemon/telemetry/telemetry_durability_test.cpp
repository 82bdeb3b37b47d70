#include <gtest/gtest.h>

#include <cstdio>

#include "tests/daemon/telemetry/durability.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

// DB-1 in CI: 50 kills during continuous writes (telemetry_durability_slow_test runs 300).
TEST(TelemetryDurability, Kill9DuringWritesLosesNoAcknowledgedRecord) {
  momentkv::test::TempDir dir;
  const auto r = test::run_kill9_trials(dir.file("t.db"), 50, 20261130);
  std::printf("kill -9: %d trials, %lld acknowledged records, %lld lost, %d integrity failures\n",
              r.trials, static_cast<long long>(r.acknowledged), static_cast<long long>(r.lost),
              r.integrity_failures);
  EXPECT_EQ(r.trials, 50);
  EXPECT_GT(r.acknowledged, 50);
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.integrity_failures, 0);
}

}  // namespace
}  // namespace momentkv::telemetry
