// K-quant kernels (kernels/cpu/kquants.h): layout proofs on hand-built blocks, reference
// quantizer round-trip error bounds, the Q8_K activation quantizer, and every fast path (AVX2,
// AVX-VNNI and AVX-512 VNNI here; NEON on aarch64) against the scalar oracle; the VNNI dots
// against AVX2's, bit for bit.
#include "kernels/cpu/kquants.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/tensor/fp16.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {
namespace {

constexpr int kQk = 256;
constexpr size_t kQ4KBytes = 144;
constexpr size_t kQ5KBytes = 176;
constexpr size_t kQ6KBytes = 210;
constexpr size_t kQ8KBytes = 292;

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// sqrt(Σ(a−b)²/Σb²)
double relative_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

double dot_f64(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double abs_dot_f64(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::fabs(static_cast<double>(a[i]) * b[i]);
  return s;
}

void put_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// Packs 6-bit scales/mins exactly as FORMATS.md reads them (written independently of the
// kernels): j < 4 in the low 6 bits of bytes j and j+4; j ≥ 4 in the nibbles of byte j+4 with
// the top two bits in bits 6-7 of bytes j−4 (scale) and j (min).
void pack_k4_scales(const int* sc, const int* m, uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

constexpr int kSc[8] = {1, 2, 7, 15, 16, 33, 47, 63};  // high bits exercised for j ≥ 4
constexpr int kMin[8] = {0, 5, 10, 63, 17, 32, 50, 63};

TEST(KQuantsLayout, Q4KHandBuiltBlock) {
  std::vector<uint8_t> block(kQ4KBytes, 0);
  put_f16(block.data(), 0.5f);       // d
  put_f16(block.data() + 2, 0.25f);  // dmin
  pack_k4_scales(kSc, kMin, block.data() + 4);
  int q[kQk];
  for (int i = 0; i < kQk; ++i) q[i] = (i * 7 + 3) % 16;
  uint8_t* qs = block.data() + 16;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    }
  }
  std::vector<float> y(kQk);
  scalar::dequantize_q4_k(block.data(), y.data(), kQk);
  for (int i = 0; i < kQk; ++i) {
    const int j = i / 32;
    ASSERT_EQ(y[i], 0.5f * static_cast<float>(kSc[j] * q[i]) - 0.25f * static_cast<float>(kMin[j]))
        << "element " << i;
  }
}

TEST(KQuantsLayout, Q5KHandBuiltBlock) {
  std::vector<uint8_t> block(kQ5KBytes, 0);
  put_f16(block.data(), 0.5f);
  put_f16(block.data() + 2, 0.25f);
  pack_k4_scales(kSc, kMin, block.data() + 4);
  int q[kQk];
  for (int i = 0; i < kQk; ++i) q[i] = (i * 11 + 5) % 32;
  uint8_t* qh = block.data() + 16;
  uint8_t* qs = block.data() + 48;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int lo = q[64 * c + l];
      const int hi = q[64 * c + 32 + l];
      qs[32 * c + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
      qh[l] = static_cast<uint8_t>(qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
    }
  }
  std::vector<float> y(kQk);
  scalar::dequantize_q5_k(block.data(), y.data(), kQk);
  for (int i = 0; i < kQk; ++i) {
    const int j = i / 32;
    ASSERT_EQ(y[i], 0.5f * static_cast<float>(kSc[j] * q[i]) - 0.25f * static_cast<float>(kMin[j]))
        << "element " << i;
  }
}

TEST(KQuantsLayout, Q6KHandBuiltBlock) {
  std::vector<uint8_t> block(kQ6KBytes, 0);
  uint8_t* ql = block.data();
  uint8_t* qh = block.data() + 128;
  auto* scales = reinterpret_cast<int8_t*>(block.data() + 192);
  put_f16(block.data() + 208, 0.125f);
  const int sc[16] = {1, -1, 2, -3, 5, -8, 13, -21, 34, -55, 89, -127, 127, 0, 7, -7};
  for (int g = 0; g < 16; ++g) scales[g] = static_cast<int8_t>(sc[g]);
  int q[kQk];
  for (int i = 0; i < kQk; ++i) q[i] = (i * 13 + 1) % 64;
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const int* qq = q + 128 * h;
      ql[64 * h + l] = static_cast<uint8_t>((qq[l] & 15) | ((qq[l + 64] & 15) << 4));
      ql[64 * h + l + 32] = static_cast<uint8_t>((qq[l + 32] & 15) | ((qq[l + 96] & 15) << 4));
      qh[32 * h + l] = static_cast<uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
                                            ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
    }
  }
  std::vector<float> y(kQk);
  scalar::dequantize_q6_k(block.data(), y.data(), kQk);
  for (int i = 0; i < kQk; ++i) {
    ASSERT_EQ(y[i], 0.125f * static_cast<float>(sc[i / 16] * (q[i] - 32))) << "element " << i;
  }
}

// ---- reference quantizers ----

struct KType {
  const char* name;
  size_t block_bytes;
  void (*quantize)(const float*, void*, int64_t);
  void (*dequantize)(const void*, float*, int64_t);
  float (*dot_f32)(const void*, const float*, int64_t);
  float (*dot_q8k)(const void*, const void*, int64_t);
  double max_rel_rms;  // round-trip bound on N(0, 1) data (measured values in the test output)
};

const KType kTypes[] = {
    {"Q4_K", kQ4KBytes, scalar::quantize_q4_k, scalar::dequantize_q4_k, scalar::dot_f32_q4_k,
     scalar::dot_q8k_q4_k, 0.085},
    {"Q5_K", kQ5KBytes, scalar::quantize_q5_k, scalar::dequantize_q5_k, scalar::dot_f32_q5_k,
     scalar::dot_q8k_q5_k, 0.045},
    {"Q6_K", kQ6KBytes, scalar::quantize_q6_k, scalar::dequantize_q6_k, scalar::dot_f32_q6_k,
     scalar::dot_q8k_q6_k, 0.022},
};

std::vector<uint8_t> quantize(const KType& t, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(n / kQk) * t.block_bytes);
  t.quantize(x.data(), q.data(), n);
  return q;
}

TEST(KQuantsQuantize, RoundTripErrorOnGaussianData) {
  const int64_t n = 64 * kQk;
  const std::vector<float> x = gaussian(n, 1234);
  for (const KType& t : kTypes) {
    const std::vector<uint8_t> q = quantize(t, x);
    std::vector<float> y(n);
    t.dequantize(q.data(), y.data(), n);
    const double err = relative_rms(y, x);
    std::printf("%s round-trip relative RMS on N(0,1): %.4f (bound %.3f)\n", t.name, err,
                t.max_rel_rms);
    EXPECT_LT(err, t.max_rel_rms) << t.name;
  }
}

TEST(KQuantsQuantize, ZerosConstantsAndScaledData) {
  for (const KType& t : kTypes) {
    // All zeros stays exactly zero.
    std::vector<float> zeros(2 * kQk, 0.0f);
    std::vector<float> y(zeros.size(), 1.0f);
    t.dequantize(quantize(t, zeros).data(), y.data(), static_cast<int64_t>(y.size()));
    for (float v : y) ASSERT_EQ(v, 0.0f) << t.name;
    // Tiny and large magnitudes keep their relative error (scales live in f16).
    for (float sigma : {1e-3f, 30.0f}) {
      const std::vector<float> x = gaussian(4 * kQk, 99, sigma);
      std::vector<float> z(x.size());
      t.dequantize(quantize(t, x).data(), z.data(), static_cast<int64_t>(z.size()));
      EXPECT_LT(relative_rms(z, x), t.max_rel_rms) << t.name << " sigma " << sigma;
    }
  }
}

// ---- Q8_K ----

TEST(KQuantsQ8K, QuantizeInvariants) {
  const int64_t n = 8 * kQk;
  std::vector<float> x = gaussian(n, 7);
  for (int i = 0; i < kQk; ++i) x[kQk + i] = 0.0f;  // an all-zero block
  std::vector<uint8_t> q(static_cast<size_t>(n / kQk) * kQ8KBytes);
  scalar::quantize_q8_k(x.data(), q.data(), n);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const uint8_t* b = q.data() + ib * kQ8KBytes;
    float d;
    std::memcpy(&d, b, 4);
    const auto* qs = reinterpret_cast<const int8_t*>(b + 4);
    int16_t bsums[16];
    std::memcpy(bsums, b + 260, sizeof bsums);
    EXPECT_GE(d, 0.0f);
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) {
        ASSERT_GE(qs[i], -127);
        ASSERT_LE(qs[i], 127);
        // d·qs within half a step of x.
        ASSERT_NEAR(d * qs[i], x[ib * kQk + i], 0.5001f * d + 1e-7f);
        s += qs[i];
      }
      ASSERT_EQ(bsums[g], s);
    }
  }
}

// Dequantizes Q8_K blocks (test-only helper: value = d·qs).
std::vector<float> dequantize_q8k(const std::vector<uint8_t>& q) {
  std::vector<float> y;
  for (size_t off = 0; off < q.size(); off += kQ8KBytes) {
    float d;
    std::memcpy(&d, q.data() + off, 4);
    for (int i = 0; i < kQk; ++i) y.push_back(d * static_cast<int8_t>(q[off + 4 + i]));
  }
  return y;
}

// ---- scalar dot products vs dequantize + f64 dot ----

TEST(KQuantsDot, ScalarDotsMatchDequantizedDot) {
  const int64_t n = 16 * kQk;
  const std::vector<float> w = gaussian(n, 11);
  const std::vector<float> x = gaussian(n, 12);
  std::vector<uint8_t> xq(static_cast<size_t>(n / kQk) * kQ8KBytes);
  scalar::quantize_q8_k(x.data(), xq.data(), n);
  const std::vector<float> xd = dequantize_q8k(xq);
  for (const KType& t : kTypes) {
    const std::vector<uint8_t> q = quantize(t, w);
    std::vector<float> wd(n);
    t.dequantize(q.data(), wd.data(), n);
    // f32 path: only summation order differs from the exact dot.
    const double scale = abs_dot_f64(wd, x);
    EXPECT_NEAR(t.dot_f32(q.data(), x.data(), n), dot_f64(wd, x), 1e-5 * scale) << t.name;
    // Q8_K path: exact against the dequantized activations up to float rounding...
    EXPECT_NEAR(t.dot_q8k(q.data(), xq.data(), n), dot_f64(wd, xd), 1e-5 * scale) << t.name;
    // ...and within the activation quantization error of the f32 result.
    EXPECT_NEAR(t.dot_q8k(q.data(), xq.data(), n), dot_f64(wd, x), 1e-2 * scale) << t.name;
  }
}

// ---- fast paths vs scalar ----

struct IsaPaths {
  const char* name;
  bool (*available)();
  decltype(&scalar::dequantize_q4_k) dequantize[3];
  decltype(&scalar::dot_f32_q4_k) dot_f32[3];
  decltype(&scalar::quantize_q8_k) quantize_q8_k;
  decltype(&scalar::dot_q8k_q4_k) dot_q8k[3];
};

#if MOMENTKV_HAVE_AVX2
bool isa_supported(Isa isa) {
  const std::vector<Isa> isas = supported_isas();
  return std::find(isas.begin(), isas.end(), isa) != isas.end();
}
#endif

std::vector<IsaPaths> fast_isas() {
  std::vector<IsaPaths> isas;
#if MOMENTKV_HAVE_AVX2
  isas.push_back({"avx2",
                  [] { return isa_supported(Isa::kAvx2); },
                  {avx2::dequantize_q4_k, avx2::dequantize_q5_k, avx2::dequantize_q6_k},
                  {avx2::dot_f32_q4_k, avx2::dot_f32_q5_k, avx2::dot_f32_q6_k},
                  avx2::quantize_q8_k,
                  {avx2::dot_q8k_q4_k, avx2::dot_q8k_q5_k, avx2::dot_q8k_q6_k}});
  // The VNNI sets: avx2's kernels but their own Q4_K, Q5_K and Q6_K dots.
  isas.push_back({"avx-vnni",
                  [] { return isa_supported(Isa::kAvxVnni); },
                  {avx2::dequantize_q4_k, avx2::dequantize_q5_k, avx2::dequantize_q6_k},
                  {avx2::dot_f32_q4_k, avx2::dot_f32_q5_k, avx2::dot_f32_q6_k},
                  avx2::quantize_q8_k,
                  {avxvnni::dot_q8k_q4_k, avxvnni::dot_q8k_q5_k, avxvnni::dot_q8k_q6_k}});
  isas.push_back({"avx512-vnni",
                  [] { return isa_supported(Isa::kAvx512Vnni); },
                  {avx2::dequantize_q4_k, avx2::dequantize_q5_k, avx2::dequantize_q6_k},
                  {avx2::dot_f32_q4_k, avx2::dot_f32_q5_k, avx2::dot_f32_q6_k},
                  avx2::quantize_q8_k,
                  {avx512::dot_q8k_q4_k, avx512::dot_q8k_q5_k, avx512::dot_q8k_q6_k}});
#endif
#if MOMENTKV_HAVE_NEON
  isas.push_back({"neon",
                  [] { return true; },
                  {neon::dequantize_q4_k, neon::dequantize_q5_k, neon::dequantize_q6_k},
                  {neon::dot_f32_q4_k, neon::dot_f32_q5_k, neon::dot_f32_q6_k},
                  neon::quantize_q8_k,
                  {neon::dot_q8k_q4_k, neon::dot_q8k_q5_k, neon::dot_q8k_q6_k}});
#endif
  return isas;
}

// Random bytes make every bit pattern of qs/qh/scales appear; d and dmin are set to sane f16s.
std::vector<uint8_t> random_blocks(const KType& t, int64_t n_blocks, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> q(static_cast<size_t>(n_blocks) * t.block_bytes);
  for (uint8_t& b : q) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  for (int64_t ib = 0; ib < n_blocks; ++ib) {
    uint8_t* b = q.data() + ib * t.block_bytes;
    if (t.block_bytes == kQ6KBytes) {
      put_f16(b + 208, scale(rng));
    } else {
      put_f16(b, std::fabs(scale(rng)));
      put_f16(b + 2, std::fabs(scale(rng)));
    }
  }
  return q;
}

TEST(KQuantsFastPaths, MatchScalar) {
  const std::vector<IsaPaths> isas = fast_isas();
  if (isas.empty()) GTEST_SKIP() << "no fast path compiled for this architecture";
  const int64_t n = 24 * kQk;
  const std::vector<float> x = gaussian(n, 21);
  for (const IsaPaths& isa : isas) {
    if (!isa.available()) {
      std::printf("%s not supported by this CPU: skipped\n", isa.name);
      continue;
    }
    SCOPED_TRACE(isa.name);
    // Q8_K quantizer: bit-identical.
    std::vector<uint8_t> xq_ref(static_cast<size_t>(n / kQk) * kQ8KBytes);
    std::vector<uint8_t> xq(xq_ref.size());
    scalar::quantize_q8_k(x.data(), xq_ref.data(), n);
    isa.quantize_q8_k(x.data(), xq.data(), n);
    ASSERT_EQ(xq, xq_ref);

    for (int it = 0; it < 3; ++it) {
      const KType& t = kTypes[it];
      SCOPED_TRACE(t.name);
      for (uint32_t seed : {1u, 2u}) {
        // Random bytes (every bit pattern) and quantized real-looking weights.
        const std::vector<uint8_t> q =
            seed == 1 ? random_blocks(t, n / kQk, 31 + it) : quantize(t, gaussian(n, 41 + it));
        std::vector<float> ref(n), got(n);
        t.dequantize(q.data(), ref.data(), n);
        isa.dequantize[it](q.data(), got.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          // fused multiply-subtract may round once where the scalar path rounds twice
          ASSERT_NEAR(got[i], ref[i], 1e-6f * (std::fabs(ref[i]) + 1e-3f)) << "element " << i;
        }
        const double scale = abs_dot_f64(ref, x);
        EXPECT_NEAR(isa.dot_f32[it](q.data(), x.data(), n), t.dot_f32(q.data(), x.data(), n),
                    1e-5 * scale);
        EXPECT_NEAR(isa.dot_q8k[it](q.data(), xq.data(), n), t.dot_q8k(q.data(), xq.data(), n),
                    1e-5 * scale);
      }
    }
  }
}

// Largest weights against ±127 activations: the integer paths must not saturate.
TEST(KQuantsFastPaths, ExtremeValuesDoNotSaturate) {
  const std::vector<IsaPaths> isas = fast_isas();
  if (isas.empty()) GTEST_SKIP() << "no fast path compiled for this architecture";
  const int64_t n = 2 * kQk;
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = (i % 3 == 0) ? -1.0f : 1.0f;
  std::vector<uint8_t> xq(static_cast<size_t>(n / kQk) * kQ8KBytes);
  scalar::quantize_q8_k(x.data(), xq.data(), n);
  for (const IsaPaths& isa : isas) {
    if (!isa.available()) continue;
    for (int it = 0; it < 3; ++it) {
      const KType& t = kTypes[it];
      std::vector<uint8_t> q(static_cast<size_t>(n / kQk) * t.block_bytes, 0xff);
      for (int64_t ib = 0; ib < n / kQk; ++ib) {
        uint8_t* b = q.data() + ib * t.block_bytes;
        if (t.block_bytes == kQ6KBytes) {
          put_f16(b + 208, 1.0f);
          for (int g = 0; g < 16; ++g) b[192 + g] = (g % 2) ? 0x81 : 0x7f;  // scales ±127
        } else {
          put_f16(b, 1.0f);
          put_f16(b + 2, 1.0f);
        }
      }
      const float ref = t.dot_q8k(q.data(), xq.data(), n);
      EXPECT_NEAR(isa.dot_q8k[it](q.data(), xq.data(), n), ref, 1e-6f * std::fabs(ref) + 1e-3f)
          << isa.name << " " << t.name;
    }
  }
}

#if MOMENTKV_HAVE_AVX2
// The VNNI Q4_K, Q5_K and Q6_K dots differ from AVX2's only in how exact integer sums are formed
// (kernels/cpu/avx2/kquant_dots.h): the same bits, one row or several at a time.
TEST(KQuantsFastPaths, VnniDotsEqualAvx2BitForBit) {
  using Dot = float (*)(const void*, const void*, int64_t);
  using Rows = void (*)(const void*, const void*, int64_t, int64_t, float*);
  struct Set {
    Isa isa;
    Dot dot[3];  // Q4_K, Q5_K, Q6_K (kTypes' order)
    Rows x4[3];
    Rows x2[3];
  };
  const Set sets[] = {
      {Isa::kAvxVnni,
       {avxvnni::dot_q8k_q4_k, avxvnni::dot_q8k_q5_k, avxvnni::dot_q8k_q6_k},
       {avxvnni::dot_q8k_q4_k_x4, avxvnni::dot_q8k_q5_k_x4, avxvnni::dot_q8k_q6_k_x4},
       {avxvnni::dot_q8k_q4_k_x2, avxvnni::dot_q8k_q5_k_x2, avxvnni::dot_q8k_q6_k_x2}},
      {Isa::kAvx512Vnni,
       {avx512::dot_q8k_q4_k, avx512::dot_q8k_q5_k, avx512::dot_q8k_q6_k},
       {avx512::dot_q8k_q4_k_x4, avx512::dot_q8k_q5_k_x4, avx512::dot_q8k_q6_k_x4},
       {avx512::dot_q8k_q4_k_x2, avx512::dot_q8k_q5_k_x2, avx512::dot_q8k_q6_k_x2}}};
  const Dot avx2_dot[3] = {avx2::dot_q8k_q4_k, avx2::dot_q8k_q5_k, avx2::dot_q8k_q6_k};
  const int64_t n = 24 * kQk;
  const int64_t row = n / kQk * static_cast<int64_t>(kQ8KBytes);
  std::vector<uint8_t> xq(static_cast<size_t>(4 * row));
  for (int k = 0; k < 4; ++k) {
    const std::vector<float> x = gaussian(n, 61 + static_cast<uint32_t>(k), k == 3 ? 30.0f : 1.0f);
    avx2::quantize_q8_k(x.data(), xq.data() + k * row, n);
  }
  int checked = 0;
  for (const Set& set : sets) {
    if (!isa_supported(set.isa)) {
      std::printf("%s not supported by this CPU: skipped\n", isa_name(set.isa));
      continue;
    }
    for (int it = 0; it < 3; ++it) {
      const KType& t = kTypes[it];
      SCOPED_TRACE(std::string(isa_name(set.isa)) + " " + t.name);
      for (uint32_t seed : {1u, 2u}) {
        const std::vector<uint8_t> q =
            seed == 1 ? random_blocks(t, n / kQk, 71 + it) : quantize(t, gaussian(n, 81 + it));
        float four[4], two[2];
        set.x4[it](q.data(), xq.data(), row, n, four);
        set.x2[it](q.data(), xq.data() + 2 * row, row, n, two);
        for (int k = 0; k < 4; ++k) {
          const float want = avx2_dot[it](q.data(), xq.data() + k * row, n);
          EXPECT_EQ(set.dot[it](q.data(), xq.data() + k * row, n), want) << "row " << k;
          EXPECT_EQ(four[k], want) << "x4 row " << k;
          if (k >= 2) {
            EXPECT_EQ(two[k - 2], want) << "x2 row " << k;
          }
        }
        ++checked;
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "no VNNI on this CPU";
}
#endif

}  // namespace
}  // namespace momentkv::kernels
