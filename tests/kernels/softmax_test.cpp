// softmax.h: exp_approx against std::exp (relative error, the edges softmax relies on) and
// exp_shifted_sum against a double-precision sum. The AVX2 form's bit-equality with these is
// checked on real attention inputs by attention_test (grouped vs per-head path).
#include "kernels/cpu/softmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace momentkv::kernels::softmax {
namespace {

TEST(ExpApprox, WithinTwoUlpOfStdExpOverItsRange) {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (float x = kMinX + 0.001f; x <= kMaxX; x += 0.00731f) {
    const double ref = std::exp(static_cast<double>(x));
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(ref)) - 23);
    const double err = std::fabs(static_cast<double>(exp_approx(x)) - ref) / ulp;
    if (err > worst) {
      worst = err;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, 2.0) << "at x = " << worst_x;
}

TEST(ExpApprox, Edges) {
  EXPECT_EQ(exp_approx(0.0f), 1.0f);
  EXPECT_EQ(exp_approx(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(exp_approx(std::numeric_limits<float>::quiet_NaN()), 0.0f);
  EXPECT_EQ(exp_approx(kMinX), 0.0f);
  EXPECT_EQ(exp_approx(-1000.0f), 0.0f);
  EXPECT_GT(exp_approx(kMinX + 0.01f), 0.0f);
  EXPECT_TRUE(std::isfinite(exp_approx(1000.0f)));  // clamped to e^88
  // Monotone across the scale steps (n changes every ln 2 / 2).
  float prev = 0.0f;
  for (float x = -20.0f; x <= 0.0f; x += 0.001f) {
    const float e = exp_approx(x);
    ASSERT_GE(e, prev) << x;
    prev = e;
  }
}

TEST(ExpShiftedSum, MatchesADoublePrecisionSoftmaxDenominator) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (int32_t n : {1, 7, 8, 9, 100, 2048}) {
    std::vector<float> p(static_cast<size_t>(n));
    for (float& v : p) v = normal(rng);
    if (n > 1) p[0] = -std::numeric_limits<float>::infinity();  // a masked slot
    float mx = -std::numeric_limits<float>::infinity();
    for (float v : p) mx = std::max(mx, v);
    double ref = 0.0;
    std::vector<double> expect(p.size());
    for (size_t s = 0; s < p.size(); ++s) {
      expect[s] = std::exp(static_cast<double>(p[s] - mx));  // the float difference, as given
      ref += expect[s];
    }
    const float total = exp_shifted_sum(p.data(), n, mx);
    EXPECT_NEAR(total, ref, 1e-6 * ref) << n;
    if (n > 1) {
      EXPECT_EQ(p[0], 0.0f);
    }
    for (size_t s = 0; s < p.size(); ++s) ASSERT_NEAR(p[s], expect[s], 3e-7 * expect[s] + 1e-38);
  }
}

}  // namespace
}  // namespace momentkv::kernels::softmax
