// MemoryBudget: reservations against a byte budget, and a budget lowered below what is reserved
// (a SIGHUP reload): nothing is taken back, nothing more fits until enough is released.
#include "core/engine/memory_budget.h"

#include <gtest/gtest.h>

namespace momentkv {
namespace {

TEST(MemoryBudget, ReservesWhatFitsAndStatesTheNumbersOtherwise) {
  MemoryBudget b(1000);
  EXPECT_EQ(b.try_reserve(600, "a"), std::nullopt);
  const auto err = b.try_reserve(401, "b");
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("401"), std::string::npos) << *err;
  EXPECT_NE(err->find("400 bytes"), std::string::npos) << *err;
  EXPECT_EQ(b.try_reserve(400, "c"), std::nullopt);
  EXPECT_EQ(b.available(), 0u);
  b.release(1000);
  EXPECT_EQ(b.used(), 0u);
}

TEST(MemoryBudget, LoweredBelowWhatIsReservedAdmitsNothingUntilReleased) {
  MemoryBudget b(1000);
  ASSERT_EQ(b.try_reserve(300, "a"), std::nullopt);
  ASSERT_EQ(b.try_reserve(300, "b"), std::nullopt);
  ASSERT_EQ(b.try_reserve(300, "c"), std::nullopt);
  b.set_budget(500);  // 900 reserved: over-committed, nothing is taken back
  EXPECT_EQ(b.budget(), 500u);
  EXPECT_EQ(b.used(), 900u);
  EXPECT_EQ(b.available(), 0u);
  EXPECT_TRUE(b.try_reserve(1, "d").has_value());
  b.release(300);  // 600 > 500: still nothing
  EXPECT_TRUE(b.try_reserve(1, "e").has_value());
  b.release(300);  // 300: 200 fit
  EXPECT_EQ(b.available(), 200u);
  EXPECT_TRUE(b.try_reserve(201, "f").has_value());
  EXPECT_EQ(b.try_reserve(200, "g"), std::nullopt);
  b.set_budget(2000);  // raised: room again
  EXPECT_EQ(b.available(), 1500u);
}

}  // namespace
}  // namespace momentkv
