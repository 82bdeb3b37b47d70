// The attention kernel's grouped fast paths (AVX2, AVX-512, NEON; f32/f16 KV rows) against its
// per-head path with the same instruction set's row kernels (bit for bit: AVX2's for the x86
// paths), and all against the scalar kernels
// (within rounding): one and several tokens, GQA groups of 1 to 8, head dims with and without a
// 32-element tail and above the AVX-512 kernels' 128 (which go to AVX2), slot counts that are
// and are not multiples of 16, masked slots, with and without the fused statistics.
#include "kernels/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace momentkv::kernels {
namespace {

struct Case {
  KvType type;
  int32_t n_head, n_head_kv, head_dim, n_slots, n_tokens;
  bool stats;
};

struct Fixture {
  KvStorage kv;
  std::vector<KvCells> lanes;
  std::vector<float> q;
  std::vector<int32_t> q_pos;
  AttentionArgs args;

  explicit Fixture(const Case& c)
      : kv(c.type, 2 * c.n_head_kv, c.n_slots, c.head_dim),
        lanes(static_cast<size_t>(c.n_head_kv), KvCells(c.n_slots)) {
    std::mt19937 rng(static_cast<uint32_t>(c.n_slots * 31 + c.head_dim));
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> k(static_cast<size_t>(c.head_dim)), v(k.size());
    // Layer 1 (lanes n_head_kv..2n_head_kv-1), slots in a shuffled position order.
    std::vector<int32_t> positions(static_cast<size_t>(c.n_slots));
    for (int32_t s = 0; s < c.n_slots; ++s) positions[static_cast<size_t>(s)] = s * 2;
    std::shuffle(positions.begin(), positions.end(), rng);
    for (int32_t g = 0; g < c.n_head_kv; ++g) {
      for (int32_t s = 0; s < c.n_slots; ++s) {
        for (auto& x : k) x = dist(rng);
        for (auto& x : v) x = dist(rng);
        lanes[static_cast<size_t>(g)].add(positions[static_cast<size_t>(s)],
                                          s < c.n_slots / 3 ? Region::kPrefill : Region::kDecode,
                                          s);
        kv.write(c.n_head_kv + g, s, k.data(), v.data());
      }
    }
    q.resize(static_cast<size_t>(c.n_tokens * c.n_head * c.head_dim));
    for (auto& x : q) x = dist(rng);
    // The last token sees every slot, earlier ones only part (masked slots).
    for (int32_t i = 0; i < c.n_tokens; ++i)
      q_pos.push_back(2 * c.n_slots - 1 - 7 * (c.n_tokens - 1 - i));
    args.n_tokens = c.n_tokens;
    args.n_head = c.n_head;
    args.n_head_kv = c.n_head_kv;
    args.head_dim = c.head_dim;
    args.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    args.q = q.data();
    args.q_pos = q_pos.data();
    args.kv = &kv;
    args.layer = 1;
    args.lanes = lanes.data();
    args.attn_stride = c.n_slots;
  }

  // out and (when stats) the summed probabilities.
  std::pair<std::vector<float>, std::vector<float>> run(ThreadPool& pool, const Case& c, Isa isa,
                                                        AttentionPath path) {
    std::vector<float> out(q.size(), -1.0f), sum;
    AttentionArgs a = args;
    a.out = out.data();
    if (c.stats) {
      sum.assign(static_cast<size_t>(c.n_head_kv * c.n_slots), 0.0f);
      a.attn_sum = sum.data();
      a.observe_from = c.n_tokens > 1 ? 1 : 0;
    }
    attention(pool, a, isa, path);
    return {out, sum};
  }
};

TEST(Attention, GroupedPathEqualsPerHeadPathAndScalar) {
  ThreadPool pool(2);
  const Case cases[] = {
      {KvType::kF16, 32, 4, 64, 300, 1, true}, {KvType::kF16, 32, 4, 64, 300, 1, false},
      {KvType::kF32, 8, 8, 48, 40, 3, true},   {KvType::kF16, 8, 2, 128, 33, 5, false},
      {KvType::kF32, 16, 2, 64, 1, 1, false},  {KvType::kF16, 4, 1, 16, 17, 2, true},
      {KvType::kF16, 12, 4, 40, 100, 4, true}, {KvType::kF32, 6, 2, 96, 64, 2, false},
      {KvType::kF16, 14, 2, 24, 31, 1, true},  {KvType::kF16, 4, 2, 256, 20, 1, false},
      {KvType::kF16, 10, 2, 8, 9, 3, true},    {KvType::kF32, 2, 2, 128, 48, 2, true},
      {KvType::kQ8_0, 8, 2, 64, 50, 1, true},  // q8_0: always the per-head path
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(kv_type_name(c.type)) + " heads " + std::to_string(c.n_head) + "/" +
                 std::to_string(c.n_head_kv) + " hd " + std::to_string(c.head_dim) + " slots " +
                 std::to_string(c.n_slots) + " tokens " + std::to_string(c.n_tokens));
    Fixture s(c);
    const auto scalar = s.run(pool, c, Isa::kScalar, AttentionPath::kPerHead);
    for (float x : scalar.first) ASSERT_TRUE(std::isfinite(x));
    const auto per_head = s.run(pool, c, best_isa(), AttentionPath::kPerHead);
    for (const AttentionPath path : attention_paths()) {
      SCOPED_TRACE(attention_path_name(path));
      const auto grouped = s.run(pool, c, best_isa(), path);
      EXPECT_EQ(grouped.first, per_head.first);  // bit for bit
      EXPECT_EQ(grouped.second, per_head.second);
      for (size_t i = 0; i < scalar.first.size(); ++i) {
        ASSERT_NEAR(grouped.first[i], scalar.first[i], 1e-5f) << i;
      }
      for (size_t i = 0; i < scalar.second.size(); ++i) {
        ASSERT_NEAR(grouped.second[i], scalar.second[i], 1e-5f) << i;
      }
    }
  }
}

// kAuto takes the fastest path this CPU has, which gives the per-head results.
TEST(Attention, AutoPathEqualsPerHeadPath) {
  ThreadPool pool(2);
  const Case c{KvType::kF16, 32, 4, 64, 200, 1, true};
  Fixture s(c);
  const auto auto_path = s.run(pool, c, best_isa(), AttentionPath::kAuto);
  EXPECT_EQ(auto_path.first, s.run(pool, c, best_isa(), AttentionPath::kPerHead).first);
  EXPECT_EQ(auto_path.second, s.run(pool, c, best_isa(), AttentionPath::kPerHead).second);
}

// The paths this CPU runs: per-head always, first.
TEST(Attention, PathsStartWithPerHead) {
  const auto paths = attention_paths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), AttentionPath::kPerHead);
  for (const AttentionPath path : paths) EXPECT_NE(path, AttentionPath::kAuto);
}

}  // namespace
}  // namespace momentkv::kernels
