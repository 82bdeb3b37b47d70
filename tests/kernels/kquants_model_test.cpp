// K-quant kernels on real weights: every Q4_K / Q6_K tensor of stories260K-pad256-Q4_K_M.gguf
// (quantized by llama.cpp from the F32 file) dequantizes close to the F32 original, its
// zero-padded region dequantizes to ~0, and the fast paths agree with the scalar oracle on it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "kernels/cpu/kquants.h"
#include "tests/support/test_paths.h"

namespace momentkv::kernels {
namespace {

constexpr int64_t kQk = 256;
constexpr size_t kQ8KBytes = 292;

struct Kernels {
  void (*dequantize)(const void*, float*, int64_t);
  float (*dot_q8k)(const void*, const void*, int64_t);
  float (*dot_f32)(const void*, const float*, int64_t);
};

Kernels scalar_kernels(GgmlType t) {
  if (t == GgmlType::Q4_K) {
    return {scalar::dequantize_q4_k, scalar::dot_q8k_q4_k, scalar::dot_f32_q4_k};
  }
  return {scalar::dequantize_q6_k, scalar::dot_q8k_q6_k, scalar::dot_f32_q6_k};
}

// The fast path compiled in and supported here, if any.
bool fast_kernels(GgmlType t, Kernels& k) {
#if MOMENTKV_HAVE_AVX2
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return false;
  k = t == GgmlType::Q4_K ? Kernels{avx2::dequantize_q4_k, avx2::dot_q8k_q4_k, avx2::dot_f32_q4_k}
                          : Kernels{avx2::dequantize_q6_k, avx2::dot_q8k_q6_k, avx2::dot_f32_q6_k};
  return true;
#elif MOMENTKV_HAVE_NEON
  k = t == GgmlType::Q4_K ? Kernels{neon::dequantize_q4_k, neon::dot_q8k_q4_k, neon::dot_f32_q4_k}
                          : Kernels{neon::dequantize_q6_k, neon::dot_q8k_q6_k, neon::dot_f32_q6_k};
  return true;
#else
  (void)t;
  (void)k;
  return false;
#endif
}

TEST(KQuantsModel, Q4KMTensorsMatchF32Original) {
  const GgufFile f32 =
      GgufFile::open(test::model_path("stories260K-pad256/stories260K-pad256-F32.gguf"));
  const GgufFile qkm =
      GgufFile::open(test::model_path("stories260K-pad256/stories260K-pad256-Q4_K_M.gguf"));
  int n_q4k = 0;
  int n_q6k = 0;
  for (const GgufTensorInfo& info : qkm.tensors()) {
    if (info.type != GgmlType::Q4_K && info.type != GgmlType::Q6_K) continue;
    SCOPED_TRACE(info.name);
    const bool is_q4k = info.type == GgmlType::Q4_K;
    (is_q4k ? n_q4k : n_q6k) += 1;
    const GgufTensorInfo* orig = f32.find_tensor(info.name);
    ASSERT_NE(orig, nullptr);
    ASSERT_EQ(orig->type, GgmlType::F32);
    ASSERT_EQ(orig->ne, info.ne);
    const int64_t n = static_cast<int64_t>(info.n_elements);
    ASSERT_EQ(n % kQk, 0);
    const auto* ref = reinterpret_cast<const float*>(f32.tensor_data(*orig));

    const Kernels k = scalar_kernels(info.type);
    std::vector<float> y(n);
    k.dequantize(qkm.tensor_data(info), y.data(), n);

    // Error on the original (non-zero) values; the zero padding judged separately, split into
    // all-zero super-blocks (must be exactly 0) and zeros sharing a block with real values.
    double err2 = 0, ref2 = 0, max_zero_mixed = 0, max_zero_pad = 0, max_ref = 0;
    for (int64_t ib = 0; ib < n / kQk; ++ib) {
      bool all_zero = true;
      for (int64_t i = ib * kQk; i < (ib + 1) * kQk; ++i) all_zero = all_zero && ref[i] == 0.0f;
      for (int64_t i = ib * kQk; i < (ib + 1) * kQk; ++i) {
        const double e = static_cast<double>(y[i]) - ref[i];
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
        if (ref[i] != 0.0f) {
          err2 += e * e;
          ref2 += static_cast<double>(ref[i]) * ref[i];
        } else if (all_zero) {
          max_zero_pad = std::max(max_zero_pad, std::fabs(e));
        } else {
          max_zero_mixed = std::max(max_zero_mixed, std::fabs(e));
        }
      }
    }
    const double rel_rms = std::sqrt(err2 / ref2);
    std::printf(
        "%-22s %s [%lld x %lld]: rel RMS %.4f, |zero in mixed block| <= %.4f (max|w| %.3f), "
        "|all-zero block| <= %g\n",
        info.name.c_str(), is_q4k ? "Q4_K" : "Q6_K", static_cast<long long>(info.ne[0]),
        static_cast<long long>(info.n_rows()), rel_rms, max_zero_mixed, max_ref, max_zero_pad);
    EXPECT_LT(rel_rms, is_q4k ? 0.10 : 0.025);
    EXPECT_EQ(max_zero_pad, 0.0);
    EXPECT_LT(max_zero_mixed, (is_q4k ? 0.03 : 0.01) * max_ref);

    // Our reference quantizer on the same F32 tensor should do about as well as llama.cpp's.
    std::vector<uint8_t> requant(info.n_bytes);
    (is_q4k ? scalar::quantize_q4_k : scalar::quantize_q6_k)(ref, requant.data(), n);
    std::vector<float> y2(n);
    k.dequantize(requant.data(), y2.data(), n);
    double err2_ours = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (ref[i] != 0.0f) err2_ours += (static_cast<double>(y2[i]) - ref[i]) * (y2[i] - ref[i]);
    }
    const double rel_rms_ours = std::sqrt(err2_ours / ref2);
    std::printf("%-22s   our quantizer: rel RMS %.4f\n", "", rel_rms_ours);
    EXPECT_LT(rel_rms_ours, 1.1 * rel_rms);

    // The fast path on real data: dequantize and both dot products against the oracle.
    Kernels fast;
    if (!fast_kernels(info.type, fast)) continue;
    std::vector<float> yf(n);
    fast.dequantize(qkm.tensor_data(info), yf.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(yf[i], y[i], 1e-6f * (std::fabs(y[i]) + 1e-3f)) << "element " << i;
    }
    const int64_t n_in = info.ne[0];
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(n_in);
    for (float& v : x) v = dist(rng);
    std::vector<uint8_t> xq(static_cast<size_t>(n_in / kQk) * kQ8KBytes);
    scalar::quantize_q8_k(x.data(), xq.data(), n_in);
    const size_t row_bytes = static_cast<size_t>(n_in / kQk) * (is_q4k ? 144 : 210);
    for (int64_t r = 0; r < info.n_rows(); ++r) {
      const uint8_t* row = qkm.tensor_data(info) + r * row_bytes;
      double scale = 1e-6;
      for (int64_t i = 0; i < n_in; ++i) scale += std::fabs(y[r * n_in + i] * x[i]);
      ASSERT_NEAR(fast.dot_f32(row, x.data(), n_in), k.dot_f32(row, x.data(), n_in), 1e-5 * scale)
          << "row " << r;
      ASSERT_NEAR(fast.dot_q8k(row, xq.data(), n_in), k.dot_q8k(row, xq.data(), n_in), 1e-5 * scale)
          << "row " << r;
    }
  }
  EXPECT_GT(n_q4k, 0);
  EXPECT_GT(n_q6k, 0);
  std::printf("checked %d Q4_K and %d Q6_K tensors\n", n_q4k, n_q6k);
}

}  // namespace
}  // namespace momentkv::kernels
