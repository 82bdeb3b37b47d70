// Scalar reference for the K-quants: dequantize, f32 dot products, the Q8_K activation quantizer,
// integer dot products against Q8_K, and the reference weight quantizers. This is the oracle the
// AVX2 and NEON paths are tested against; it favours being obviously right over being fast.
//
// Super-blocks hold 256 elements (layouts in ../shared/docs/FORMATS.md):
//   Q4_K 144 B: f16 d, f16 dmin, u8 scales[12] (8 packed 6-bit scale/min pairs), u8 qs[128]
//   Q5_K 176 B: as Q4_K plus u8 qh[32] (fifth bit) before qs
//   Q6_K 210 B: u8 ql[128], u8 qh[64], i8 scales[16], f16 d
//   Q8_K 292 B: f32 d, i8 qs[256], i16 bsums[16] (bsums[g] = sum of qs[16g .. 16g+15])
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/tensor/fp16.h"
#include "kernels/cpu/kquant_blocks.h"
#include "kernels/cpu/kquants.h"

namespace momentkv::kernels::scalar {
namespace {

constexpr int kQk = kQkBlock;

// Inverse of unpack_scale_min for all eight sub-blocks (each value 0..63).
void pack_scale_min(const uint8_t* sc, const uint8_t* m, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>(sc[j] & 63);
    scales[j + 4] = static_cast<uint8_t>(m[j] & 63);
  }
  for (int j = 4; j < 8; ++j) {
    scales[j + 4] = static_cast<uint8_t>((sc[j] & 15) | ((m[j] & 15) << 4));
    scales[j - 4] = static_cast<uint8_t>(scales[j - 4] | ((sc[j] >> 4) << 6));
    scales[j] = static_cast<uint8_t>(scales[j] | ((m[j] >> 4) << 6));
  }
}

// 4-bit (Q4_K) or 5-bit (Q5_K) value of element i (0..255) of a block.
int q4_value(const uint8_t* qs, int i) {
  const int c = i / 64;
  const int l = i % 32;
  const uint8_t byte = qs[32 * c + l];
  return (i % 64) < 32 ? (byte & 15) : (byte >> 4);
}

int q5_high_bit(const uint8_t* qh, int i) {
  const int c = i / 64;
  const int l = i % 32;
  const int bit = 2 * c + ((i % 64) < 32 ? 0 : 1);
  return (qh[l] >> bit) & 1;
}

// 6-bit value (0..63, before the −32 offset) of element i (0..255) of a Q6_K block; its scale
// index is i / 16.
int q6_value(const BlockQ6K& b, int i) {
  const int h = i / 128;
  const int r = i % 128;
  const int k = r / 32;  // which of the four 32-element quarters of the half
  const int l = r % 32;
  const uint8_t* ql = b.ql + 64 * h;
  const uint8_t* qh = b.qh + 32 * h;
  const int lo = (k % 2 == 0 ? ql[l] : ql[l + 32]);
  const int nibble = k < 2 ? (lo & 15) : (lo >> 4);
  const int high = (qh[l] >> (2 * k)) & 3;
  return nibble | (high << 4);
}

// Stores 6-bit value q (0..63) as element i of a Q6_K block (ql/qh must start zeroed).
void q6_store(BlockQ6K& b, int i, int q) {
  const int h = i / 128;
  const int r = i % 128;
  const int k = r / 32;
  const int l = r % 32;
  uint8_t* ql = b.ql + 64 * h;
  uint8_t* qh = b.qh + 32 * h;
  uint8_t& lo = (k % 2 == 0 ? ql[l] : ql[l + 32]);
  lo = static_cast<uint8_t>(lo | (k < 2 ? (q & 15) : ((q & 15) << 4)));
  qh[l] = static_cast<uint8_t>(qh[l] | (((q >> 4) & 3) << (2 * k)));
}

int clamp_round(float v, int lo, int hi) {
  const int q = static_cast<int>(std::nearbyint(v));
  return std::clamp(q, lo, hi);
}

// Fits x[i] ≈ scale·q[i] − min with q in 0..n_max and min ≥ 0, minimising the squared error over
// a few candidate grid spacings, each refined by least squares. Returns the error.
float fit_scale_min(const float* x, int n, int n_max, float& scale, float& min) {
  float lo = std::min(0.0f, *std::min_element(x, x + n));
  const float hi = *std::max_element(x, x + n);
  scale = 0.0f;
  min = -lo;
  if (hi <= lo) return 0.0f;
  float best_err = INFINITY;
  int q[32];
  for (int k = -6; k <= 6; ++k) {
    const float iscale = (static_cast<float>(n_max) + 0.15f * static_cast<float>(k)) / (hi - lo);
    float sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      q[i] = clamp_round(iscale * (x[i] - lo), 0, n_max);
      const float qf = static_cast<float>(q[i]);
      sq += qf;
      sqq += qf * qf;
      sx += x[i];
      sqx += qf * x[i];
    }
    const float nf = static_cast<float>(n);
    const float det = nf * sqq - sq * sq;
    if (det <= 0.0f) continue;
    float s = (nf * sqx - sq * sx) / det;
    float b = (sx - s * sq) / nf;  // offset; the format needs b <= 0
    if (b > 0.0f) {
      b = 0.0f;
      s = sqx / sqq;
    }
    if (s < 0.0f) continue;
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float e = s * static_cast<float>(q[i]) + b - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      scale = s;
      min = -b;
    }
  }
  return best_err;
}

// Fits x[i] ≈ scale·q[i] with q in −32..31 (either sign of scale); returns the scale.
float fit_scale_symmetric(const float* x, int n) {
  float amax = 0.0f;
  float vmax = 0.0f;  // the element of largest magnitude, with its sign
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      vmax = x[i];
    }
  }
  if (amax == 0.0f) return 0.0f;
  float best_scale = 0.0f;
  float best_err = INFINITY;
  for (int k = -8; k <= 8; ++k) {
    // Mapping the largest element to −32 uses the asymmetric range's extra level.
    const float iscale = (-32.0f + 0.25f * static_cast<float>(k)) / vmax;
    float sqq = 0, sqx = 0;
    int q[16];
    for (int i = 0; i < n; ++i) {
      q[i] = clamp_round(iscale * x[i], -32, 31);
      sqq += static_cast<float>(q[i] * q[i]);
      sqx += static_cast<float>(q[i]) * x[i];
    }
    if (sqq == 0.0f) continue;
    const float s = sqx / sqq;
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float e = s * static_cast<float>(q[i]) - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = s;
    }
  }
  return best_scale;
}

// Shared body of quantize_q4_k / quantize_q5_k: fills d, dmin, scales and the per-element values
// q[256] (0..n_max).
void quantize_super_block_qk(const float* x, int n_max, uint16_t& d_out, uint16_t& dmin_out,
                             uint8_t* scales_out, uint8_t* q) {
  float sub_scale[8];
  float sub_min[8];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    fit_scale_min(x + 32 * j, 32, n_max, sub_scale[j], sub_min[j]);
    max_scale = std::max(max_scale, sub_scale[j]);
    max_min = std::max(max_min, sub_min[j]);
  }
  d_out = fp32_to_fp16(max_scale / 63.0f);
  dmin_out = fp32_to_fp16(max_min / 63.0f);
  const float d = fp16_to_fp32(d_out);
  const float dmin = fp16_to_fp32(dmin_out);
  uint8_t sc[8];
  uint8_t m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(d > 0.0f ? clamp_round(sub_scale[j] / d, 0, 63) : 0);
    m[j] = static_cast<uint8_t>(dmin > 0.0f ? clamp_round(sub_min[j] / dmin, 0, 63) : 0);
  }
  pack_scale_min(sc, m, scales_out);
  // Requantize against the scales actually stored.
  for (int j = 0; j < 8; ++j) {
    const float a = d * sc[j];
    const float b = dmin * m[j];
    for (int l = 0; l < 32; ++l) {
      const int i = 32 * j + l;
      q[i] = static_cast<uint8_t>(a > 0.0f ? clamp_round((x[i] + b) / a, 0, n_max) : 0);
    }
  }
}

}  // namespace

// ---- dequantize ----

void dequantize_q4_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ4K*>(src);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ4K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    float* y = dst + ib * kQk;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min(b.scales, j, sc, m);
      const float a = d * static_cast<float>(sc);
      const float c = dmin * static_cast<float>(m);
      for (int i = 32 * j; i < 32 * j + 32; ++i) {
        y[i] = a * static_cast<float>(q4_value(b.qs, i)) - c;
      }
    }
  }
}

void dequantize_q5_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ5K*>(src);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ5K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    float* y = dst + ib * kQk;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min(b.scales, j, sc, m);
      const float a = d * static_cast<float>(sc);
      const float c = dmin * static_cast<float>(m);
      for (int i = 32 * j; i < 32 * j + 32; ++i) {
        const int q = q4_value(b.qs, i) | (q5_high_bit(b.qh, i) << 4);
        y[i] = a * static_cast<float>(q) - c;
      }
    }
  }
}

void dequantize_q6_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6K*>(src);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ6K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    float* y = dst + ib * kQk;
    for (int i = 0; i < kQk; ++i) {
      y[i] = d * static_cast<float>(b.scales[i / 16]) * static_cast<float>(q6_value(b, i) - 32);
    }
  }
}

// ---- dot with f32 activations: per sub-block sum(q·x) and sum(x), then scale ----

float dot_f32_q4_k(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const BlockQ4K*>(w);
  float sum = 0.0f;
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ4K& b = blocks[ib];
    const float* xb = x + ib * kQk;
    float block_sum = 0.0f;
    float block_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min(b.scales, j, sc, m);
      float sqx = 0.0f, sx = 0.0f;
      for (int i = 32 * j; i < 32 * j + 32; ++i) {
        sqx += static_cast<float>(q4_value(b.qs, i)) * xb[i];
        sx += xb[i];
      }
      block_sum += static_cast<float>(sc) * sqx;
      block_min += static_cast<float>(m) * sx;
    }
    sum += fp16_to_fp32(b.d) * block_sum - fp16_to_fp32(b.dmin) * block_min;
  }
  return sum;
}

float dot_f32_q5_k(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const BlockQ5K*>(w);
  float sum = 0.0f;
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ5K& b = blocks[ib];
    const float* xb = x + ib * kQk;
    float block_sum = 0.0f;
    float block_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min(b.scales, j, sc, m);
      float sqx = 0.0f, sx = 0.0f;
      for (int i = 32 * j; i < 32 * j + 32; ++i) {
        const int q = q4_value(b.qs, i) | (q5_high_bit(b.qh, i) << 4);
        sqx += static_cast<float>(q) * xb[i];
        sx += xb[i];
      }
      block_sum += static_cast<float>(sc) * sqx;
      block_min += static_cast<float>(m) * sx;
    }
    sum += fp16_to_fp32(b.d) * block_sum - fp16_to_fp32(b.dmin) * block_min;
  }
  return sum;
}

float dot_f32_q6_k(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6K*>(w);
  float sum = 0.0f;
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ6K& b = blocks[ib];
    const float* xb = x + ib * kQk;
    float block_sum = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float sqx = 0.0f;
      for (int i = 16 * g; i < 16 * g + 16; ++i) {
        sqx += static_cast<float>(q6_value(b, i) - 32) * xb[i];
      }
      block_sum += static_cast<float>(b.scales[g]) * sqx;
    }
    sum += fp16_to_fp32(b.d) * block_sum;
  }
  return sum;
}

// ---- Q8_K activations and integer dots ----

void quantize_q8_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8K*>(dst);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const float* x = src + ib * kQk;
    BlockQ8K& b = blocks[ib];
    float amax = 0.0f;
    for (int i = 0; i < kQk; ++i) amax = std::max(amax, std::fabs(x[i]));
    // d > 0 and x ≈ d·qs; the multiply by id (not a divide) is what the SIMD paths reproduce.
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    b.d = amax / 127.0f;
    for (int g = 0; g < 16; ++g) {
      int bsum = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) {
        const int q = clamp_round(x[i] * id, -127, 127);
        b.qs[i] = static_cast<int8_t>(q);
        bsum += q;
      }
      b.bsums[g] = static_cast<int16_t>(bsum);
    }
  }
}

float dot_q8k_q4_k(const void* w, const void* xq, int64_t n) {
  const auto* wb = static_cast<const BlockQ4K*>(w);
  const auto* xb = static_cast<const BlockQ8K*>(xq);
  float sum = 0.0f;
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ4K& b = wb[ib];
    const BlockQ8K& a = xb[ib];
    int32_t sum_q = 0;    // Σ_j sc[j]·Σ q·qx
    int32_t sum_min = 0;  // Σ_j m[j]·Σ qx, from bsums
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min(b.scales, j, sc, m);
      int32_t s = 0;
      for (int i = 32 * j; i < 32 * j + 32; ++i) s += q4_value(b.qs, i) * a.qs[i];
      sum_q += sc * s;
      sum_min += m * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
    }
    sum += a.d * (fp16_to_fp32(b.d) * static_cast<float>(sum_q) -
                  fp16_to_fp32(b.dmin) * static_cast<float>(sum_min));
  }
  return sum;
}

float dot_q8k_q5_k(const void* w, const void* xq, int64_t n) {
  const auto* wb = static_cast<const BlockQ5K*>(w);
  const auto* xb = static_cast<const BlockQ8K*>(xq);
  float sum = 0.0f;
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ5K& b = wb[ib];
    const BlockQ8K& a = xb[ib];
    int32_t sum_q = 0;
    int32_t sum_min = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      unpack_scale_min(b.scales, j, sc, m);
      int32_t s = 0;
      for (int i = 32 * j; i < 32 * j + 32; ++i) {
        s += (q4_value(b.qs, i) | (q5_high_bit(b.qh, i) << 4)) * a.qs[i];
      }
      sum_q += sc * s;
      sum_min += m * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
    }
    sum += a.d * (fp16_to_fp32(b.d) * static_cast<float>(sum_q) -
                  fp16_to_fp32(b.dmin) * static_cast<float>(sum_min));
  }
  return sum;
}

float dot_q8k_q6_k(const void* w, const void* xq, int64_t n) {
  const auto* wb = static_cast<const BlockQ6K*>(w);
  const auto* xb = static_cast<const BlockQ8K*>(xq);
  float sum = 0.0f;
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ6K& b = wb[ib];
    const BlockQ8K& a = xb[ib];
    int32_t sum_q = 0;
    for (int g = 0; g < 16; ++g) {
      int32_t s = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) s += q6_value(b, i) * a.qs[i];
      // Σ (q − 32)·qx = Σ q·qx − 32·bsum
      sum_q += b.scales[g] * (s - 32 * a.bsums[g]);
    }
    sum += a.d * fp16_to_fp32(b.d) * static_cast<float>(sum_q);
  }
  return sum;
}

// ---- reference weight quantizers ----

void quantize_q4_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ4K*>(dst);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    BlockQ4K& b = blocks[ib];
    uint8_t q[kQk];
    quantize_super_block_qk(src + ib * kQk, 15, b.d, b.dmin, b.scales, q);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        b.qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
      }
    }
  }
}

void quantize_q5_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ5K*>(dst);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    BlockQ5K& b = blocks[ib];
    uint8_t q[kQk];
    quantize_super_block_qk(src + ib * kQk, 31, b.d, b.dmin, b.scales, q);
    std::memset(b.qh, 0, sizeof b.qh);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = q[64 * c + l];
        const int hi = q[64 * c + 32 + l];
        b.qs[32 * c + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
        b.qh[l] =
            static_cast<uint8_t>(b.qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

void quantize_q6_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ6K*>(dst);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const float* x = src + ib * kQk;
    BlockQ6K& b = blocks[ib];
    float group_scale[16];
    float max_abs = 0.0f;
    for (int g = 0; g < 16; ++g) {
      group_scale[g] = fit_scale_symmetric(x + 16 * g, 16);
      max_abs = std::max(max_abs, std::fabs(group_scale[g]));
    }
    b.d = fp32_to_fp16(max_abs / 127.0f);
    const float d = fp16_to_fp32(b.d);
    std::memset(b.ql, 0, sizeof b.ql);
    std::memset(b.qh, 0, sizeof b.qh);
    for (int g = 0; g < 16; ++g) {
      const int sc = d > 0.0f ? clamp_round(group_scale[g] / d, -127, 127) : 0;
      b.scales[g] = static_cast<int8_t>(sc);
      const float a = d * static_cast<float>(sc);
      for (int i = 16 * g; i < 16 * g + 16; ++i) {
        const int q = a != 0.0f ? clamp_round(x[i] / a, -32, 31) : 0;
        q6_store(b, i, q + 32);
      }
    }
  }
}

}  // namespace momentkv::kernels::scalar
