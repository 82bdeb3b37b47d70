#include <gtest/gtest.h>

#include "tests/daemon/telemetry/durability.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

// DB-1, the slow label: 300 kills during continuous writes (CI also runs 50 in
// telemetry_durability_test).
TEST(TelemetryDurability, Kill9DuringWritesLosesNoAcknowledgedRecord) {
  momentkv::test::TempDir dir;
  test::expect_no_acknowledged_loss(dir.file("t.db"), 300, 7);
}

}  // namespace
}  // namespace momentkv::telemetry
