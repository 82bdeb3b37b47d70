// K-quant kernels, NEON path (armv8.2-a + dotprod; aarch64 only). Same results as
// kernels/cpu/scalar/kquants.cpp up to float summation order: the integer dots are exact
// (vdotq_s32 on 6-bit weights in −32..63 and 8-bit activations), and quantize_q8_k is
// bit-identical (same multiply, vcvtnq rounds half to even like nearbyint).
//
// Layouts (../shared/docs/FORMATS.md), 256 elements per super-block:
//   Q4_K: f16 d, f16 dmin, u8 scales[12], u8 qs[128]; qs[32c + l] holds elements 64c + l (low
//         nibble) and 64c + 32 + l (high nibble).
//   Q5_K: as Q4_K plus qh[32]: bit 2c / 2c + 1 of qh[l] is the fifth bit of those two elements.
//   Q6_K: per half h, ql[64h + l] / ql[64h + 32 + l] (l < 32) low nibbles hold elements l / l + 32,
//         high nibbles l + 64 / l + 96; qh[32h + l] bits 0-1, 2-3, 4-5, 6-7 are their top bits.
//   Q8_K: f32 d, i8 qs[256], i16 bsums[16].
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "core/tensor/fp16.h"
#include "kernels/cpu/kquant_blocks.h"
#include "kernels/cpu/kquants.h"

namespace momentkv::kernels::neon {
namespace {

constexpr int kQk = kQkBlock;

// Σ_j m[j]·(bsums[2j] + bsums[2j+1]).
inline int32_t min_term(const int16_t* bsums, const uint8_t* m) {
  const int16x8_t pair = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));  // 8 sub-blocks
  const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
  const int32x4_t p = vmlal_s16(vmull_s16(vget_low_s16(pair), vget_low_s16(mins)),
                                vget_high_s16(pair), vget_high_s16(mins));
  return vaddvq_s32(p);
}

// 16 unsigned bytes widened to four f32x4.
inline void u8_to_f32(uint8x16_t v, float32x4_t out[4]) {
  const uint16x8_t lo = vmovl_u8(vget_low_u8(v));
  const uint16x8_t hi = vmovl_u8(vget_high_u8(v));
  out[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo)));
  out[1] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(lo)));
  out[2] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi)));
  out[3] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(hi)));
}

inline void s8_to_f32(int8x16_t v, float32x4_t out[4]) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(v));
  const int16x8_t hi = vmovl_s8(vget_high_s8(v));
  out[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
  out[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
  out[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
  out[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
}

// The 4- or 5-bit values of Q4_K/Q5_K chunk c: q[0..1] = sub-block 2c (bytes 0-15, 16-31),
// q[2..3] = sub-block 2c + 1. qh (two registers, already shifted right by 2c) may be null.
inline void unpack_q45_chunk(const uint8_t* qs, const uint8x16_t* qh, uint8x16_t q[4]) {
  const uint8x16_t mask4 = vdupq_n_u8(0x0f);
  for (int t = 0; t < 2; ++t) {
    const uint8x16_t v = vld1q_u8(qs + 16 * t);
    q[t] = vandq_u8(v, mask4);
    q[2 + t] = vshrq_n_u8(v, 4);
    if (qh != nullptr) {
      q[t] = vorrq_u8(q[t], vshlq_n_u8(vandq_u8(qh[t], vdupq_n_u8(1)), 4));
      q[2 + t] = vorrq_u8(q[2 + t], vshlq_n_u8(vandq_u8(qh[t], vdupq_n_u8(2)), 3));
    }
  }
}

// The eight 16-byte vectors of 6-bit values (0..63) of Q6_K half h, minus 32: vector 2k + t holds
// elements 128h + 32k + 16t .. +15, which is scale group 8h + 2k + t.
inline void unpack_q6_half(const BlockQ6K& b, int h, int8x16_t q[8]) {
  const uint8x16_t mask4 = vdupq_n_u8(0x0f);
  const uint8x16_t mask2 = vdupq_n_u8(0x03);
  const int8x16_t offset = vdupq_n_s8(32);
  for (int t = 0; t < 2; ++t) {
    const uint8x16_t ql0 = vld1q_u8(b.ql + 64 * h + 16 * t);
    const uint8x16_t ql1 = vld1q_u8(b.ql + 64 * h + 32 + 16 * t);
    const uint8x16_t qh = vld1q_u8(b.qh + 32 * h + 16 * t);
    const uint8x16_t v[4] = {
        vorrq_u8(vandq_u8(ql0, mask4), vshlq_n_u8(vandq_u8(qh, mask2), 4)),
        vorrq_u8(vandq_u8(ql1, mask4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), mask2), 4)),
        vorrq_u8(vshrq_n_u8(ql0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), mask2), 4)),
        vorrq_u8(vshrq_n_u8(ql1, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4))};
    for (int k = 0; k < 4; ++k) q[2 * k + t] = vsubq_s8(vreinterpretq_s8_u8(v[k]), offset);
  }
}

}  // namespace

// ---- dequantize ----

namespace {

template <bool kHasQh, typename Block>
void dequantize_q45(const Block* blocks, float* dst, int64_t n) {
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const Block& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    const ScalesMins sm = unpack_scales_mins(b.scales);
    float* y = dst + ib * kQk;
    uint8x16_t qh[2] = {vdupq_n_u8(0), vdupq_n_u8(0)};
    if constexpr (kHasQh) {
      qh[0] = vld1q_u8(b.qh);
      qh[1] = vld1q_u8(b.qh + 16);
    }
    for (int c = 0; c < 4; ++c) {
      uint8x16_t q[4];
      unpack_q45_chunk(b.qs + 32 * c, kHasQh ? qh : nullptr, q);
      if constexpr (kHasQh) {  // the next chunk's bits to bits 0-1
        qh[0] = vshrq_n_u8(qh[0], 2);
        qh[1] = vshrq_n_u8(qh[1], 2);
      }
      for (int v = 0; v < 4; ++v) {
        const int j = 2 * c + v / 2;
        const float32x4_t vc = vdupq_n_f32(dmin * sm.m[j]);
        const float a = d * sm.sc[j];
        float32x4_t f[4];
        u8_to_f32(q[v], f);
        for (int t = 0; t < 4; ++t) {
          vst1q_f32(y + 32 * j + 16 * (v % 2) + 4 * t, vsubq_f32(vmulq_n_f32(f[t], a), vc));
        }
      }
    }
  }
}

}  // namespace

void dequantize_q4_k(const void* src, float* dst, int64_t n) {
  dequantize_q45<false>(static_cast<const BlockQ4K*>(src), dst, n);
}

void dequantize_q5_k(const void* src, float* dst, int64_t n) {
  dequantize_q45<true>(static_cast<const BlockQ5K*>(src), dst, n);
}

void dequantize_q6_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6K*>(src);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ6K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    for (int h = 0; h < 2; ++h) {
      int8x16_t q[8];
      unpack_q6_half(b, h, q);
      for (int v = 0; v < 8; ++v) {
        const int g = 8 * h + v;  // vector v is group 8h + v, elements 16g .. 16g + 15
        const float a = d * static_cast<float>(b.scales[g]);
        float32x4_t f[4];
        s8_to_f32(q[v], f);
        for (int t = 0; t < 4; ++t)
          vst1q_f32(dst + ib * kQk + 16 * g + 4 * t, vmulq_n_f32(f[t], a));
      }
    }
  }
}

// ---- dot with f32 activations: Σ q·x and Σ x per sub-block, scaled once ----

namespace {

template <bool kHasQh, typename Block>
float dot_f32_q45(const Block* blocks, const float* x, int64_t n) {
  float32x4_t acc = vdupq_n_f32(0.0f);
  float32x4_t acc_min = vdupq_n_f32(0.0f);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const Block& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    const ScalesMins sm = unpack_scales_mins(b.scales);
    const float* xb = x + ib * kQk;
    uint8x16_t qh[2] = {vdupq_n_u8(0), vdupq_n_u8(0)};
    if constexpr (kHasQh) {
      qh[0] = vld1q_u8(b.qh);
      qh[1] = vld1q_u8(b.qh + 16);
    }
    for (int c = 0; c < 4; ++c) {
      uint8x16_t q[4];
      unpack_q45_chunk(b.qs + 32 * c, kHasQh ? qh : nullptr, q);
      if constexpr (kHasQh) {  // the next chunk's bits to bits 0-1
        qh[0] = vshrq_n_u8(qh[0], 2);
        qh[1] = vshrq_n_u8(qh[1], 2);
      }
      for (int s = 0; s < 2; ++s) {
        const int j = 2 * c + s;
        const float* xj = xb + 32 * j;
        float32x4_t sqx = vdupq_n_f32(0.0f);
        float32x4_t sx = vdupq_n_f32(0.0f);
        for (int half = 0; half < 2; ++half) {
          float32x4_t f[4];
          u8_to_f32(q[2 * s + half], f);
          for (int t = 0; t < 4; ++t) {
            const float32x4_t xv = vld1q_f32(xj + 16 * half + 4 * t);
            sqx = vfmaq_f32(sqx, f[t], xv);
            sx = vaddq_f32(sx, xv);
          }
        }
        acc = vfmaq_n_f32(acc, sqx, d * sm.sc[j]);
        acc_min = vfmaq_n_f32(acc_min, sx, dmin * sm.m[j]);
      }
    }
  }
  return vaddvq_f32(acc) - vaddvq_f32(acc_min);
}

}  // namespace

float dot_f32_q4_k(const void* w, const float* x, int64_t n) {
  return dot_f32_q45<false>(static_cast<const BlockQ4K*>(w), x, n);
}

float dot_f32_q5_k(const void* w, const float* x, int64_t n) {
  return dot_f32_q45<true>(static_cast<const BlockQ5K*>(w), x, n);
}

float dot_f32_q6_k(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6K*>(w);
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ6K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    for (int h = 0; h < 2; ++h) {
      int8x16_t q[8];
      unpack_q6_half(b, h, q);
      for (int v = 0; v < 8; ++v) {
        const int g = 8 * h + v;
        const float* xg = x + ib * kQk + 16 * g;
        float32x4_t f[4];
        s8_to_f32(q[v], f);
        float32x4_t t = vmulq_f32(f[0], vld1q_f32(xg));
        t = vfmaq_f32(t, f[1], vld1q_f32(xg + 4));
        t = vfmaq_f32(t, f[2], vld1q_f32(xg + 8));
        t = vfmaq_f32(t, f[3], vld1q_f32(xg + 12));
        acc = vfmaq_n_f32(acc, t, d * static_cast<float>(b.scales[g]));
      }
    }
  }
  return vaddvq_f32(acc);
}

// ---- Q8_K activations and integer dots ----

void quantize_q8_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8K*>(dst);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const float* x = src + ib * kQk;
    BlockQ8K& b = blocks[ib];
    float32x4_t vmax = vdupq_n_f32(0.0f);
    for (int i = 0; i < kQk; i += 4) vmax = vmaxq_f32(vmax, vabsq_f32(vld1q_f32(x + i)));
    const float amax = vmaxvq_f32(vmax);
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    b.d = amax / 127.0f;
    for (int g = 0; g < 16; ++g) {
      int32x4_t v[4];
      for (int t = 0; t < 4; ++t)
        v[t] = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 4 * t), id));
      b.bsums[g] =
          static_cast<int16_t>(vaddvq_s32(vaddq_s32(vaddq_s32(v[0], v[1]), vaddq_s32(v[2], v[3]))));
      const int16x8_t lo = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
      const int16x8_t hi = vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3]));
      vst1q_s8(b.qs + 16 * g, vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
    }
  }
}

namespace {

template <bool kHasQh, typename Block>
float dot_q8k_q45(const Block* wb, const BlockQ8K* xb, int64_t n) {
  float sum = 0.0f;
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const Block& b = wb[ib];
    const BlockQ8K& a = xb[ib];
    const ScalesMins sm = unpack_scales_mins(b.scales);
    uint8x16_t qh[2] = {vdupq_n_u8(0), vdupq_n_u8(0)};
    if constexpr (kHasQh) {
      qh[0] = vld1q_u8(b.qh);
      qh[1] = vld1q_u8(b.qh + 16);
    }
    int32x4_t sum_q = vdupq_n_s32(0);
    for (int c = 0; c < 4; ++c) {
      uint8x16_t q[4];
      unpack_q45_chunk(b.qs + 32 * c, kHasQh ? qh : nullptr, q);
      if constexpr (kHasQh) {  // the next chunk's bits to bits 0-1
        qh[0] = vshrq_n_u8(qh[0], 2);
        qh[1] = vshrq_n_u8(qh[1], 2);
      }
      const int8_t* x = a.qs + 64 * c;
      int32x4_t p_lo = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(q[0]), vld1q_s8(x));
      p_lo = vdotq_s32(p_lo, vreinterpretq_s8_u8(q[1]), vld1q_s8(x + 16));
      int32x4_t p_hi = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(q[2]), vld1q_s8(x + 32));
      p_hi = vdotq_s32(p_hi, vreinterpretq_s8_u8(q[3]), vld1q_s8(x + 48));
      sum_q = vmlaq_n_s32(sum_q, p_lo, sm.sc[2 * c]);
      sum_q = vmlaq_n_s32(sum_q, p_hi, sm.sc[2 * c + 1]);
    }
    sum += a.d * (fp16_to_fp32(b.d) * static_cast<float>(vaddvq_s32(sum_q)) -
                  fp16_to_fp32(b.dmin) * static_cast<float>(min_term(a.bsums, sm.m)));
  }
  return sum;
}

}  // namespace

float dot_q8k_q4_k(const void* w, const void* xq, int64_t n) {
  return dot_q8k_q45<false>(static_cast<const BlockQ4K*>(w), static_cast<const BlockQ8K*>(xq), n);
}

float dot_q8k_q5_k(const void* w, const void* xq, int64_t n) {
  return dot_q8k_q45<true>(static_cast<const BlockQ5K*>(w), static_cast<const BlockQ8K*>(xq), n);
}

float dot_q8k_q6_k(const void* w, const void* xq, int64_t n) {
  const auto* wb = static_cast<const BlockQ6K*>(w);
  const auto* xb = static_cast<const BlockQ8K*>(xq);
  float sum = 0.0f;
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ6K& b = wb[ib];
    const BlockQ8K& a = xb[ib];
    int32x4_t sum_q = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {
      int8x16_t q[8];
      unpack_q6_half(b, h, q);
      for (int v = 0; v < 8; ++v) {
        const int g = 8 * h + v;
        const int32x4_t p = vdotq_s32(vdupq_n_s32(0), q[v], vld1q_s8(a.qs + 16 * g));
        sum_q = vmlaq_n_s32(sum_q, p, b.scales[g]);
      }
    }
    sum += a.d * fp16_to_fp32(b.d) * static_cast<float>(vaddvq_s32(sum_q));
  }
  return sum;
}

}  // namespace momentkv::kernels::neon
