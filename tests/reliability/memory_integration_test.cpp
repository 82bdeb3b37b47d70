// RELIABILITY.md §5.3, CI sizes (the full ones are memory_slow_test.cpp): MB-2 over-subscription
// at 4x the generations the budget holds, MB-6 nothing reserved, waiting or open afterwards, and
// MB-7 the budget lowered by SIGHUP under load. The real momentkvd serving stories260K, driven by
// the load generator of `momentkv load`. Each test prints its `FIGURE MB-n:` line.
#include <gtest/gtest.h>

#include "tests/reliability/memory_rig.h"

namespace momentkv {
namespace {

TEST(Memory, OverSubscriptionThenQuiesce) {
  test::over_subscription_then_quiesce(/*n=*/4, /*duration_s=*/20);
}

TEST(Memory, LowerBudgetBySighupUnderLoad) {
  test::lower_budget_under_load(/*n=*/4, /*cycles=*/1, /*hold_s=*/3);
}

}  // namespace
}  // namespace momentkv
