// matmul against a naive reference (scalar dequantize, then a double dot per row and token) for
// every weight type, several shapes, thread counts and batch sizes.
//
// Tolerances:
// - kExact: |y - ref| <= 1e-5 * sum_i |w_i x_i| + 1e-6 (f32 summation order only).
// - kFast: plus the activation quantization error: each x_i moves by at most 0.57 * amax / 127
//   (half a step of d = amax/127 of its block, plus d rounded to f16), so the bound adds
//   sum_i |w_i| * 0.57 * amax_block(i) / 127.
// - Results do not depend on the thread count or on how tokens are batched (bit-identical).
#include "kernels/cpu/matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/util/error.h"
#include "core/util/thread_pool.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

struct Matrix {
  std::vector<uint8_t> bytes;  // [n_out] rows of row_bytes(type, n_in)
  std::vector<float> values;   // [n_out][n_in] dequantized
};

Matrix make_matrix(GgmlType t, int64_t n_in, int64_t n_out, uint32_t seed) {
  const auto& k = type_kernels(t, Isa::kScalar);
  const auto src = random_values(n_in * n_out, seed);
  Matrix m;
  m.bytes.resize(*row_bytes(t, n_in) * n_out);
  k.quantize(src.data(), m.bytes.data(), n_in * n_out);
  m.values.resize(n_in * n_out);
  k.dequantize(m.bytes.data(), m.values.data(), n_in * n_out);
  return m;
}

using Param = std::tuple<GgmlType, int /*n_in*/, int /*n_out*/, int /*n_tokens*/>;

class MatmulTest : public ::testing::TestWithParam<Param> {};

TEST_P(MatmulTest, MatchesNaiveReference) {
  const auto [t, n_in, n_out, n_tokens] = GetParam();
  const Matrix w = make_matrix(t, n_in, n_out, 7);
  const auto x = random_values(int64_t{n_in} * n_tokens, 8);
  const int64_t act_block = type_kernels(t).act_type == GgmlType::Q8_K ? 256 : 32;
  const bool quantized_act = type_kernels(t).act_type != GgmlType::F32;

  std::vector<float> y_first;
  for (int n_threads : {1, 2, 3}) {
    ThreadPool pool(n_threads);
    for (MatmulMode mode : {MatmulMode::kExact, MatmulMode::kFast}) {
      std::vector<float> y(int64_t{n_out} * n_tokens, -1.0f);
      matmul(pool, t, w.bytes.data(), n_in, n_out, x.data(), n_tokens, y.data(), mode);
      for (int tok = 0; tok < n_tokens; ++tok) {
        const float* xt = x.data() + int64_t{tok} * n_in;
        for (int o = 0; o < n_out; ++o) {
          const float* wo = w.values.data() + int64_t{o} * n_in;
          double ref = 0.0, abs_sum = 0.0, act_err = 0.0;
          for (int64_t b = 0; b < n_in; b += act_block) {
            float amax = 0.0f;
            for (int64_t i = b; i < std::min<int64_t>(n_in, b + act_block); ++i) {
              amax = std::max(amax, std::fabs(xt[i]));
            }
            for (int64_t i = b; i < std::min<int64_t>(n_in, b + act_block); ++i) {
              ref += static_cast<double>(wo[i]) * xt[i];
              abs_sum += std::fabs(static_cast<double>(wo[i]) * xt[i]);
              act_err += std::fabs(wo[i]) * 0.57 * amax / 127.0;
            }
          }
          double tol = 1e-5 * abs_sum + 1e-6;
          if (mode == MatmulMode::kFast && quantized_act) tol += act_err;
          ASSERT_NEAR(y[int64_t{tok} * n_out + o], ref, tol)
              << "token " << tok << " row " << o << " threads " << n_threads << " mode "
              << (mode == MatmulMode::kFast ? "fast" : "exact");
        }
      }
      if (mode == MatmulMode::kExact) {
        if (y_first.empty()) {
          y_first = y;
        } else {
          EXPECT_EQ(y, y_first) << "exact result depends on the thread count";
        }
      }
    }
  }
}

TEST_P(MatmulTest, BatchEqualsTokenByToken) {
  const auto [t, n_in, n_out, n_tokens] = GetParam();
  const Matrix w = make_matrix(t, n_in, n_out, 9);
  const auto x = random_values(int64_t{n_in} * n_tokens, 10);
  ThreadPool pool(2);
  for (MatmulMode mode : {MatmulMode::kExact, MatmulMode::kFast}) {
    std::vector<float> batch(int64_t{n_out} * n_tokens);
    matmul(pool, t, w.bytes.data(), n_in, n_out, x.data(), n_tokens, batch.data(), mode);
    for (int tok = 0; tok < n_tokens; ++tok) {
      std::vector<float> one(n_out);
      matmul(pool, t, w.bytes.data(), n_in, n_out, x.data() + int64_t{tok} * n_in, 1, one.data(),
             mode);
      for (int o = 0; o < n_out; ++o) ASSERT_EQ(batch[int64_t{tok} * n_out + o], one[o]);
    }
  }
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  const auto [t, n_in, n_out, n_tokens] = info.param;
  return type_name(t) + "_" + std::to_string(n_in) + "x" + std::to_string(n_out) + "_t" +
         std::to_string(n_tokens);
}

INSTANTIATE_TEST_SUITE_P(BlockTypes, MatmulTest,
                         ::testing::Combine(::testing::Values(GgmlType::Q4_0, GgmlType::Q4_1,
                                                              GgmlType::Q5_0, GgmlType::Q5_1,
                                                              GgmlType::Q8_0, GgmlType::F32,
                                                              GgmlType::F16, GgmlType::BF16),
                                            ::testing::Values(32, 544), ::testing::Values(1, 37),
                                            ::testing::Values(1, 5)),
                         param_name);

INSTANTIATE_TEST_SUITE_P(KQuants, MatmulTest,
                         ::testing::Combine(::testing::Values(GgmlType::Q4_K, GgmlType::Q5_K,
                                                              GgmlType::Q6_K),
                                            ::testing::Values(256, 768), ::testing::Values(1, 37),
                                            ::testing::Values(1, 5)),
                         param_name);

// Large enough that a batch spans several row tiles per thread.
INSTANTIATE_TEST_SUITE_P(Tiled, MatmulTest,
                         ::testing::Combine(::testing::Values(GgmlType::Q4_0, GgmlType::F32),
                                            ::testing::Values(2048), ::testing::Values(96),
                                            ::testing::Values(3)),
                         param_name);

TEST(Matmul, RejectsPartialBlocksAndUnsupportedTypes) {
  ThreadPool pool(1);
  std::vector<uint8_t> w(4096);
  std::vector<float> x(64), y(4);
  EXPECT_THROW(
      matmul(pool, GgmlType::Q4_0, w.data(), 48, 2, x.data(), 1, y.data(), MatmulMode::kFast),
      Error);
  EXPECT_THROW(
      matmul(pool, GgmlType::Q2_K, w.data(), 256, 1, x.data(), 1, y.data(), MatmulMode::kExact),
      Error);
}

TEST(Matmul, EmptyShapesDoNothing) {
  ThreadPool pool(2);
  std::vector<uint8_t> w(64);
  std::vector<float> x(32, 1.0f), y(2, 5.0f);
  matmul(pool, GgmlType::Q8_0, w.data(), 32, 0, x.data(), 1, y.data(), MatmulMode::kFast);
  matmul(pool, GgmlType::Q8_0, w.data(), 32, 1, x.data(), 0, y.data(), MatmulMode::kFast);
  EXPECT_EQ(y[0], 5.0f);
}

TEST(GetRows, GathersDequantizedRows) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::F16, GgmlType::Q6_K}) {
    const int64_t n_in = 256, n_rows = 9;
    const Matrix w = make_matrix(t, n_in, n_rows, 11);
    const std::vector<int32_t> ids = {3, 0, 8, 3};
    std::vector<float> out(ids.size() * n_in);
    get_rows(t, w.bytes.data(), n_in, ids.data(), static_cast<int64_t>(ids.size()), out.data());
    for (size_t k = 0; k < ids.size(); ++k) {
      for (int64_t i = 0; i < n_in; ++i) {
        ASSERT_NEAR(out[k * n_in + i], w.values[ids[k] * n_in + i],
                    1e-6f * std::fabs(w.values[ids[k] * n_in + i]) + 1e-6f)
            << type_name(t) << " id " << ids[k] << " element " << i;
      }
    }
    const int32_t bad = -1;
    EXPECT_THROW(get_rows(t, w.bytes.data(), n_in, &bad, 1, out.data()), Error);
  }
}

}  // namespace
}  // namespace momentkv::kernels
