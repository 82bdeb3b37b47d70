#include "core/sampler/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <random>
#include <vector>

#include "core/sampler/sampling_params.h"
#include "core/util/error.h"

// Counts heap allocations while `g_counting` is set, to check sample() stays allocation-free.
// GCC sees std::free inlined into a delete of memory from operator new and cannot tell that this
// file replaced both with malloc/free.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

namespace {
void* counted_alloc(std::size_t size) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  return std::malloc(size == 0 ? 1 : size);
}
}  // namespace

// Every replaceable form, so no allocation escapes the count or pairs with a foreign delete.
void* operator new(std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return counted_alloc(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return counted_alloc(size);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace momentkv {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Parameters with every truncation off, so only temperature shapes the distribution.
SamplingParams plain(float temperature, uint64_t seed = 1234) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  double max = -std::numeric_limits<double>::infinity();
  for (float l : logits) max = std::max(max, static_cast<double>(l));
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = std::exp((logits[i] - max) / temperature);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  return p;
}

std::vector<int32_t> kept_ids(const Sampler& s) {
  std::vector<int32_t> ids;
  for (const auto& c : s.candidates()) ids.push_back(c.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<float> random_logits(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> l(n);
  // Quantised so that ties occur.
  for (float& x : l) x = static_cast<float>(static_cast<int>(rng() % 200) - 100) / 10.0f;
  return l;
}

int32_t argmax_lowest(const std::vector<float>& l) {
  return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

// Probabilities {0.5, 0.25, 0.15, 0.1} as logits.
const std::vector<float> kFour = {std::log(0.5f), std::log(0.25f), std::log(0.15f), std::log(0.1f)};

TEST(SamplingParams, DefaultsMatchLlamaCppAndAreValid) {
  SamplingParams p;
  EXPECT_FLOAT_EQ(p.temperature, 0.8f);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
  EXPECT_FLOAT_EQ(p.min_p, 0.05f);
  EXPECT_FLOAT_EQ(p.repeat_penalty, 1.0f);
  EXPECT_EQ(p.repeat_last_n, 64);
  EXPECT_EQ(p.seed, kRandomSeed);
  EXPECT_EQ(p.max_tokens, -1);
  EXPECT_FALSE(p.validate().has_value());
}

TEST(SamplingParams, RejectsOutOfRangeValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const auto rejects = [](auto mutate, const char* field) {
    SamplingParams p;
    mutate(p);
    auto err = p.validate();
    ASSERT_TRUE(err.has_value()) << field;
    EXPECT_NE(err->find(field), std::string::npos) << *err;
    EXPECT_THROW(Sampler{p}, Error) << field;
  };
  rejects([&](SamplingParams& p) { p.temperature = nan; }, "temperature");
  rejects([&](SamplingParams& p) { p.temperature = -0.1f; }, "temperature");
  rejects([&](SamplingParams& p) { p.temperature = inf; }, "temperature");
  rejects([&](SamplingParams& p) { p.top_p = nan; }, "top_p");
  rejects([&](SamplingParams& p) { p.top_p = 0.0f; }, "top_p");
  rejects([&](SamplingParams& p) { p.top_p = -0.5f; }, "top_p");
  rejects([&](SamplingParams& p) { p.top_p = 1.5f; }, "top_p");
  rejects([&](SamplingParams& p) { p.min_p = nan; }, "min_p");
  rejects([&](SamplingParams& p) { p.min_p = -0.01f; }, "min_p");
  rejects([&](SamplingParams& p) { p.min_p = 1.01f; }, "min_p");
  rejects([&](SamplingParams& p) { p.repeat_penalty = nan; }, "repeat_penalty");
  rejects([&](SamplingParams& p) { p.repeat_penalty = 0.0f; }, "repeat_penalty");
  rejects([&](SamplingParams& p) { p.repeat_penalty = -1.0f; }, "repeat_penalty");
  rejects([&](SamplingParams& p) { p.repeat_penalty = inf; }, "repeat_penalty");
  rejects([&](SamplingParams& p) { p.repeat_last_n = -1; }, "repeat_last_n");
  rejects([&](SamplingParams& p) { p.max_tokens = -2; }, "max_tokens");
  rejects([&](SamplingParams& p) { p.stop = {"ok", ""}; }, "stop");
  rejects([&](SamplingParams& p) { p.stop = {std::string(2000, 'x')}; }, "stop");

  // Edges that are allowed: greedy, everything disabled, a top-p of exactly 1.
  SamplingParams p = plain(0.0f);
  p.top_k = -5;
  p.repeat_last_n = 0;
  p.max_tokens = 0;
  EXPECT_FALSE(p.validate().has_value());
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler s(plain(0.0f));
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{5.0f, 1.0f, 5.0f}), 0);
  EXPECT_EQ(s.sample(std::vector<float>{-1.0f, 7.0f, 7.0f, 7.0f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{kNegInf, kNegInf, -3.0f}), 2);
  ASSERT_EQ(s.candidates().size(), 1u);
  EXPECT_EQ(s.candidates()[0].id, 2);
  EXPECT_EQ(s.candidates()[0].p, 1.0f);
  // Negative temperature is not valid; zero is greedy whatever the truncation settings.
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler t(p);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto l = random_logits(500, seed);
    EXPECT_EQ(t.sample(l), argmax_lowest(l));
  }
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  for (float temperature : {0.01f, 0.5f, 1.0f, 5.0f, 1000.0f}) {
    SamplingParams p;  // default top-p / min-p stay on
    p.temperature = temperature;
    p.top_k = 1;
    p.seed = 7;
    Sampler s(p);
    for (uint64_t seed = 0; seed < 50; ++seed) {
      auto l = random_logits(300, seed);
      ASSERT_EQ(s.sample(l), argmax_lowest(l)) << "temperature " << temperature;
    }
  }
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedsDiffer) {
  const std::vector<float> logits(50, 0.0f);
  const auto run = [&](uint64_t seed) {
    Sampler s(plain(1.0f, seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 100; ++i) out.push_back(s.sample(logits));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
  EXPECT_NE(run(0), run(1));
}

TEST(Sampler, ResetReplaysTheSameDraws) {
  Sampler s(plain(1.0f, 99));
  const auto l = random_logits(64, 3);
  std::vector<int32_t> first, second;
  for (int i = 0; i < 30; ++i) first.push_back(s.sample(l));
  s.reset();
  for (int i = 0; i < 30; ++i) second.push_back(s.sample(l));
  EXPECT_EQ(first, second);
}

TEST(Sampler, RandomSeedIsPickedAndReported) {
  Sampler a(plain(1.0f, kRandomSeed));
  Sampler b(plain(1.0f, kRandomSeed));
  EXPECT_NE(a.seed(), kRandomSeed);
  EXPECT_NE(a.seed(), b.seed());
  // The reported seed replays the stream.
  Sampler c(plain(1.0f, a.seed()));
  const std::vector<float> logits(1000, 0.0f);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.sample(logits), c.sample(logits));
}

// With equal logits every weight is exactly 1, so the draw is floor(u * n) with u the top 53 bits
// of std::mt19937_64, whose output the standard fixes. These values must hold on every platform.
TEST(Sampler, DrawsArePinnedAcrossPlatforms) {
  std::mt19937_64 conformance;
  conformance.discard(9999);
  ASSERT_EQ(conformance(), 9981545732273789042ull);  // required by [rand.predef]

  Sampler s(plain(1.0f, 2024));
  const std::vector<float> logits(1000, 0.5f);
  std::vector<int32_t> draws;
  for (int i = 0; i < 10; ++i) draws.push_back(s.sample(logits));
  EXPECT_EQ(draws, (std::vector<int32_t>{612, 794, 265, 334, 6, 140, 936, 566, 233, 534}));
}

// Chi-square goodness of fit of 200000 draws against softmax(logits / T). With 7 degrees of
// freedom, P(chi2 > 40) = 1.3e-6 for a correct sampler; the seed is fixed, so the test is
// deterministic, and the bound catches any error in the probabilities above ~1%.
TEST(Sampler, EmpiricalDistributionMatchesSoftmax) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 1.5f, 3.0f, -0.5f};
  for (float temperature : {1.0f, 0.5f, 2.0f}) {
    Sampler s(plain(temperature, 5));
    constexpr int kDraws = 200000;
    std::vector<int> counts(logits.size(), 0);
    for (int i = 0; i < kDraws; ++i) ++counts[static_cast<size_t>(s.sample(logits))];
    const auto expected = softmax(logits, temperature);
    double chi2 = 0.0;
    for (size_t i = 0; i < logits.size(); ++i) {
      const double e = expected[i] * kDraws;
      chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    EXPECT_LT(chi2, 40.0) << "temperature " << temperature;
    // The reported probabilities are the softmax.
    ASSERT_EQ(s.candidates().size(), logits.size());
    for (const auto& c : s.candidates()) {
      EXPECT_NEAR(c.p, expected[static_cast<size_t>(c.id)], 1e-6);
    }
  }
}

TEST(Sampler, NegativeInfinityIsNeverDrawn) {
  Sampler s(plain(1.0f, 11));
  const std::vector<float> logits = {kNegInf, 0.0f, kNegInf, 0.0f, kNegInf};
  for (int i = 0; i < 2000; ++i) {
    const int32_t t = s.sample(logits);
    ASSERT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(Sampler, TopKKeepsTheKHighest) {
  SamplingParams p = plain(1.0f);
  p.top_k = 3;
  Sampler s(p);
  s.sample(std::vector<float>{1.0f, 9.0f, 3.0f, 9.0f, 2.0f, 3.0f});
  // Ties at the cut go to the lower id: 9, 9, then 3 at id 2 (not id 5).
  EXPECT_EQ(kept_ids(s), (std::vector<int32_t>{1, 2, 3}));
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  const auto kept = [](float top_p, int32_t top_k) {
    SamplingParams p = plain(1.0f);
    p.top_p = top_p;
    p.top_k = top_k;
    Sampler s(p);
    s.sample(kFour);
    return kept_ids(s);
  };
  EXPECT_EQ(kept(0.4f, 0), (std::vector<int32_t>{0}));
  EXPECT_EQ(kept(0.7f, 0), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(kept(0.8f, 0), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(kept(0.95f, 0), (std::vector<int32_t>{0, 1, 2, 3}));
  // After top-k = 2 the probabilities renormalise to {2/3, 1/3}: 2/3 alone reaches 0.6.
  EXPECT_EQ(kept(0.6f, 2), (std::vector<int32_t>{0}));
  EXPECT_EQ(kept(0.6f, 0), (std::vector<int32_t>{0, 1}));

  SamplingParams p = plain(1.0f);
  p.top_p = 0.7f;
  Sampler s(p);
  s.sample(kFour);
  for (const auto& c : s.candidates()) {
    EXPECT_NEAR(c.p, c.id == 0 ? 2.0 / 3.0 : 1.0 / 3.0, 1e-6);
  }
}

TEST(Sampler, MinPKeepsTokensWithinAFactorOfTheBest) {
  const auto kept = [](float min_p, float top_p) {
    SamplingParams p = plain(1.0f);
    p.min_p = min_p;
    p.top_p = top_p;
    Sampler s(p);
    s.sample(kFour);
    return kept_ids(s);
  };
  // Threshold min_p * 0.5.
  EXPECT_EQ(kept(0.4f, 1.0f), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(kept(0.25f, 1.0f), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(kept(0.1f, 1.0f), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(kept(1.0f, 1.0f), (std::vector<int32_t>{0}));
  // With top-p, the smaller of the two sets.
  EXPECT_EQ(kept(0.4f, 0.8f), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(kept(0.1f, 0.7f), (std::vector<int32_t>{0, 1}));
}

// Reference for the whole truncation chain, written the slow obvious way: sort everything, then
// top-k, top-p over the softmax of what is left, min-p on the result.
std::vector<int32_t> reference_kept(const std::vector<float>& logits, int32_t top_k, float top_p,
                                    float min_p) {
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
  });
  if (top_k > 0 && static_cast<size_t>(top_k) < ids.size()) ids.resize(static_cast<size_t>(top_k));
  const double max = logits[static_cast<size_t>(ids[0])];
  if (top_p < 1.0f) {
    double sum = 0.0;
    for (int32_t id : ids) sum += std::exp(logits[static_cast<size_t>(id)] - max);
    double cum = 0.0;
    for (size_t i = 0; i < ids.size(); ++i) {
      cum += std::exp(logits[static_cast<size_t>(ids[i])] - max) / sum;
      if (cum >= top_p) {
        ids.resize(i + 1);
        break;
      }
    }
  }
  if (min_p > 0.0f) {
    std::vector<int32_t> kept;
    for (int32_t id : ids) {
      if (logits[static_cast<size_t>(id)] >= static_cast<float>(max) + std::log(min_p)) {
        kept.push_back(id);
      }
    }
    ids = kept;
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST(Sampler, TruncationChainMatchesReference) {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 300; ++trial) {
    auto logits = random_logits(200 + static_cast<size_t>(trial), 1000 + trial);
    for (float& l : logits) l *= 0.3f;  // flatter, so the cuts land inside the vocabulary
    SamplingParams p = plain(0.7f, static_cast<uint64_t>(trial));
    p.top_k = static_cast<int32_t>(rng() % 4 == 0 ? 0 : rng() % 150);
    p.top_p = rng() % 4 == 0 ? 1.0f : 0.05f + static_cast<float>(rng() % 90) / 100.0f;
    p.min_p = rng() % 4 == 0 ? 0.0f : static_cast<float>(rng() % 50) / 100.0f;
    Sampler s(p);
    const int32_t t = s.sample(logits);
    const auto want = reference_kept(logits, p.top_k, p.top_p, p.min_p);
    ASSERT_EQ(kept_ids(s), want) << "trial " << trial << " k " << p.top_k << " p " << p.top_p
                                 << " min_p " << p.min_p;
    EXPECT_TRUE(std::binary_search(want.begin(), want.end(), t));
    double total = 0.0;
    for (const auto& c : s.candidates()) total += c.p;
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
}

TEST(Sampler, RepetitionPenaltyArithmetic) {
  SamplingParams p = plain(1.0f);
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 8;
  Sampler s(p);
  for (int32_t t : {0, 1, 1, 4}) s.accept(t);  // 1 twice: penalised once
  s.sample(std::vector<float>{2.0f, -1.0f, 0.5f, 3.0f, 0.0f});
  const std::vector<float> want = {1.0f, -2.0f, 0.5f, 3.0f, 0.0f};
  ASSERT_EQ(s.candidates().size(), want.size());
  for (const auto& c : s.candidates()) EXPECT_EQ(c.logit, want[static_cast<size_t>(c.id)]);

  // Only the last repeat_last_n accepted tokens count.
  p.repeat_last_n = 2;
  Sampler window(p);
  for (int32_t t : {0, 1, 4}) window.accept(t);
  window.sample(std::vector<float>{2.0f, -1.0f, 0.5f, 3.0f, 4.0f});
  const std::vector<float> want_window = {2.0f, -2.0f, 0.5f, 3.0f, 2.0f};
  for (const auto& c : window.candidates()) {
    EXPECT_EQ(c.logit, want_window[static_cast<size_t>(c.id)]);
  }

  // The penalty applies before greedy, and reset() forgets it.
  SamplingParams g = plain(0.0f);
  g.repeat_penalty = 2.0f;
  Sampler greedy(g);
  greedy.accept(0);
  EXPECT_EQ(greedy.sample(std::vector<float>{3.0f, 2.0f}), 1);  // 3 / 2 < 2
  greedy.reset();
  EXPECT_EQ(greedy.sample(std::vector<float>{3.0f, 2.0f}), 0);
}

TEST(Sampler, RejectsBrokenLogitsAndHistory) {
  Sampler s(plain(1.0f));
  EXPECT_THROW(s.sample(std::vector<float>{}), Error);
  EXPECT_THROW(s.sample(std::vector<float>{0.0f, std::numeric_limits<float>::quiet_NaN()}), Error);
  EXPECT_THROW(s.sample(std::vector<float>{0.0f, std::numeric_limits<float>::infinity()}), Error);
  EXPECT_THROW(s.sample(std::vector<float>{kNegInf, kNegInf}), Error);
  EXPECT_THROW(s.accept(-1), Error);

  SamplingParams p = plain(1.0f);
  p.repeat_penalty = 1.1f;
  Sampler h(p);
  h.accept(10);
  EXPECT_THROW(h.sample(std::vector<float>(5, 0.0f)), Error);
}

TEST(Sampler, SteadyStateDoesNotAllocate) {
  SamplingParams p;  // defaults: top-k, top-p, min-p all on
  p.seed = 3;
  p.repeat_penalty = 1.1f;
  Sampler s(p);
  const auto logits = random_logits(32000, 8);
  SamplingParams q = plain(1.0f, 3);
  q.top_p = 0.9f;  // full sort path
  Sampler t(q);
  int32_t token = s.sample(logits);
  t.sample(logits);
  s.accept(token);
  g_allocations = 0;
  g_counting = true;
  for (int i = 0; i < 100; ++i) {
    token = s.sample(logits);
    s.accept(token);
    t.sample(logits);
  }
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0);
}

}  // namespace
}  // namespace momentkv
