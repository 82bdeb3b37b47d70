#include <gtest/gtest.h>

#include "tests/daemon/telemetry/durability.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

// DB-1 in CI: 100 kills during continuous writes (RELIABILITY.md: >= 100 trials;
// telemetry_durability_slow_test runs 300).
TEST(TelemetryDurability, Kill9DuringWritesLosesNoAcknowledgedRecord) {
  momentkv::test::TempDir dir;
  test::expect_no_acknowledged_loss(dir.file("t.db"), 100, 20261130);
}

}  // namespace
}  // namespace momentkv::telemetry
