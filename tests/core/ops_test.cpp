// The scalar reference ops against values computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/model/ops.h"

namespace momentkv {
namespace {

TEST(Ops, RmsNormByHand) {
  // x = [1, 2, 3, 4]: mean square 7.5; eps 0.5 -> scale 1/sqrt(8) = 0.35355339.
  const float x[4] = {1, 2, 3, 4};
  const float w[4] = {1, 0.5f, 2, -1};
  float y[4];
  ops::rms_norm(x, w, 4, 0.5f, y);
  const float s = 1.0f / std::sqrt(8.0f);
  EXPECT_NEAR(y[0], 1 * s, 1e-6);
  EXPECT_NEAR(y[1], 2 * s * 0.5f, 1e-6);
  EXPECT_NEAR(y[2], 3 * s * 2, 1e-6);
  EXPECT_NEAR(y[3], -4 * s, 1e-6);
  ops::rms_norm(x, w, 4, 0.5f, const_cast<float*>(x));  // in place
  EXPECT_NEAR(x[3], -4 * s, 1e-6);
}

TEST(Ops, SoftmaxByHand) {
  float x[3] = {0.0f, std::log(2.0f), std::log(5.0f)};  // exp: 1, 2, 5 -> /8
  ops::softmax(x, 3);
  EXPECT_NEAR(x[0], 0.125, 1e-7);
  EXPECT_NEAR(x[1], 0.25, 1e-7);
  EXPECT_NEAR(x[2], 0.625, 1e-7);
  float big[2] = {1000.0f, 1000.0f};  // no overflow: max is subtracted
  ops::softmax(big, 2);
  EXPECT_FLOAT_EQ(big[0], 0.5f);
}

TEST(Ops, SiluMulByHand) {
  float g[3] = {0.0f, 1.0f, -2.0f};
  const float u[3] = {3.0f, 2.0f, 1.0f};
  ops::silu_mul(g, u, 3);
  EXPECT_NEAR(g[0], 0.0, 1e-7);
  EXPECT_NEAR(g[1], 2.0 / (1.0 + std::exp(-1.0)), 1e-6);  // 1.4621172
  EXPECT_NEAR(g[2], -2.0 / (1.0 + std::exp(2.0)), 1e-6);  // -0.2384058
}

ModelConfig rope_config(RopeMode mode) {
  ModelConfig c;
  c.head_dim = 4;
  c.n_rot = 4;
  c.rope_freq_base = 10000.0f;
  c.rope_mode = mode;
  return c;
}

TEST(Ops, RopeNormalRotatesAdjacentPairs) {
  // head_dim 4: pair 0 frequency 1, pair 1 frequency 10000^(-2/4) = 0.01. Position 2.
  ops::Rope rope(rope_config(RopeMode::kNormal), {});
  EXPECT_DOUBLE_EQ(rope.freq(0), 1.0);
  EXPECT_NEAR(rope.freq(1), 0.01, 1e-15);
  float cs[4];
  rope.angles(2, cs);
  float x[4] = {1, 0, 0, 1};
  rope.apply(x, cs);
  // (1, 0) rotated by 2 rad; (0, 1) rotated by 0.02 rad.
  EXPECT_NEAR(x[0], std::cos(2.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(2.0), 1e-6);
  EXPECT_NEAR(x[2], -std::sin(0.02), 1e-6);
  EXPECT_NEAR(x[3], std::cos(0.02), 1e-6);
}

TEST(Ops, RopeNeoxRotatesHalves) {
  ops::Rope rope(rope_config(RopeMode::kNeox), {});
  float cs[4];
  rope.angles(2, cs);
  float x[4] = {1, 0, 0, 1};  // pairs (x0, x2) and (x1, x3)
  rope.apply(x, cs);
  EXPECT_NEAR(x[0], std::cos(2.0), 1e-6);
  EXPECT_NEAR(x[2], std::sin(2.0), 1e-6);
  EXPECT_NEAR(x[1], -std::sin(0.02), 1e-6);
  EXPECT_NEAR(x[3], std::cos(0.02), 1e-6);
}

TEST(Ops, RopeFreqFactorsAndLinearScaling) {
  ModelConfig c = rope_config(RopeMode::kNormal);
  const float factors[2] = {2.0f, 4.0f};
  ops::Rope with_factors(c, factors);
  EXPECT_DOUBLE_EQ(with_factors.freq(0), 0.5);
  EXPECT_NEAR(with_factors.freq(1), 0.0025, 1e-15);
  c.rope_linear_scale = 4.0f;
  ops::Rope linear(c, {});
  float cs[4];
  linear.angles(8, cs);  // position 8 / 4 = 2
  EXPECT_NEAR(cs[0], std::cos(2.0), 1e-6);
}

TEST(Ops, RopeLlama3Scaling) {
  // Llama 3.1: factor 8, low 1, high 4, original context 8192, base 500000, head_dim 128.
  ModelConfig c;
  c.head_dim = c.n_rot = 128;
  c.rope_freq_base = 500000.0f;
  c.rope_l3_factor = 8.0f;
  c.rope_l3_low_freq_factor = 1.0f;
  c.rope_l3_high_freq_factor = 4.0f;
  c.rope_l3_original_ctx = 8192;
  ops::Rope rope(c, {});
  for (int j = 0; j < 64; ++j) {
    const double f = std::pow(500000.0, -2.0 * j / 128);
    const double wavelen = 2 * std::numbers::pi / f;
    double want;
    if (wavelen < 8192.0 / 4) {
      want = f;  // high frequencies kept
    } else if (wavelen > 8192.0) {
      want = f / 8;  // low frequencies slowed by the factor
    } else {
      const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      want = (1 - smooth) * f / 8 + smooth * f;
    }
    EXPECT_NEAR(rope.freq(j), want, 1e-12 * f) << j;
  }
  EXPECT_DOUBLE_EQ(rope.freq(0), 1.0);
  EXPECT_NEAR(rope.freq(63), std::pow(500000.0, -126.0 / 128) / 8, 1e-18);
}

}  // namespace
}  // namespace momentkv
