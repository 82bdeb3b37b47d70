// KvCells bookkeeping: slots fill from 0, remove() compacts by moving the last slot into the
// freed one, counts per region follow, and check_invariants() rejects corrupted state. Also the
// cache-level invariants (KvCache::check_invariants) catch lanes that disagree or overflow.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/kv/kv_cache.h"
#include "core/kv/kv_cells.h"
#include "core/util/error.h"

namespace momentkv {
namespace {

TEST(KvCells, AddFillsSlotsInOrderAndCountsRegions) {
  KvCells c(6);
  EXPECT_EQ(c.capacity(), 6);
  EXPECT_EQ(c.n_used(), 0);
  EXPECT_EQ(c.add(0, Region::kPrefill, 0), 0);
  EXPECT_EQ(c.add(1, Region::kPrefill, 0), 1);
  EXPECT_EQ(c.add(2, Region::kDecode, 1), 2);
  EXPECT_EQ(c.add(3, Region::kDecode, 2), 3);
  EXPECT_EQ(c.n_used(), 4);
  EXPECT_EQ(c.n_prefill(), 2);
  EXPECT_EQ(c.n_decode(), 2);
  for (int32_t s = 0; s < 4; ++s) {
    EXPECT_EQ(c.pos(s), s);
    EXPECT_EQ(c.positions()[s], s);
    EXPECT_EQ(c.score(s), 0.0f);
  }
  EXPECT_EQ(c.region(1), Region::kPrefill);
  EXPECT_EQ(c.region(2), Region::kDecode);
  EXPECT_EQ(c.birth(0), 0);
  EXPECT_EQ(c.birth(3), 2);
  EXPECT_NO_THROW(c.check_invariants());
}

TEST(KvCells, AddBeyondCapacityThrows) {
  KvCells c(2);
  c.add(0, Region::kPrefill, 0);
  c.add(1, Region::kDecode, 1);
  EXPECT_THROW(c.add(2, Region::kDecode, 2), Error);
  EXPECT_EQ(c.n_used(), 2);
}

TEST(KvCells, RemoveMovesTheLastSlotIntoTheHole) {
  KvCells c(8);
  c.add(10, Region::kPrefill, 0);
  c.add(11, Region::kDecode, 1);
  c.add(12, Region::kDecode, 2);
  c.add(13, Region::kDecode, 3);
  c.scores()[3] = 0.75f;
  c.scores()[1] = 0.25f;
  // Freeing slot 1 moves slot 3 (pos 13, birth 3, score 0.75) into it.
  EXPECT_EQ(c.remove(1), 3);
  EXPECT_EQ(c.n_used(), 3);
  EXPECT_EQ(c.n_decode(), 2);
  EXPECT_EQ(c.pos(1), 13);
  EXPECT_EQ(c.birth(1), 3);
  EXPECT_EQ(c.score(1), 0.75f);
  EXPECT_EQ(c.region(1), Region::kDecode);
  EXPECT_EQ(c.pos(0), 10);
  EXPECT_EQ(c.pos(2), 12);
  EXPECT_NO_THROW(c.check_invariants());
  // Freeing the last slot moves nothing.
  EXPECT_EQ(c.remove(2), 2);
  EXPECT_EQ(c.n_used(), 2);
  EXPECT_EQ(c.pos(1), 13);
  EXPECT_NO_THROW(c.check_invariants());
  // Freeing a prompt slot lowers the prefill count; the generated token takes its place.
  EXPECT_EQ(c.remove(0), 1);
  EXPECT_EQ(c.n_prefill(), 0);
  EXPECT_EQ(c.n_decode(), 1);
  EXPECT_EQ(c.pos(0), 13);
  EXPECT_EQ(c.region(0), Region::kDecode);
  EXPECT_NO_THROW(c.check_invariants());
  // The freed slots can be reused.
  EXPECT_EQ(c.add(20, Region::kDecode, 5), 1);
  EXPECT_EQ(c.birth(1), 5);
  EXPECT_EQ(c.score(1), 0.0f);
  EXPECT_NO_THROW(c.check_invariants());
}

TEST(KvCells, RemoveOfAFreeSlotThrows) {
  KvCells c(4);
  c.add(0, Region::kPrefill, 0);
  EXPECT_THROW(c.remove(1), Error);
  EXPECT_THROW(c.remove(-1), Error);
  EXPECT_EQ(c.remove(0), 0);
  EXPECT_THROW(c.remove(0), Error);
  EXPECT_EQ(c.n_used(), 0);
}

TEST(KvCells, ClearEmptiesAndKeepsCapacity) {
  KvCells c(3);
  c.add(0, Region::kPrefill, 0);
  c.add(1, Region::kDecode, 1);
  c.clear();
  EXPECT_EQ(c.n_used(), 0);
  EXPECT_EQ(c.n_prefill(), 0);
  EXPECT_EQ(c.capacity(), 3);
  EXPECT_NO_THROW(c.check_invariants());
  EXPECT_EQ(c.add(7, Region::kDecode, 1), 0);
  EXPECT_NO_THROW(c.check_invariants());
}

// Random adds and removes against a plain model of the lane (a vector that does the same
// swap-with-last), checking every field after every operation.
TEST(KvCells, RandomAddRemoveMatchesModel) {
  struct Entry {
    int32_t pos;
    Region region;
    int64_t birth;
    float score;
  };
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  KvCells c(16);
  std::vector<Entry> model;
  int32_t pos = 0;
  for (int step = 0; step < 5000; ++step) {
    const bool add = model.empty() || (model.size() < 16 && next() % 2 == 0);
    if (add) {
      const Region r = next() % 3 == 0 ? Region::kPrefill : Region::kDecode;
      const int32_t s = c.add(pos, r, step);
      ASSERT_EQ(s, static_cast<int32_t>(model.size()));
      const float score = static_cast<float>(next() % 1000) / 100.0f;
      c.scores()[s] = score;
      model.push_back({pos, r, step, score});
      ++pos;
    } else {
      const int32_t s = static_cast<int32_t>(next() % model.size());
      const int32_t last = static_cast<int32_t>(model.size()) - 1;
      ASSERT_EQ(c.remove(s), last);
      model[static_cast<size_t>(s)] = model.back();
      model.pop_back();
    }
    ASSERT_EQ(c.n_used(), static_cast<int32_t>(model.size()));
    int32_t prefill = 0;
    for (size_t i = 0; i < model.size(); ++i) {
      const int32_t s = static_cast<int32_t>(i);
      ASSERT_EQ(c.pos(s), model[i].pos) << "step " << step << " slot " << s;
      ASSERT_EQ(c.region(s), model[i].region);
      ASSERT_EQ(c.birth(s), model[i].birth);
      ASSERT_EQ(c.score(s), model[i].score);
      if (model[i].region == Region::kPrefill) ++prefill;
    }
    ASSERT_EQ(c.n_prefill(), prefill);
    ASSERT_EQ(c.n_decode(), c.n_used() - prefill);
    ASSERT_NO_THROW(c.check_invariants());
  }
}

TEST(KvCells, InvariantsCatchDuplicatePositions) {
  KvCells c(4);
  c.add(3, Region::kPrefill, 0);
  c.add(5, Region::kDecode, 1);
  EXPECT_NO_THROW(c.check_invariants());
  c.add(3, Region::kDecode, 2);
  EXPECT_THROW(c.check_invariants(), Error);
}

TEST(KvCells, InvariantsCatchMissingPosition) {
  KvCells c(4);
  c.add(0, Region::kPrefill, 0);
  c.add(-1, Region::kDecode, 1);
  EXPECT_THROW(c.check_invariants(), Error);
}

TEST(KvCells, InvariantsCatchNonFiniteScores) {
  KvCells c(4);
  c.add(0, Region::kDecode, 1);
  c.add(1, Region::kDecode, 2);
  c.scores()[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(c.check_invariants(), Error);
  c.scores()[1] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(c.check_invariants(), Error);
  c.scores()[1] = -std::numeric_limits<float>::infinity();
  EXPECT_THROW(c.check_invariants(), Error);
  c.scores()[1] = 1.0f;
  EXPECT_NO_THROW(c.check_invariants());
}

KvConfig evicting(const char* policy, KvScope scope, int32_t budget) {
  KvConfig c;
  c.policy = policy;
  c.scope = scope;
  c.type = KvType::kF32;
  c.decode_budget = budget;
  return c;
}

void add_tokens(KvCache& cache, int32_t first, int32_t n, Region region) {
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = first + i;
  cache.append(pos.data(), n, region);
}

TEST(KvCacheInvariants, CatchLanesOfALayerThatDiffer) {
  KvCache cache(2, 2, 8, 8, evicting("tova", KvScope::kDecode, 4));
  add_tokens(cache, 0, 3, Region::kPrefill);
  add_tokens(cache, 3, 2, Region::kDecode);
  EXPECT_NO_THROW(cache.check_invariants());
  // Evicting a generated token from only one KV head of a per-layer policy is corruption.
  cache.cells(1, 1).remove(4);
  EXPECT_THROW(cache.check_invariants(), Error);
}

TEST(KvCacheInvariants, CatchLanesThatHoldDifferentTokens) {
  KvCache cache(1, 2, 8, 8, evicting("moment", KvScope::kDecode, 4));
  add_tokens(cache, 0, 2, Region::kPrefill);
  add_tokens(cache, 2, 3, Region::kDecode);
  // Same sizes, different order: lane 1 loses slot 2 and gets a token at another position.
  cache.cells(0, 1).remove(2);
  cache.cells(0, 1).add(9, Region::kDecode, 3);
  EXPECT_THROW(cache.check_invariants(), Error);
}

TEST(KvCacheInvariants, CatchDecodeRegionOverBudget) {
  KvCache cache(1, 1, 8, 4, evicting("h2o", KvScope::kDecode, 2));
  add_tokens(cache, 0, 2, Region::kPrefill);
  add_tokens(cache, 2, 1, Region::kDecode);
  add_tokens(cache, 3, 1, Region::kDecode);
  EXPECT_NO_THROW(cache.check_invariants());
  // The +1 slot lets the newcomer in before the policy runs; not evicting it is a broken cache.
  add_tokens(cache, 4, 1, Region::kDecode);
  EXPECT_THROW(cache.check_invariants(), Error);
}

TEST(KvCacheInvariants, CatchAPromptTokenEvictedInDecodeScope) {
  KvCache cache(1, 1, 8, 4, evicting("moment", KvScope::kDecode, 2));
  add_tokens(cache, 0, 3, Region::kPrefill);
  add_tokens(cache, 3, 1, Region::kDecode);
  EXPECT_NO_THROW(cache.check_invariants());
  cache.cells(0, 0).remove(0);
  EXPECT_THROW(cache.check_invariants(), Error);
}

TEST(KvCacheInvariants, CatchUnifiedCacheOverItsSize) {
  KvCache cache(1, 1, 8, 4, evicting("tova", KvScope::kUnified, 2));
  add_tokens(cache, 0, 3, Region::kPrefill);
  add_tokens(cache, 3, 2, Region::kDecode);
  EXPECT_NO_THROW(cache.check_invariants());
  add_tokens(cache, 5, 1, Region::kDecode);
  EXPECT_THROW(cache.check_invariants(), Error);
}

TEST(KvCacheInvariants, FullCacheRefusesPastItsBudget) {
  KvConfig c = evicting("full", KvScope::kDecode, 3);
  KvCache cache(1, 1, 8, 4, c);
  add_tokens(cache, 0, 4, Region::kPrefill);
  EXPECT_FALSE(cache.can_append(1, Region::kPrefill));
  for (int32_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(cache.can_append(1, Region::kDecode));
    add_tokens(cache, 4 + i, 1, Region::kDecode);
    cache.after_attention(0, 1, 1, true);
    EXPECT_NO_THROW(cache.check_invariants());
  }
  EXPECT_FALSE(cache.can_append(1, Region::kDecode));
  EXPECT_THROW(add_tokens(cache, 7, 1, Region::kDecode), Error);
  EXPECT_EQ(cache.cells(0, 0).n_used(), 7);
  EXPECT_EQ(cache.stats().evicted, 0);
  EXPECT_FALSE(cache.stats().context_altered());
}

}  // namespace
}  // namespace momentkv
