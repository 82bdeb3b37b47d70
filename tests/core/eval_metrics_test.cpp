// Fidelity metrics against hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>

#include "core/eval/metrics.h"

namespace momentkv::eval {
namespace {

TEST(EvalMetrics, KlOfKnownDistributions) {
  // p = (0.5, 0.5), q = (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3) = 0.143841036...
  const std::vector<double> lp = {std::log(0.5), std::log(0.5)};
  const std::vector<double> lq = {std::log(0.25), std::log(0.75)};
  EXPECT_NEAR(kl_divergence(lp, lq), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-12);
  EXPECT_EQ(kl_divergence(lp, lp), 0.0);
  // From logits: softmax(0, ln 3) = (0.25, 0.75).
  std::vector<double> from_logits;
  const std::vector<float> logits = {0.0f, std::log(3.0f)};
  log_softmax(logits, from_logits);
  EXPECT_NEAR(std::exp(from_logits[0]), 0.25, 1e-7);
  EXPECT_NEAR(kl_divergence(lp, from_logits), kl_divergence(lp, lq), 1e-7);
  // A zero-probability entry of p contributes nothing.
  const std::vector<double> lz = {0.0, -INFINITY};
  EXPECT_NEAR(kl_divergence(lz, lq), std::log(4.0), 1e-12);
}

TEST(EvalMetrics, RougeLOfKnownSequences) {
  // "the cat sat on the mat" vs "the cat on the mat": LCS 5; P = 5/6, R = 5/5.
  const std::vector<int32_t> a = {1, 2, 3, 4, 1, 5};
  const std::vector<int32_t> b = {1, 2, 4, 1, 5};
  const double p = 5.0 / 6.0, r = 1.0;
  EXPECT_NEAR(rouge_l(a, b), 2 * p * r / (p + r), 1e-12);
  EXPECT_DOUBLE_EQ(rouge_l(a, a), 1.0);
  EXPECT_DOUBLE_EQ(rouge_l(std::vector<int32_t>{7, 8}, std::vector<int32_t>{9}), 0.0);
  EXPECT_DOUBLE_EQ(rouge_l(std::vector<int32_t>{}, std::vector<int32_t>{}), 1.0);
  EXPECT_DOUBLE_EQ(rouge_l(std::vector<int32_t>{}, b), 0.0);
  // Order matters: reversed sequence has LCS 1.
  EXPECT_NEAR(rouge_l(std::vector<int32_t>{1, 2, 3}, std::vector<int32_t>{3, 2, 1}), 1.0 / 3.0,
              1e-12);
}

TEST(EvalMetrics, FirstDivergenceAndAgreement) {
  const std::vector<int32_t> a = {1, 2, 3, 4};
  EXPECT_EQ(first_divergence(a, std::vector<int32_t>{1, 2, 9, 4}), 2);
  EXPECT_EQ(first_divergence(a, a), 4);
  EXPECT_EQ(first_divergence(a, std::vector<int32_t>{1, 2}), 2);
  EXPECT_EQ(first_divergence(a, std::vector<int32_t>{5}), 0);
  EXPECT_DOUBLE_EQ(token_agreement(a, std::vector<int32_t>{1, 2, 9, 4}), 0.75);
  EXPECT_DOUBLE_EQ(token_agreement(a, std::vector<int32_t>{1, 2}), 0.5);  // missing = disagree
  EXPECT_DOUBLE_EQ(token_agreement(std::vector<int32_t>{}, std::vector<int32_t>{}), 1.0);
}

TEST(EvalMetrics, RepetitionRate) {
  // 1 2 1 2 1 2 with n = 2: bigrams 12 21 12 21 12 -> 3 of 5 repeat an earlier one.
  EXPECT_DOUBLE_EQ(repetition_rate(std::vector<int32_t>{1, 2, 1, 2, 1, 2}, 2), 0.6);
  EXPECT_DOUBLE_EQ(repetition_rate(std::vector<int32_t>{1, 2, 3, 4, 5, 6}, 2), 0.0);
  EXPECT_DOUBLE_EQ(repetition_rate(std::vector<int32_t>{1, 2}, 4), 0.0);
}

TEST(EvalMetrics, CopyPositionsAndArgmax) {
  const auto c = copy_positions(std::vector<int32_t>{5, 7, 9}, std::vector<int32_t>{1, 7, 2, 9});
  EXPECT_EQ(c, (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(argmax(std::vector<float>{0.1f, 3.0f, 3.0f, -1.0f}), 1);
}

}  // namespace
}  // namespace momentkv::eval
