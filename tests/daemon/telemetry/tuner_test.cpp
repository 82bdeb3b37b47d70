// The tuner on probe sets with known answers: the smallest budget whose confidence bound meets
// the target, the alpha tie-break, KL targets, too few probes, and a high-variance candidate
// whose mean is above the target but whose bound is not.
#include "daemon/telemetry/tuner.h"

#include <gtest/gtest.h>

#include <cmath>

namespace momentkv::telemetry {
namespace {

ProbeRow row(int32_t budget, double agreement, double kl = 0.1, double alpha = 0.9,
             const std::string& policy = "moment", const std::string& scope = "unified") {
  ProbeRow r;
  r.model = "stories260K";
  r.policy = policy;
  r.scope = scope;
  r.alpha = alpha;
  r.decode_budget = budget;
  r.tokens = 128;
  r.kl_mean = kl;
  r.top1_agreement = agreement;
  return r;
}

// n probes of one configuration with values spread +-spread around the given means.
void add(std::vector<ProbeRow>& rows, int n, int32_t budget, double agreement, double kl,
         double spread = 0.002, double alpha = 0.9) {
  for (int i = 0; i < n; ++i) {
    const double d = (i % 2 == 0 ? 1 : -1) * spread;
    rows.push_back(row(budget, agreement + d, kl * (1 + d), alpha));
  }
}

std::vector<ProbeRow> ladder(int n) {
  std::vector<ProbeRow> rows;
  add(rows, n, 64, 0.80, 0.40);
  add(rows, n, 128, 0.90, 0.20);
  add(rows, n, 256, 0.96, 0.05);
  add(rows, n, 512, 0.99, 0.01);
  return rows;
}

TuneTarget agreement(double a) {
  TuneTarget t;
  t.agreement = a;
  return t;
}

TEST(TunerTest, SmallestBudgetThatMeetsTheAgreementTarget) {
  const auto rec = recommend(ladder(8), {100, 200, 300, 400, 1000}, agreement(0.95));
  ASSERT_TRUE(rec.found) << rec.explanation;
  EXPECT_EQ(rec.chosen.decode_budget, 256);
  EXPECT_EQ(rec.chosen.policy, "moment");
  EXPECT_EQ(rec.chosen.scope, "unified");
  EXPECT_DOUBLE_EQ(rec.chosen.alpha, 0.9);
  EXPECT_EQ(rec.chosen.n_probes, 8);
  EXPECT_NEAR(rec.chosen.agreement_mean, 0.96, 1e-12);
  EXPECT_GE(rec.chosen.agreement_lower, 0.95);
  EXPECT_LT(rec.chosen.agreement_lower, 0.96);
  // The table: every configuration, by budget; only 256 and 512 meet.
  ASSERT_EQ(rec.table.size(), 4u);
  const int32_t budgets[] = {64, 128, 256, 512};
  const bool meets[] = {false, false, true, true};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(rec.table[i].decode_budget, budgets[i]);
    EXPECT_EQ(rec.table[i].meets, meets[i]) << budgets[i];
  }
  // Workload: p50 300, p95 400 + 0.8 * 600, three of five requests over 256 tokens.
  EXPECT_EQ(rec.requests, 5);
  EXPECT_DOUBLE_EQ(rec.generated_p50, 300);
  EXPECT_NEAR(rec.generated_p95, 880, 1e-9);
  EXPECT_DOUBLE_EQ(rec.share_over_budget, 0.6);
  EXPECT_NE(rec.explanation.find("decode_budget 256"), std::string::npos) << rec.explanation;
  EXPECT_NE(rec.explanation.find("decode_budget 128"), std::string::npos) << rec.explanation;
  EXPECT_NE(rec.explanation.find("60% of 5 requests"), std::string::npos) << rec.explanation;
  // A stricter target moves up the ladder; an unreachable one finds nothing.
  EXPECT_EQ(recommend(ladder(8), {}, agreement(0.98)).chosen.decode_budget, 512);
  EXPECT_FALSE(recommend(ladder(8), {}, agreement(0.995)).found);
}

TEST(TunerTest, BoundIsStudentT) {
  // Five probes 1, 1, 1, 1, 0.8: mean 0.96, sd sqrt(0.032 / 4), t(0.95, 4) = 2.131847.
  std::vector<ProbeRow> rows;
  for (double a : {1.0, 1.0, 1.0, 1.0, 0.8}) rows.push_back(row(128, a));
  const auto rec = recommend(rows, {}, agreement(0.95));
  ASSERT_EQ(rec.table.size(), 1u);
  const double sd = std::sqrt(0.032 / 4);
  EXPECT_NEAR(rec.table[0].agreement_mean, 0.96, 1e-12);
  EXPECT_NEAR(rec.table[0].agreement_lower, 0.96 - 2.131847 * sd / std::sqrt(5.0), 1e-6);
  EXPECT_NEAR(student_t_quantile(0.95, 4), 2.131847, 1e-6);
  EXPECT_NEAR(student_t_quantile(0.975, 10), 2.228139, 1e-6);
  EXPECT_NEAR(student_t_quantile(0.99, 1), 31.82052, 1e-4);
}

TEST(TunerTest, HighVarianceCandidateIsExcludedDespiteItsMean) {
  // Budget 128's mean (0.96) is above the target but its spread leaves the bound below; 256 is
  // steady at 0.955.
  std::vector<ProbeRow> rows;
  for (double a : {1.0, 1.0, 1.0, 1.0, 0.8}) rows.push_back(row(128, a));
  add(rows, 6, 256, 0.955, 0.05, 0.001);
  const auto rec = recommend(rows, {}, agreement(0.95));
  ASSERT_TRUE(rec.found) << rec.explanation;
  EXPECT_EQ(rec.chosen.decode_budget, 256);
  ASSERT_EQ(rec.table.size(), 2u);
  EXPECT_GT(rec.table[0].agreement_mean, rec.table[1].agreement_mean);
  EXPECT_FALSE(rec.table[0].meets);
  EXPECT_LT(rec.table[0].agreement_lower, 0.95);
  // Without the steady candidate nothing meets, and the explanation points at the noisy one and
  // how many more probes its mean and spread would need (n with 0.96 - t(n-1) * 0.0894 /
  // sqrt(n) >= 0.95: n = 219, so 214 more).
  rows.resize(5);
  const auto none = recommend(rows, {}, agreement(0.95));
  EXPECT_FALSE(none.found);
  EXPECT_NE(none.explanation.find("decode_budget 128"), std::string::npos) << none.explanation;
  EXPECT_NE(none.explanation.find("214 more probes"), std::string::npos) << none.explanation;
}

TEST(TunerTest, TooFewProbes) {
  const auto rec = recommend(ladder(3), {100}, agreement(0.95));
  EXPECT_FALSE(rec.found);
  EXPECT_EQ(rec.share_over_budget, 0.0);
  for (const auto& c : rec.table) EXPECT_FALSE(c.meets) << c.decode_budget;
  // 256 has a steady mean above the target: reaching min_probes (5) is enough.
  EXPECT_NE(rec.explanation.find("decode_budget 256"), std::string::npos) << rec.explanation;
  EXPECT_NE(rec.explanation.find("2 more probes"), std::string::npos) << rec.explanation;
  // min_probes is honoured even when the bound would already pass.
  TuneTarget t = agreement(0.95);
  t.min_probes = 3;
  EXPECT_TRUE(recommend(ladder(3), {}, t).found);
  // One probe has no spread, hence no bound, whatever min_probes says.
  t.min_probes = 1;
  EXPECT_FALSE(recommend(ladder(1), {}, t).found);
}

TEST(TunerTest, NoMeanMeetsTheTarget) {
  const auto rec = recommend(ladder(8), {}, agreement(0.999));
  EXPECT_FALSE(rec.found);
  EXPECT_NE(rec.explanation.find("No candidate's mean meets it"), std::string::npos)
      << rec.explanation;
  EXPECT_NE(rec.explanation.find("decode_budget 512"), std::string::npos) << rec.explanation;
}

TEST(TunerTest, KlTarget) {
  TuneTarget t;
  t.kl = 0.1;
  const auto rec = recommend(ladder(8), {}, t);
  ASSERT_TRUE(rec.found) << rec.explanation;
  EXPECT_EQ(rec.chosen.decode_budget, 256);
  EXPECT_LE(rec.chosen.kl_upper, 0.1);
  EXPECT_GT(rec.chosen.kl_upper, rec.chosen.kl_mean);
  // Both targets: each must hold (agreement alone would take 256, KL 0.03 needs 512).
  t.agreement = 0.95;
  t.kl = 0.03;
  EXPECT_EQ(recommend(ladder(8), {}, t).chosen.decode_budget, 512);
}

TEST(TunerTest, BestAlphaAtTheSmallestBudget) {
  std::vector<ProbeRow> rows;
  add(rows, 6, 128, 0.955, 0.05, 0.001, 0.5);
  add(rows, 6, 128, 0.970, 0.04, 0.001, 0.9);
  add(rows, 6, 128, 0.900, 0.20, 0.001, 0.99);  // does not meet
  add(rows, 6, 256, 0.990, 0.01, 0.001, 0.7);   // better, but a larger budget
  for (auto& r : rows) {
    if (r.alpha == 0.9) r.alpha = static_cast<double>(0.9f);  // as a float column stores it
  }
  auto rec = recommend(rows, {}, agreement(0.95));
  ASSERT_TRUE(rec.found) << rec.explanation;
  EXPECT_EQ(rec.chosen.decode_budget, 128);
  EXPECT_DOUBLE_EQ(rec.chosen.alpha, 0.9);  // grouped and reported rounded
  ASSERT_EQ(rec.table.size(), 4u);
  EXPECT_DOUBLE_EQ(rec.table[0].alpha, 0.5);  // by budget, then alpha
  EXPECT_DOUBLE_EQ(rec.table[2].alpha, 0.99);
  EXPECT_EQ(rec.table[3].decode_budget, 256);
  // With a KL target only, the lowest KL at the smallest budget wins: still 0.9 here; swap the
  // KLs and 0.5 wins.
  TuneTarget t;
  t.kl = 0.1;
  EXPECT_DOUBLE_EQ(recommend(rows, {}, t).chosen.alpha, 0.9);
  for (auto& r : rows) {
    if (r.decode_budget == 128 && r.alpha < 0.6) r.kl_mean = 0.02;
  }
  EXPECT_DOUBLE_EQ(recommend(rows, {}, t).chosen.alpha, 0.5);
}

TEST(TunerTest, PoliciesScopesAndIgnoredRows) {
  std::vector<ProbeRow> rows = ladder(6);
  for (int i = 0; i < 6; ++i) {
    rows.push_back(row(64, 1.0, 0.0, 0.9, "full", "decode"));  // the reference: ignored
    rows.push_back(row(128, 0.97 + 0.001 * (i % 2), 0.04, 0.0, "h2o", "decode"));
    auto empty = row(32, 1.0, 0.0);
    empty.tokens = 0;  // nothing scored: ignored
    rows.push_back(empty);
  }
  const auto rec = recommend(rows, {}, agreement(0.95));
  ASSERT_TRUE(rec.found) << rec.explanation;
  EXPECT_EQ(rec.chosen.policy, "h2o");
  EXPECT_EQ(rec.chosen.scope, "decode");
  EXPECT_EQ(rec.chosen.decode_budget, 128);
  EXPECT_EQ(rec.table.size(), 5u);
  for (const auto& c : rec.table) {
    EXPECT_NE(c.policy, "full");
    EXPECT_NE(c.decode_budget, 32);
  }
}

TEST(TunerTest, RefusesWhatItCannotAnswer) {
  auto rows = ladder(8);
  rows[0].model = "other";
  auto rec = recommend(rows, {1, 2, 3}, agreement(0.95));
  EXPECT_FALSE(rec.found);
  EXPECT_NE(rec.explanation.find("2 models"), std::string::npos) << rec.explanation;
  EXPECT_EQ(rec.requests, 3);
  EXPECT_DOUBLE_EQ(rec.generated_p50, 2);

  rec = recommend(ladder(8), {}, TuneTarget{});
  EXPECT_FALSE(rec.found);
  EXPECT_NE(rec.explanation.find("no target"), std::string::npos);

  TuneTarget t = agreement(0.9);
  t.confidence = 1.0;
  EXPECT_FALSE(recommend(ladder(8), {}, t).found);

  rec = recommend({}, {}, agreement(0.9));
  EXPECT_FALSE(rec.found);
  EXPECT_TRUE(rec.table.empty());
  EXPECT_EQ(rec.requests, 0);
  EXPECT_EQ(rec.generated_p95, 0);
}

}  // namespace
}  // namespace momentkv::telemetry
