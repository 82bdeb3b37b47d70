// Per-type CPU kernels: every fast table (AVX2, NEON) against the scalar oracle on random data,
// quantize -> dequantize error bounds, ggml's reference rounding on a hand-checked block, and the
// fp16/bf16 conversions.
//
// Tolerances (stated once, used below):
// - dequantize: fast == scalar within 1e-6 * max|value| (fma vs mul+add where value = d*q+m).
// - dot_f32 / dot_act: |fast - scalar| <= 1e-5 * sum_i |w_i x_i| + 1e-6: both compute the same
//   products, only the float summation order differs.
// - quantize_act: bit-identical (the fast quantizers reproduce the scalar rounding).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/tensor/fp16.h"
#include "core/tensor/ggml_type.h"
#include "core/util/error.h"
#include "kernels/cpu/quants.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {
namespace {

// The fast instruction sets this CPU runs (every supported one but scalar).
std::vector<Isa> fast_isas() {
  std::vector<Isa> isas = supported_isas();
  isas.erase(isas.begin());
  return isas;
}

// Gaussian values with a few large outliers (as real weights have).
std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::uniform_int_distribution<int> pick(0, 63);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng) * (pick(rng) == 0 ? 8.0f : 1.0f);
  return v;
}

std::vector<uint8_t> quantize_with(GgmlType t, const std::vector<float>& x) {
  const auto& k = type_kernels(t, Isa::kScalar);
  std::vector<uint8_t> q(*row_bytes(t, x.size()));
  k.quantize(x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

std::vector<float> dequantize_with(const TypeKernels& k, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> out(n);
  k.dequantize(q.data(), out.data(), n);
  return out;
}

double abs_dot(const std::vector<float>& w, const std::vector<float>& x) {
  double s = 0.0;
  for (size_t i = 0; i < w.size(); ++i) s += std::fabs(static_cast<double>(w[i]) * x[i]);
  return s;
}

class TypeKernelsTest : public ::testing::TestWithParam<GgmlType> {
 protected:
  int64_t block() const { return type_info(GetParam()).block_elems; }
  // A length that exercises unrolled loops and their tails: 19 blocks of 32, or 3 of 256.
  int64_t length() const { return block() == 256 ? 768 : block() == 32 ? 608 : 613; }
};

TEST_P(TypeKernelsTest, FastDequantizeMatchesScalar) {
  const GgmlType t = GetParam();
  const int64_t n = length();
  const auto q = quantize_with(t, random_values(n, 1));
  const auto ref = dequantize_with(type_kernels(t, Isa::kScalar), q, n);
  float amax = 0.0f;
  for (float v : ref) amax = std::max(amax, std::fabs(v));
  for (Isa isa : fast_isas()) {
    const auto got = dequantize_with(type_kernels(t, isa), q, n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(got[i], ref[i], 1e-6f * amax) << isa_name(isa) << " element " << i;
    }
  }
}

TEST_P(TypeKernelsTest, FastDotF32MatchesScalar) {
  const GgmlType t = GetParam();
  const int64_t n = length();
  for (uint32_t seed = 0; seed < 4; ++seed) {
    const auto q = quantize_with(t, random_values(n, 10 + seed));
    const auto w = dequantize_with(type_kernels(t, Isa::kScalar), q, n);
    const auto x = random_values(n, 20 + seed);
    const double tol = 1e-5 * abs_dot(w, x) + 1e-6;
    const float ref = type_kernels(t, Isa::kScalar).dot_f32(q.data(), x.data(), n);
    double exact = 0.0;
    for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(w[i]) * x[i];
    EXPECT_NEAR(ref, exact, tol) << "scalar vs double";
    for (Isa isa : fast_isas()) {
      const float got = type_kernels(t, isa).dot_f32(q.data(), x.data(), n);
      EXPECT_NEAR(got, ref, tol) << isa_name(isa) << " seed " << seed;
    }
  }
}

TEST_P(TypeKernelsTest, FastActivationPathMatchesScalar) {
  const GgmlType t = GetParam();
  const int64_t n = length();
  const auto& ref_k = type_kernels(t, Isa::kScalar);
  for (uint32_t seed = 0; seed < 4; ++seed) {
    const auto q = quantize_with(t, random_values(n, 30 + seed));
    const auto w = dequantize_with(ref_k, q, n);
    const auto x = random_values(n, 40 + seed, 3.0f);
    std::vector<uint8_t> xq_ref;
    const void* act = x.data();
    if (ref_k.quantize_act != nullptr) {
      xq_ref.resize(*row_bytes(ref_k.act_type, n));
      ref_k.quantize_act(x.data(), xq_ref.data(), n);
      act = xq_ref.data();
    }
    const float ref = ref_k.dot_act(q.data(), act, n);
    const double tol = 1e-5 * abs_dot(w, x) + 1e-6;
    for (Isa isa : fast_isas()) {
      const auto& k = type_kernels(t, isa);
      ASSERT_EQ(k.act_type, ref_k.act_type);
      const void* own_act = act;
      std::vector<uint8_t> xq;
      if (k.quantize_act != nullptr) {
        // The act_type blocks equal scalar's; a layout may append per-row data after them.
        xq.resize(act_row_bytes(k, n));
        k.quantize_act(x.data(), xq.data(), n);
        ASSERT_GE(xq.size(), xq_ref.size());
        EXPECT_TRUE(std::equal(xq_ref.begin(), xq_ref.end(), xq.begin()))
            << isa_name(isa) << ": activation quantizer differs from scalar";
        own_act = xq.data();
      }
      EXPECT_NEAR(k.dot_act(q.data(), own_act, n), ref, tol) << isa_name(isa) << " seed " << seed;
    }
  }
}

// Max error of quantize -> dequantize per block, from each format's rounding rule.
TEST_P(TypeKernelsTest, RoundTripWithinBound) {
  const GgmlType t = GetParam();
  if (block() == 256) GTEST_SKIP() << "K-quant bounds are tested with their kernels";
  const int64_t n = length();
  const auto x = random_values(n, 50, 2.0f);
  const auto y = dequantize_with(type_kernels(t, Isa::kScalar), quantize_with(t, x), n);
  const int64_t bs = block() == 1 ? 1 : 32;
  for (int64_t b = 0; b < n / bs; ++b) {
    float amax = 0.0f, min = x[b * bs], max = x[b * bs];
    for (int64_t i = b * bs; i < (b + 1) * bs; ++i) {
      amax = std::max(amax, std::fabs(x[i]));
      min = std::min(min, x[i]);
      max = std::max(max, x[i]);
    }
    float bound = 0.0f;
    switch (t) {
      case GgmlType::F32:
        bound = 0.0f;
        break;
      case GgmlType::F16:
        bound = amax * 0x1p-11f;
        break;
      case GgmlType::BF16:
        bound = amax * 0x1p-8f;
        break;
      // d rounded to f16 moves q*d by up to 127 * d * 2^-11.
      case GgmlType::Q8_0:
        bound = amax / 127.0f * (0.5f + 127.0f * 0x1p-11f);
        break;
      // The element opposite the signed max saturates at 15: error up to one step d = amax/8.
      case GgmlType::Q4_0:
        bound = amax / 8.0f * (1.0f + 8.0f * 0x1p-11f);
        break;
      case GgmlType::Q5_0:
        bound = amax / 16.0f * (1.0f + 16.0f * 0x1p-11f);
        break;
      case GgmlType::Q4_1:
        bound = (max - min) / 15.0f * (0.5f + 15.0f * 0x1p-11f) + std::fabs(min) * 0x1p-11f;
        break;
      case GgmlType::Q5_1:
        bound = (max - min) / 31.0f * (0.5f + 31.0f * 0x1p-11f) + std::fabs(min) * 0x1p-11f;
        break;
      default:
        FAIL() << "no bound for " << type_name(t);
    }
    for (int64_t i = b * bs; i < (b + 1) * bs; ++i) {
      ASSERT_LE(std::fabs(y[i] - x[i]), bound * 1.0001f + 1e-30f)
          << type_name(t) << " element " << i << " x=" << x[i] << " y=" << y[i];
    }
  }
}

TEST_P(TypeKernelsTest, AllZeroBlockRoundTripsToZero) {
  const GgmlType t = GetParam();
  const int64_t n = block() == 256 ? 256 : 32;
  const std::vector<float> x(n, 0.0f);
  const auto& k = type_kernels(t, Isa::kScalar);
  const auto y = dequantize_with(k, quantize_with(t, x), n);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  if (k.quantize_act != nullptr) {
    const auto w = quantize_with(t, random_values(n, 60));
    for (Isa isa : fast_isas()) {
      const auto& fk = type_kernels(t, isa);
      std::vector<uint8_t> xq(act_row_bytes(fk, n));
      fk.quantize_act(x.data(), xq.data(), n);
      EXPECT_EQ(fk.dot_act(w.data(), xq.data(), n), 0.0f) << isa_name(isa);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, TypeKernelsTest,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16,
                                           GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                                           GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_K,
                                           GgmlType::Q5_K, GgmlType::Q6_K),
                         [](const auto& p) { return type_name(p.param); });

TEST(QuantizeReference, Q4_0MatchesGgmlRoundingOnARamp) {
  // x = 0..31: signed max 31, d = 31 / -8 = -3.875 (exact in f16), q = trunc(x / d + 8.5).
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i);
  BlockQ4_0 b;
  scalar::quantize_q4_0(x.data(), &b, 32);
  EXPECT_EQ(fp16_to_fp32(b.d), -3.875f);
  for (int i = 0; i < 16; ++i) {
    const int q0 = static_cast<int>(x[i] / -3.875f + 8.5f);
    const int q1 = static_cast<int>(x[i + 16] / -3.875f + 8.5f);
    EXPECT_EQ(b.qs[i], q0 | (q1 << 4)) << i;
  }
  EXPECT_EQ(b.qs[0], 0x48);  // q(0) = 8, q(16) = trunc(4.37) = 4
}

TEST(QuantizeReference, Q8_0RoundsHalfAwayFromZeroEverywhere) {
  // amax = 127 gives d = 1 exactly, so x.5 values are exact ties.
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i)
    x[i] = static_cast<float>(i % 2 == 0 ? 1 : -1) * (0.5f + static_cast<float>(i));
  x[0] = 127.0f;
  x[32] = -127.0f;
  std::vector<BlockQ8_0> ref(2);
  scalar::quantize_q8_0(x.data(), ref.data(), 64);
  for (int i = 1; i < 32; ++i) {
    EXPECT_EQ(ref[0].qs[i], static_cast<int>(std::round(x[i]))) << i;
  }
  EXPECT_EQ(ref[0].qs[1], -2);  // -1.5 -> -2
  EXPECT_EQ(ref[0].qs[2], 3);   // 2.5 -> 3
  for (Isa isa : fast_isas()) {
    // The blocks, then whatever per-row data the instruction set's layout appends.
    const TypeKernels& k = type_kernels(GgmlType::Q8_0, isa);
    std::vector<uint8_t> got(act_row_bytes(k, 64));
    k.quantize_act(x.data(), got.data(), 64);
    EXPECT_EQ(std::memcmp(got.data(), ref.data(), sizeof(BlockQ8_0) * 2), 0) << isa_name(isa);
  }
}

TEST(QuantizeReference, Q5LayoutPutsFifthBitsInQh) {
  // Q5_1 of a ramp 0..31 has d = 1, m = 0 and q = i: the fifth bit is set for i >= 16.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i);
  BlockQ5_1 b;
  scalar::quantize_q5_1(x.data(), &b, 32);
  uint32_t qh;
  std::memcpy(&qh, b.qh, sizeof qh);
  EXPECT_EQ(qh, 0xffff0000u);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(b.qs[i], i | (i << 4)) << i;
}

TEST(Fp16, EveryHalfRoundTripsAndFastConversionAgrees) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> ref(65536);
  scalar::dequantize_f16(all.data(), ref.data(), 65536);
  for (uint32_t i = 0; i < 65536; ++i) {
    if (std::isnan(ref[i])) continue;
    ASSERT_EQ(fp32_to_fp16(ref[i]), all[i]) << std::hex << i;
  }
  for (Isa isa : fast_isas()) {
    std::vector<float> got(65536);
    type_kernels(GgmlType::F16, isa).dequantize(all.data(), got.data(), 65536);
    for (uint32_t i = 0; i < 65536; ++i) {
      if (std::isnan(ref[i])) {
        ASSERT_TRUE(std::isnan(got[i])) << std::hex << i;
      } else {
        ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(ref[i]))
            << isa_name(isa) << std::hex << " half " << i;
      }
    }
  }
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);      // tie -> even (down)
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);             // overflows to inf
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);             // tie with zero -> zero
  EXPECT_EQ(fp32_to_fp16(0x1p-24f), 0x0001);             // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x0001), 0x1p-24f);
}

TEST(Bf16, RoundTripsAndRoundsToNearestEven) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const float f = bf16_to_fp32(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_bf16(f), h) << std::hex << i;
  }
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie -> even (down)
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  std::vector<uint16_t> h(37);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(0x3f80 + 97 * i);
  std::vector<float> ref(h.size());
  scalar::dequantize_bf16(h.data(), ref.data(), static_cast<int64_t>(h.size()));
  for (Isa isa : fast_isas()) {
    std::vector<float> got(h.size());
    type_kernels(GgmlType::BF16, isa)
        .dequantize(h.data(), got.data(), static_cast<int64_t>(h.size()));
    EXPECT_EQ(got, ref) << isa_name(isa);
  }
}

TEST(TypeKernels, TablesAreCompleteAndUnsupportedTypesThrow) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                     GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K}) {
    std::vector<Isa> isas = fast_isas();
    isas.push_back(Isa::kScalar);
    for (Isa isa : isas) {
      const auto& k = type_kernels(t, isa);
      EXPECT_NE(k.dequantize, nullptr) << type_name(t) << " " << isa_name(isa);
      EXPECT_NE(k.dot_f32, nullptr);
      EXPECT_NE(k.dot_act, nullptr);
      EXPECT_NE(k.quantize, nullptr);
      EXPECT_EQ(k.quantize_act == nullptr, k.act_type == GgmlType::F32);
    }
  }
  EXPECT_EQ(type_kernels(GgmlType::Q4_0, Isa::kScalar).act_type, GgmlType::Q8_0);
  EXPECT_EQ(type_kernels(GgmlType::Q6_K, Isa::kScalar).act_type, GgmlType::Q8_K);
  EXPECT_THROW(type_kernels(GgmlType::Q2_K, Isa::kScalar), Error);
  EXPECT_THROW(type_kernels(GgmlType::Q8_1, Isa::kScalar), Error);
#if !MOMENTKV_HAVE_NEON
  EXPECT_THROW(type_kernels(GgmlType::Q4_0, Isa::kNeon), Error);
#endif
  EXPECT_STREQ(isa_name(Isa::kAvx2), "avx2");
}

}  // namespace
}  // namespace momentkv::kernels
