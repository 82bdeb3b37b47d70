// The dot product of the NEON row kernels with f32 activations, shared by dot_f32_f32 and
// dot_f32_f16 (neon/quants.cpp) and the grouped attention (neon/attention.cpp), whose results
// must agree bit for bit: four accumulators over 16-element steps, the first over the 4-element
// steps after them, vaddvq of (acc0 + acc1) + (acc2 + acc3), then any last elements one by one.
// In an unnamed namespace like avx2/simd.h: each file compiled for NEON gets its own copy.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

namespace momentkv::kernels::neon {
namespace {

// Rows of f32 or f16 values: four as a vector from element i, or element i alone.
struct F32Values {
  const float* p;
  float32x4_t four(int64_t i) const { return vld1q_f32(p + i); }
  float one(int64_t i) const { return p[i]; }
};
struct F16Values {
  const uint16_t* p;
  float32x4_t four(int64_t i) const { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p + i))); }
  float one(int64_t i) const {
    __fp16 f;
    std::memcpy(&f, p + i, sizeof f);
    return static_cast<float>(f);
  }
};

template <class Values>
inline float dot_rows(Values w, const float* x, int64_t n) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  float32x4_t acc2 = vdupq_n_f32(0.0f), acc3 = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = vfmaq_f32(acc0, w.four(i), vld1q_f32(x + i));
    acc1 = vfmaq_f32(acc1, w.four(i + 4), vld1q_f32(x + i + 4));
    acc2 = vfmaq_f32(acc2, w.four(i + 8), vld1q_f32(x + i + 8));
    acc3 = vfmaq_f32(acc3, w.four(i + 12), vld1q_f32(x + i + 12));
  }
  for (; i + 4 <= n; i += 4) acc0 = vfmaq_f32(acc0, w.four(i), vld1q_f32(x + i));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
  for (; i < n; ++i) sum += w.one(i) * x[i];
  return sum;
}

}  // namespace
}  // namespace momentkv::kernels::neon
