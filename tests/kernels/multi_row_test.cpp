// The optional multi-row kernels of TypeKernels against the single-row ones and the scalar oracle:
// - dot_act_4 (four activation rows per weight row, prefill): bit-identical to dot_act of the same
//   table for every row, and within the dot tolerance of the scalar dot_act
//   (|fast - scalar| <= 1e-5 * sum_i |w_i x_i| + 1e-6: same integer products, float order only).
// - accumulate (y += a * row, attention's V sum): dequantize, then y[i] += a * v, up to the
//   rounding of the product (the fast paths use one fma): |fast - ref| <= 2^-23 * (|y| + |a v|).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/tensor/ggml_type.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 63);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng) * (pick(rng) == 0 ? 8.0f : 1.0f);
  return v;
}

std::vector<uint8_t> quantize_rows(GgmlType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(*row_bytes(t, x.size()));
  type_kernels(t, Isa::kScalar).quantize(x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

class DotAct4Test : public ::testing::TestWithParam<GgmlType> {};

// dot_act_4 and dot_act_2 (rows 2 and 3 again) equal dot_act bit for bit and match scalar.
TEST_P(DotAct4Test, EqualsDotActPerRowAndMatchesScalar) {
  const GgmlType t = GetParam();
  const TypeKernels& ref = type_kernels(t, Isa::kScalar);
  const int64_t block = ref.act_type == GgmlType::Q8_K ? 256 : 32;
  // Lengths that exercise the four-block groups and their tails.
  for (int64_t n_blocks : {1, 3, 4, 7, 64}) {
    const int64_t n = n_blocks * block;
    const auto w_values = random_values(n, 1);
    const auto w = quantize_rows(t, w_values);
    std::vector<float> w_deq(n);
    ref.dequantize(w.data(), w_deq.data(), n);
    std::vector<std::vector<float>> x(4);
    for (int k = 0; k < 4; ++k) x[k] = random_values(n, 10 + static_cast<uint32_t>(k));
    // The scalar activation rows (the reference dots).
    const int64_t ref_row = static_cast<int64_t>(act_row_bytes(ref, n));
    std::vector<uint8_t> ref_act(static_cast<size_t>(4 * ref_row));
    for (int k = 0; k < 4; ++k) ref.quantize_act(x[k].data(), ref_act.data() + k * ref_row, n);
    for (Isa isa : supported_isas()) {
      const TypeKernels& kern = type_kernels(t, isa);
      if (kern.dot_act_4 == nullptr) continue;
      // Four activation rows in this instruction set's layout, with a gap between them
      // (xq_stride > row bytes).
      const int64_t stride = static_cast<int64_t>(act_row_bytes(kern, n)) + 40;
      std::vector<uint8_t> act(static_cast<size_t>(4 * stride));
      for (int k = 0; k < 4; ++k) kern.quantize_act(x[k].data(), act.data() + k * stride, n);
      float out[4];
      kern.dot_act_4(w.data(), act.data(), stride, n, out);
      if (kern.dot_act_2 != nullptr) {
        float out2[2];
        kern.dot_act_2(w.data(), act.data() + 2 * stride, stride, n, out2);
        EXPECT_EQ(out2[0], out[2]) << type_name(t) << " " << isa_name(isa) << " dot_act_2";
        EXPECT_EQ(out2[1], out[3]) << type_name(t) << " " << isa_name(isa) << " dot_act_2";
      }
      for (int k = 0; k < 4; ++k) {
        const uint8_t* xq = act.data() + k * stride;
        EXPECT_EQ(out[k], kern.dot_act(w.data(), xq, n))
            << type_name(t) << " " << isa_name(isa) << " n " << n << " row " << k;
        double abs_sum = 0.0;
        for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(double{w_deq[i]} * x[k][i]);
        EXPECT_NEAR(out[k], ref.dot_act(w.data(), ref_act.data() + k * ref_row, n),
                    1e-5 * abs_sum + 1e-6)
            << type_name(t) << " " << isa_name(isa) << " n " << n << " row " << k;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, DotAct4Test,
                         ::testing::Values(GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0,
                                           GgmlType::Q4_K, GgmlType::Q6_K),
                         [](const ::testing::TestParamInfo<GgmlType>& p) {
                           return type_name(p.param);
                         });

TEST(Accumulate, MatchesDequantizeThenAdd) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16}) {
    for (int64_t n : {1, 7, 8, 16, 64, 100}) {
      const auto values = random_values(n, 3);
      const auto row = quantize_rows(t, values);
      const auto y0 = random_values(n, 4);
      const float a = 0.37f;
      std::vector<float> deq(n), expected = y0;
      type_kernels(t, Isa::kScalar).dequantize(row.data(), deq.data(), n);
      for (int64_t i = 0; i < n; ++i) expected[i] += a * deq[i];
      for (Isa isa : supported_isas()) {
        const TypeKernels& kern = type_kernels(t, isa);
        if (kern.accumulate == nullptr) continue;
        std::vector<float> y = y0;
        kern.accumulate(row.data(), a, y.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          const double bound = 0x1p-23 * (std::fabs(double{y0[i]}) + std::fabs(double{a * deq[i]}));
          ASSERT_NEAR(y[i], expected[i], bound)
              << type_name(t) << " " << isa_name(isa) << " n " << n << " element " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace momentkv::kernels
