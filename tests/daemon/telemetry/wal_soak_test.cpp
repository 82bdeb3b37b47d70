#include <gtest/gtest.h>

#include "tests/daemon/telemetry/wal_soak.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

// DB-8, the CI version: 20 s of writes with stats readers (the slow-labelled
// wal_soak_slow_test runs MOMENTKV_SOAK_SECONDS, default 600; 86400 for the 24 h soak).
TEST(WalSoak, WalStaysBoundedWithReadersAndIsEmptyAfterAStop) {
  momentkv::test::TempDir dir;
  test::expect_bounded_wal(dir.file("t.db"), 20, 2000);
}

}  // namespace
}  // namespace momentkv::telemetry
