// RELIABILITY.md §5.3 at full size (nightly; memory_integration_test.cpp has the CI sizes): MB-2
// for 10 minutes at 4x the generations the budget holds, then MB-6; MB-7 with the budget lowered
// and raised again by SIGHUP 10 times under load.
#include <gtest/gtest.h>

#include "tests/reliability/memory_rig.h"

namespace momentkv {
namespace {

TEST(MemorySlow, OverSubscriptionTenMinutesThenQuiesce) {
  test::over_subscription_then_quiesce(/*n=*/8, /*duration_s=*/600);
}

TEST(MemorySlow, LowerBudgetBySighupUnderLoadRepeatedly) {
  test::lower_budget_under_load(/*n=*/8, /*cycles=*/10, /*hold_s=*/3);
}

}  // namespace
}  // namespace momentkv
