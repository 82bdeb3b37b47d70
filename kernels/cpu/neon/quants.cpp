// NEON kernels (armv8.2-a + fp16 + dotprod) for F32/F16 and the Q4_0/Q8_0 block types; the other
// types use the scalar entries. A block is expanded to two int8x16 halves (elements 0..15 and
// 16..31); the Q8_0-activation dots use vdotq_s32 (4-way i8 dot into i32 lanes), one fma per block
// applies the scales. Results differ from scalar only by float summation order.
#include <arm_neon.h>

#include <cmath>
#include <cstring>

#include "core/tensor/fp16.h"
#include "kernels/cpu/neon/dot.h"
#include "kernels/cpu/quants.h"

namespace momentkv::kernels::neon {

namespace {

inline float half_to_float(uint16_t h) {
  __fp16 f;
  std::memcpy(&f, &h, sizeof f);
  return static_cast<float>(f);
}

// The 32 signed values of a block: lo = elements 0..15, hi = elements 16..31.
struct Halves {
  int8x16_t lo;
  int8x16_t hi;
};

inline Halves expand(const BlockQ4_0& b) {
  const uint8x16_t qs = vld1q_u8(b.qs);
  const int8x16_t eight = vdupq_n_s8(8);
  return {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(qs, vdupq_n_u8(15))), eight),
          vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(qs, 4)), eight)};
}

inline Halves expand(const BlockQ8_0& b) {
  return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)};
}

// Element groups of four as f32: v[0] = elements 0..3 of h, ..., v[3] = 12..15.
inline void to_float(int8x16_t h, float32x4_t v[4]) {
  const int16x8_t a = vmovl_s8(vget_low_s8(h));
  const int16x8_t b = vmovl_s8(vget_high_s8(h));
  v[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(a)));
  v[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(a)));
  v[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(b)));
  v[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(b)));
}

template <typename Block>
void dequantize_impl(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const Block*>(src);
  float32x4_t v[4];
  for (int64_t b = 0; b < n / 32; ++b) {
    const Halves q = expand(blocks[b]);
    const float d = half_to_float(blocks[b].d);
    float* out = dst + b * 32;
    to_float(q.lo, v);
    for (int k = 0; k < 4; ++k) vst1q_f32(out + 4 * k, vmulq_n_f32(v[k], d));
    to_float(q.hi, v);
    for (int k = 0; k < 4; ++k) vst1q_f32(out + 16 + 4 * k, vmulq_n_f32(v[k], d));
  }
}

// sum_i q[i] * x[i] over one half (16 elements) added to p.
inline float32x4_t dot_half(int8x16_t q, const float* x, float32x4_t p) {
  float32x4_t v[4];
  to_float(q, v);
  for (int k = 0; k < 4; ++k) p = vfmaq_f32(p, v[k], vld1q_f32(x + 4 * k));
  return p;
}

template <typename Block>
float dot_f32_impl(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const Block*>(w);
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < n / 32; ++b) {
    const Halves q = expand(blocks[b]);
    const float* xb = x + b * 32;
    const float32x4_t p0 = dot_half(q.lo, xb, vdupq_n_f32(0.0f));
    const float32x4_t p1 = dot_half(q.hi, xb + 16, vdupq_n_f32(0.0f));
    const float d = half_to_float(blocks[b].d);
    acc0 = vfmaq_n_f32(acc0, p0, d);
    acc1 = vfmaq_n_f32(acc1, p1, d);
  }
  return vaddvq_f32(vaddq_f32(acc0, acc1));
}

template <typename Block>
inline float32x4_t dot_q8_0_step(const Block& blk, const BlockQ8_0& xb, float32x4_t acc) {
  const Halves q = expand(blk);
  int32x4_t s = vdotq_s32(vdupq_n_s32(0), q.lo, vld1q_s8(xb.qs));
  s = vdotq_s32(s, q.hi, vld1q_s8(xb.qs + 16));
  return vfmaq_n_f32(acc, vcvtq_f32_s32(s), half_to_float(blk.d) * half_to_float(xb.d));
}

template <typename Block>
float dot_q8_0_impl(const void* w, const void* xq, int64_t n) {
  const auto* blocks = static_cast<const Block*>(w);
  const auto* xb = static_cast<const BlockQ8_0*>(xq);
  const int64_t nb = n / 32;
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    acc0 = dot_q8_0_step(blocks[b], xb[b], acc0);
    acc1 = dot_q8_0_step(blocks[b + 1], xb[b + 1], acc1);
  }
  if (b < nb) acc0 = dot_q8_0_step(blocks[b], xb[b], acc0);
  return vaddvq_f32(vaddq_f32(acc0, acc1));
}

inline float32x4_t load_f16x4(const uint16_t* h) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

}  // namespace

void dequantize_f16(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, load_f16x4(h + i));
  for (; i < n; ++i) dst[i] = half_to_float(h[i]);
}

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
  dequantize_impl<BlockQ4_0>(src, dst, n);
}
void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  dequantize_impl<BlockQ8_0>(src, dst, n);
}

float dot_f32_f32(const void* w, const float* x, int64_t n) {
  return dot_rows(F32Values{static_cast<const float*>(w)}, x, n);
}

float dot_f32_f16(const void* w, const float* x, int64_t n) {
  return dot_rows(F16Values{static_cast<const uint16_t*>(w)}, x, n);
}

void accumulate_f32(const void* row, float a, float* y, int64_t n) {
  const auto* f = static_cast<const float*>(row);
  const float32x4_t va = vdupq_n_f32(a);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), vld1q_f32(f + i), va));
  for (; i < n; ++i) y[i] = std::fma(a, f[i], y[i]);
}

void accumulate_f16(const void* row, float a, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(row);
  const float32x4_t va = vdupq_n_f32(a);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), load_f16x4(h + i), va));
  for (; i < n; ++i) y[i] = std::fma(a, half_to_float(h[i]), y[i]);
}

float dot_f32_q4_0(const void* w, const float* x, int64_t n) {
  return dot_f32_impl<BlockQ4_0>(w, x, n);
}
float dot_f32_q8_0(const void* w, const float* x, int64_t n) {
  return dot_f32_impl<BlockQ8_0>(w, x, n);
}

float dot_q8_0_q4_0(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_impl<BlockQ4_0>(w, xq, n);
}
float dot_q8_0_q8_0(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_impl<BlockQ8_0>(w, xq, n);
}

// Bit-identical to scalar::quantize_q8_0: same amax, d, 1/d and product; vcvtaq rounds half away
// from zero like std::round.
void quantize_q8_0(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    float32x4_t v[8];
    float32x4_t amax = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; ++k) {
      v[k] = vld1q_f32(x + 4 * k);
      amax = vmaxq_f32(amax, vabsq_f32(v[k]));
    }
    const float d = vmaxvq_f32(amax) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = fp32_to_fp16(d);
    for (int k = 0; k < 8; k += 2) {
      const int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(v[k], id));
      const int32x4_t c = vcvtaq_s32_f32(vmulq_n_f32(v[k + 1], id));
      const int16x8_t s16 = vcombine_s16(vqmovn_s32(a), vqmovn_s32(c));
      vst1_s8(blocks[b].qs + 4 * k, vqmovn_s16(s16));
    }
  }
}

}  // namespace momentkv::kernels::neon
