// SnapKV prefill compression: which prompt tokens survive, driven by scripted attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/kv/kv_cache.h"
#include "core/kv/snapkv_compressor.h"

namespace momentkv {
namespace {

KvConfig snap_config(int32_t budget, int32_t window, int32_t kernel) {
  KvConfig c;
  c.policy = "moment";
  c.decode_budget = 8;
  c.prefill_budget = budget;
  c.snapkv_window = window;
  c.snapkv_kernel = kernel;
  return c;
}

std::set<int32_t> positions(const KvCells& c) {
  std::set<int32_t> s;
  for (int32_t i = 0; i < c.n_used(); ++i) s.insert(c.pos(i));
  return s;
}

TEST(SnapKv, KeepsWindowAndTopPooledTokensPerHead) {
  // 12 prompt tokens, budget 6, window 2, kernel 1 (no pooling): keep positions 10, 11 and the
  // four with the highest attention, which differ per KV head.
  const KvConfig c = snap_config(6, 2, 1);
  std::vector<KvCells> lanes(2, KvCells(32));
  for (auto& l : lanes) {
    for (int32_t p = 0; p < 12; ++p) l.add(p, Region::kPrefill, 0);
  }
  std::vector<float> attn(2 * 32, 0.0f);
  for (int32_t p : {1, 3, 5, 7}) attn[static_cast<size_t>(p)] = 1.0f + static_cast<float>(p);
  for (int32_t p : {0, 2, 4, 9}) attn[32 + static_cast<size_t>(p)] = 1.0f;
  attn[32 + 8] = 0.5f;  // lane 1's fifth best: dropped
  SnapKvCompressor snap(c);
  EvictionPlan plan;
  snap.plan(lanes, attn.data(), 32, 11, plan);
  ASSERT_EQ(plan.slots.size(), 2u);
  for (size_t l = 0; l < 2; ++l) {
    auto list = plan.slots[l];
    std::sort(list.begin(), list.end(), std::greater<>());
    for (int32_t s : list) lanes[l].remove(s);
  }
  EXPECT_EQ(positions(lanes[0]), (std::set<int32_t>{1, 3, 5, 7, 10, 11}));
  EXPECT_EQ(positions(lanes[1]), (std::set<int32_t>{0, 2, 4, 9, 10, 11}));
}

TEST(SnapKv, PoolingSpreadsAttentionToNeighbours) {
  // One strongly attended token at position 4 with kernel 3: its neighbours 3 and 5 score above
  // a lone weakly attended token, so they are kept with it.
  const KvConfig c = snap_config(5, 2, 3);
  std::vector<KvCells> lanes(1, KvCells(32));
  for (int32_t p = 0; p < 12; ++p) lanes[0].add(p, Region::kPrefill, 0);
  std::vector<float> attn(32, 0.0f);
  attn[4] = 3.0f;
  attn[8] = 0.6f;
  SnapKvCompressor snap(c);
  EvictionPlan plan;
  snap.plan(lanes, attn.data(), 32, 11, plan);
  auto list = plan.slots[0];
  std::sort(list.begin(), list.end(), std::greater<>());
  for (int32_t s : list) lanes[0].remove(s);
  EXPECT_EQ(positions(lanes[0]), (std::set<int32_t>{3, 4, 5, 10, 11}));
}

TEST(SnapKv, CacheCompressesChunkedPromptWithinItsReservation) {
  KvConfig c = snap_config(20, 4, 5);
  c.prefill_chunk = 8;
  const int32_t max_prompt = 100;
  KvCache cache(2, 2, 8, max_prompt, c);
  // Prompt slots: budget 20 + one chunk of 8; decode 8 + 1.
  EXPECT_EQ(cache.capacity(), 20 + 8 + 8 + 1);
  EXPECT_TRUE(cache.can_append(8, Region::kPrefill));
  int32_t pos = 0;
  std::vector<float> row(8, 0.0f);
  for (int32_t chunk = 0; chunk < 100 / 8 + 1; ++chunk) {
    const int32_t n = std::min(8, max_prompt - pos);
    if (n <= 0) break;
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = pos + i;
    ASSERT_TRUE(cache.can_append(n, Region::kPrefill));
    cache.append(p.data(), n, Region::kPrefill);
    pos += n;
    for (int32_t l = 0; l < 2; ++l) {
      int32_t from = -1;
      float* a = cache.begin_prefill_stats(l, n, &from);
      if (cache.cells(l, 0).n_prefill() > 20) {
        ASSERT_NE(a, nullptr);
        EXPECT_EQ(from, std::max(0, n - 4));
        for (int32_t h = 0; h < 2; ++h) {
          for (int32_t s = 0; s < cache.cells(l, h).n_used(); ++s) {
            a[h * cache.stats_stride() + s] = static_cast<float>(cache.cells(l, h).pos(s) % 7);
          }
        }
      } else {
        EXPECT_EQ(a, nullptr);
      }
      cache.after_attention(l, 2, n, false);
      EXPECT_LE(cache.cells(l, 0).n_prefill(), 20);
    }
    cache.check_invariants();
  }
  EXPECT_FALSE(cache.can_append(1, Region::kPrefill));  // the whole prompt reservation is used
  EXPECT_EQ(cache.stats().prompt_evicted, 80);
  EXPECT_TRUE(cache.stats().context_altered());
  // The newest window of the prompt always survives.
  const auto kept = positions(cache.cells(0, 0));
  for (int32_t p = 96; p < 100; ++p) EXPECT_TRUE(kept.count(p)) << p;
}

}  // namespace
}  // namespace momentkv
