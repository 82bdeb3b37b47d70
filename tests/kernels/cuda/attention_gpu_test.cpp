// The CUDA decode attention (kernels/cuda/attention.h) against the CPU attention kernel with the
// scalar row kernels (the oracle) and the Moment-KV update of MomentPolicy::observe written out
// here: outputs, per-lane probability sums and updated scores, for GQA groups of 1 and 8, head
// dims 64 and 128, masked slots, both granularities. Tolerance: the GPU sums in another order
// and uses expf, 2e-5 relative on outputs and 1e-6 absolute on probabilities and scores.
// Skipped at run time without a device.
#include "kernels/cuda/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/kv/kv_cells.h"
#include "core/kv/kv_storage.h"
#include "core/util/error.h"
#include "core/util/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "tests/kernels/cuda/device_vectors.h"

namespace momentkv::kernels::cuda {
namespace {

using testing::download;
using testing::random_values;
using testing::upload;

struct Case {
  int32_t n_head, n_head_kv, head_dim, capacity, n_used;
  bool per_lane;
};

TEST(CudaAttention, MatchesTheCpuKernelAndMomentUpdate) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  ThreadPool pool(2);
  for (const Case& c : {Case{32, 4, 64, 300, 257, false}, Case{32, 4, 64, 300, 300, true},
                        Case{8, 8, 128, 64, 40, false}, Case{16, 2, 128, 2100, 2048, false}}) {
    SCOPED_TRACE(std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) + " heads of " +
                 std::to_string(c.head_dim) + ", " + std::to_string(c.n_used) + " slots" +
                 (c.per_lane ? ", per lane" : ", per layer"));
    const int32_t group = c.n_head / c.n_head_kv;
    KvStorage kv(KvType::kF16, c.n_head_kv, c.capacity, c.head_dim);
    std::vector<KvCells> lanes(static_cast<size_t>(c.n_head_kv), KvCells(c.capacity));
    std::mt19937 rng(7);
    std::vector<int32_t> order(static_cast<size_t>(c.n_used));
    for (int32_t s = 0; s < c.n_used; ++s) order[static_cast<size_t>(s)] = 3 * s;
    std::shuffle(order.begin(), order.end(), rng);
    const auto rows =
        random_values(static_cast<size_t>(2 * c.n_head_kv * c.n_used * c.head_dim), 8);
    for (int32_t g = 0; g < c.n_head_kv; ++g) {
      for (int32_t s = 0; s < c.n_used; ++s) {
        lanes[static_cast<size_t>(g)].add(order[static_cast<size_t>(s)],
                                          s < c.n_used / 4 ? Region::kPrefill : Region::kDecode, s);
        const float* r = rows.data() + 2 * static_cast<size_t>((g * c.n_used + s) * c.head_dim);
        kv.write(g, s, r, r + c.head_dim);
      }
    }
    const auto q = random_values(static_cast<size_t>(c.n_head * c.head_dim), 9, 0.5f);
    const int32_t q_pos = 3 * c.n_used - 10;  // the last few positions are masked

    // The CPU oracle: outputs and per-lane probability sums.
    std::vector<float> want_out(q.size()), attn_sum(static_cast<size_t>(c.n_head_kv * c.capacity));
    AttentionArgs args;
    args.n_tokens = 1;
    args.n_head = c.n_head;
    args.n_head_kv = c.n_head_kv;
    args.head_dim = c.head_dim;
    args.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    args.q = q.data();
    args.q_pos = &q_pos;
    args.out = want_out.data();
    args.kv = &kv;
    args.layer = 0;
    args.lanes = lanes.data();
    args.attn_sum = attn_sum.data();
    args.attn_stride = c.capacity;
    attention(pool, args, Isa::kScalar, AttentionPath::kPerHead);

    // Scores before and after MomentPolicy::observe (alpha 0.9).
    const float alpha = 0.9f;
    auto scores = random_values(static_cast<size_t>(c.n_head_kv * c.capacity), 10, 0.1f);
    std::vector<uint8_t> evictable(scores.size(), 0);
    std::vector<int32_t> pos(scores.size(), 0);
    for (int32_t g = 0; g < c.n_head_kv; ++g) {
      for (int32_t s = 0; s < c.n_used; ++s) {
        const size_t i = static_cast<size_t>(g * c.capacity + s);
        evictable[i] = lanes[static_cast<size_t>(g)].region(s) == Region::kDecode;
        pos[i] = lanes[static_cast<size_t>(g)].pos(s);
      }
    }
    std::vector<float> want_scores = scores;
    for (int32_t s = 0; s < c.n_used; ++s) {
      if (c.per_lane) {
        for (int32_t g = 0; g < c.n_head_kv; ++g) {
          const size_t i = static_cast<size_t>(g * c.capacity + s);
          if (evictable[i])
            want_scores[i] = alpha * scores[i] + attn_sum[i] / static_cast<float>(group);
        }
      } else {
        float total = 0.0f;
        for (int32_t g = 0; g < c.n_head_kv; ++g)
          total += attn_sum[static_cast<size_t>(g * c.capacity + s)];
        const float v = evictable[static_cast<size_t>(s)] ? alpha * scores[static_cast<size_t>(s)] +
                                                                total / static_cast<float>(c.n_head)
                                                          : scores[static_cast<size_t>(s)];
        for (int32_t g = 0; g < c.n_head_kv; ++g)
          want_scores[static_cast<size_t>(g * c.capacity + s)] = v;
      }
    }

    // The same on the device.
    const auto* kv_bytes = kv.k(0, 0);
    const std::vector<uint8_t> kv_host(kv_bytes, kv_bytes + kv.bytes());
    DeviceArena arena(
        kv.bytes() +
        4 * (2 * q.size() + 4 * scores.size() + static_cast<size_t>(c.n_head * c.capacity)) + 4096);
    const auto* dkv = reinterpret_cast<const uint16_t*>(upload(arena, kv_host));
    DecodeAttention a;
    a.q = upload(arena, q);
    a.out = static_cast<float*>(arena.allocate(q.size() * sizeof(float)));
    a.n_head = c.n_head;
    a.n_head_kv = c.n_head_kv;
    a.head_dim = c.head_dim;
    a.scale = args.scale;
    a.q_pos = q_pos;
    a.k = dkv;
    a.v = dkv + (kv.v(0, 0) - kv.k(0, 0)) / 2;
    a.lane_stride = c.n_head_kv > 1 ? (kv.k(1, 0) - kv.k(0, 0)) / 2 : 0;
    a.row_stride = static_cast<int64_t>(kv.row_bytes() / 2);
    a.capacity = c.capacity;
    a.n_used = c.n_used;
    a.pos = upload(arena, pos);
    a.scores = upload(arena, scores);
    a.evictable = upload(arena, evictable);
    a.alpha = alpha;
    a.per_lane = c.per_lane;
    a.probs = static_cast<float*>(arena.allocate(static_cast<uint64_t>(c.n_head * c.capacity) * 4));
    a.lane_sums = static_cast<float*>(arena.allocate(scores.size() * sizeof(float)));
    a.counter = upload(arena, std::vector<unsigned>{0});
    decode_attention(a);

    const auto out = download(a.out, q.size());
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_NEAR(out[i], want_out[i], 2e-5 * (std::fabs(double{want_out[i]}) + 0.1)) << i;
    }
    const auto sums = download(a.lane_sums, scores.size());
    const auto got_scores = download(a.scores, scores.size());
    for (int32_t g = 0; g < c.n_head_kv; ++g) {
      for (int32_t s = 0; s < c.n_used; ++s) {
        const size_t i = static_cast<size_t>(g * c.capacity + s);
        ASSERT_NEAR(sums[i], attn_sum[i], 1e-6 * group) << "lane " << g << " slot " << s;
        ASSERT_NEAR(got_scores[i], want_scores[i], 1e-6) << "lane " << g << " slot " << s;
      }
    }
    EXPECT_EQ(download(a.counter, 1)[0], 0u);  // left ready for the next call
  }
}

// Refused before any device work, so this holds on any machine.
TEST(CudaAttention, BadShapesAreRefused) {
  DecodeAttention a;
  a.n_head = 32;
  a.n_head_kv = 5;  // not a divisor
  a.head_dim = 64;
  a.row_stride = 64;
  a.capacity = 10;
  a.n_used = 5;
  EXPECT_THROW(decode_attention(a), Error);
  a.n_head_kv = 4;
  a.head_dim = 512;  // above 256
  a.row_stride = 512;
  EXPECT_THROW(decode_attention(a), Error);
  a.head_dim = 64;
  a.row_stride = 64;
  a.n_used = 11;  // more than the capacity
  EXPECT_THROW(decode_attention(a), Error);
}

}  // namespace
}  // namespace momentkv::kernels::cuda
