#include <gtest/gtest.h>

#include "tests/daemon/telemetry/wal_soak.h"
#include "tests/support/temp_dir.h"

namespace momentkv::telemetry {
namespace {

// DB-8, the slow label: MOMENTKV_SOAK_SECONDS of writes with stats readers (default 600; the
// 24 h soak: MOMENTKV_SOAK_SECONDS=86400). MOMENTKV_SOAK_RATE sets the records per second.
TEST(WalSoak, WalStaysBoundedForTheWholeSoak) {
  momentkv::test::TempDir dir;
  const char* rate = std::getenv("MOMENTKV_SOAK_RATE");
  test::expect_bounded_wal(dir.file("t.db"), test::soak_seconds(600),
                           rate && *rate ? std::atoi(rate) : 2000);
}

}  // namespace
}  // namespace momentkv::telemetry
