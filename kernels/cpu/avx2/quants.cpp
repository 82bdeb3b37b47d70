// AVX2/FMA/F16C kernels for F32/F16/BF16 and the 32-element block types (compiled with -mavx2
// -mfma -mf16c; only called after best_isa() saw those features at run time).
//
// Every block type is first expanded to 32 int8 values in one __m256i (element i in byte i):
// signed q - 8 / q - 16 for Q4_0 / Q5_0, unsigned 0..15 / 0..31 for Q4_1 / Q5_1 (value = d q + m),
// signed q for Q8_0. The Q8_0-activation dot products then use maddubs (u8 x i8 -> i16 pairs) and
// madd (i16 pairs -> i32); sums over a block stay exact integers, one fma per block applies the
// scales. Results differ from scalar only by float summation order.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/avx2/simd.h"
#include "kernels/cpu/quants.h"

namespace momentkv::kernels::avx2 {

namespace {

using x86::bit_bytes;
using x86::half_to_float;
using x86::hmax;
using x86::hsum;
using x86::nibbles;
using x86::scales4;

// Per-type block expansion: q(b) = the 32 int8 values, d(b), m(b); kUnsigned when q >= 0.
struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr bool kHasMin = false;
  static constexpr int kOffset = 8;  // q = u - 8 with u = the unsigned nibble
  static __m256i q(const Block& b) { return _mm256_sub_epi8(nibbles(b.qs), _mm256_set1_epi8(8)); }
  static __m256i u(const Block& b) { return nibbles(b.qs); }
  static float m(const Block&) { return 0.0f; }
};
struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr int kOffset = 0;  // q is used as is
  static constexpr bool kHasMin = true;
  static __m256i q(const Block& b) { return nibbles(b.qs); }
  static float m(const Block& b) { return half_to_float(b.m); }
};
struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 0;  // q is used as is
  static constexpr bool kHasMin = false;
  // q5 - 16: where the fifth bit is clear, nibble - 16 == nibble | 0xf0 as int8.
  static __m256i q(const Block& b) {
    const __m256i high = _mm256_andnot_si256(bit_bytes(b.qh), _mm256_set1_epi8(-16));
    return _mm256_or_si256(nibbles(b.qs), high);
  }
  static float m(const Block&) { return 0.0f; }
};
struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr int kOffset = 0;  // q is used as is
  static constexpr bool kHasMin = true;
  static __m256i q(const Block& b) {
    const __m256i high = _mm256_and_si256(bit_bytes(b.qh), _mm256_set1_epi8(16));
    return _mm256_or_si256(nibbles(b.qs), high);
  }
  static float m(const Block& b) { return half_to_float(b.m); }
};
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 0;  // q is used as is
  static constexpr bool kHasMin = false;
  static __m256i q(const Block& b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
  }
  static float m(const Block&) { return 0.0f; }
};

// Eight f32 vectors' worth of int8: element groups 0-7, 8-15, 16-23, 24-31 as floats.
inline void to_float(__m256i q, __m256 out[4]) {
  const __m128i lo = _mm256_castsi256_si128(q);
  const __m128i hi = _mm256_extracti128_si256(q, 1);
  out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
  out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
  out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
  out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

// sum over pairs of w*x as 8 i32 lanes; w signed int8 (|w| <= 127 or -128 with x != -128).
inline __m256i dot_i8_signed(__m256i w, __m256i x) {
  const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// Same with w unsigned (0..31).
inline __m256i dot_i8_unsigned(__m256i w, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

template <typename T>
void dequantize_impl(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const typename T::Block*>(src);
  __m256 v[4];
  for (int64_t b = 0; b < n / 32; ++b) {
    to_float(T::q(blocks[b]), v);
    const __m256 d = _mm256_set1_ps(half_to_float(blocks[b].d));
    const __m256 m = _mm256_set1_ps(T::m(blocks[b]));
    for (int k = 0; k < 4; ++k) _mm256_storeu_ps(dst + b * 32 + k * 8, _mm256_fmadd_ps(d, v[k], m));
  }
}

template <typename T>
inline void dot_f32_step(const typename T::Block& blk, const float* x, __m256& acc, __m256& acc_m) {
  __m256 v[4];
  to_float(T::q(blk), v);
  const __m256 x0 = _mm256_loadu_ps(x);
  const __m256 x1 = _mm256_loadu_ps(x + 8);
  const __m256 x2 = _mm256_loadu_ps(x + 16);
  const __m256 x3 = _mm256_loadu_ps(x + 24);
  __m256 p = _mm256_mul_ps(v[0], x0);
  p = _mm256_fmadd_ps(v[1], x1, p);
  p = _mm256_fmadd_ps(v[2], x2, p);
  p = _mm256_fmadd_ps(v[3], x3, p);
  acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(blk.d)), p, acc);
  if constexpr (T::kHasMin) {
    const __m256 sx = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(T::m(blk)), sx, acc_m);
  }
}

template <typename T>
float dot_f32_impl(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const typename T::Block*>(w);
  const int64_t nb = n / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 accm0 = _mm256_setzero_ps(), accm1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    dot_f32_step<T>(blocks[b], x + b * 32, acc0, accm0);
    dot_f32_step<T>(blocks[b + 1], x + b * 32 + 32, acc1, accm1);
  }
  if (b < nb) dot_f32_step<T>(blocks[b], x + b * 32, acc0, accm0);
  return hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(accm0, accm1)));
}

template <typename T>
inline void dot_q8_0_step(const typename T::Block& blk, const BlockQ8_0& xb, __m256& acc,
                          __m256& acc_m) {
  const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs));
  const float dx = half_to_float(xb.d);
  const __m256 scale = _mm256_set1_ps(half_to_float(blk.d) * dx);
  if constexpr (T::kHasMin) {
    const __m256i sum_qx = dot_i8_unsigned(T::q(blk), xq);
    acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sum_qx), acc);
    const __m256i sum_x = dot_i8_unsigned(_mm256_set1_epi8(1), xq);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(T::m(blk) * dx), _mm256_cvtepi32_ps(sum_x), acc_m);
  } else {
    const __m256i sum_qx = dot_i8_signed(T::q(blk), xq);
    acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sum_qx), acc);
  }
}

template <typename T>
float dot_q8_0_impl(const void* w, const void* xq, int64_t n) {
  const auto* blocks = static_cast<const typename T::Block*>(w);
  const auto* xb = static_cast<const BlockQ8_0*>(xq);
  const int64_t nb = n / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 accm0 = _mm256_setzero_ps(), accm1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    dot_q8_0_step<T>(blocks[b], xb[b], acc0, accm0);
    dot_q8_0_step<T>(blocks[b + 1], xb[b + 1], acc1, accm1);
  }
  if (b < nb) dot_q8_0_step<T>(blocks[b], xb[b], acc0, accm0);
  return hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(accm0, accm1)));
}

// The symmetric kernels below (Q4_0, Q5_0, Q8_0 weights; one or four activation rows) share these
// steps, so every output sees the same float operations in the same order whichever kernel computes
// it (they agree bit for bit):
// - per block an exact i32 vector of 8 partial sums (lane l: elements 4l..4l+3);
// - per group of four blocks the sums are folded with hadds into [s0 s1 s2 s3 | s0' s1' s2' s3']
//   (each block's sum split over the two halves), so one int->float conversion and one fma with
//   d_w * d_x serve four blocks; leftover blocks get one fma each, in the same accumulator.
// For Q4_0 the weights stay unsigned nibbles u and sum (u - 8) x = maddubs(u, x) - maddubs(8, x):
// two maddubs and a subtract instead of two signs, a subtract and a maddubs.

// An activation block prepared for pair_dot: the bytes and, for offset types, maddubs(offset, x).
struct XPrep {
  __m256i x;
  __m256i corr;
};

template <typename T>
inline XPrep prep_x(const BlockQ8_0& xb) {
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs));
  if constexpr (T::kOffset != 0) {
    return {x, _mm256_maddubs_epi16(_mm256_set1_epi8(T::kOffset), x)};
  } else {
    return {x, x};
  }
}

// A weight block prepared for pair_dot: unsigned u for offset types, else signed q.
template <typename T>
inline __m256i prep_w(const typename T::Block& b) {
  if constexpr (T::kOffset != 0) {
    return T::u(b);
  } else {
    return T::q(b);
  }
}

template <typename T>
inline __m256i pair_dot(__m256i w, const XPrep& x) {
  if constexpr (T::kOffset != 0) {
    const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(w, x.x), x.corr);
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
  } else {
    return dot_i8_signed(w, x.x);
  }
}

inline __m256 fold4_fma(__m256i p0, __m256i p1, __m256i p2, __m256i p3, __m128 dw, __m128 dx,
                        __m256 acc) {
  const __m256i sums = x86::fold4(p0, p1, p2, p3);
  const __m128 d = _mm_mul_ps(dw, dx);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set_m128(d, d), acc);
}

inline __m256 tail_fma(__m256i p, float dw, float dx, __m256 acc) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * dx), acc);
}

// One weight row against N activation rows (xq + k * x_stride bytes): out[k]. Groups of four
// weight blocks are unpacked once for every activation row.
template <typename T, int N>
void dot_q8_0_sym(const void* w, const void* xq, int64_t x_stride, int64_t n, float* out) {
  const auto* blocks = static_cast<const typename T::Block*>(w);
  const BlockQ8_0* x[N];
  for (int k = 0; k < N; ++k) {
    x[k] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(xq) + k * x_stride);
  }
  const int64_t nb = n / 32;
  __m256 acc[N];
  for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 3 < nb; b += 4) {
    const __m256i q0 = prep_w<T>(blocks[b]), q1 = prep_w<T>(blocks[b + 1]);
    const __m256i q2 = prep_w<T>(blocks[b + 2]), q3 = prep_w<T>(blocks[b + 3]);
    const __m128 dw = scales4(blocks + b);
    for (int k = 0; k < N; ++k) {
      const BlockQ8_0* xk = x[k] + b;
      const __m256i p0 = pair_dot<T>(q0, prep_x<T>(xk[0]));
      const __m256i p1 = pair_dot<T>(q1, prep_x<T>(xk[1]));
      const __m256i p2 = pair_dot<T>(q2, prep_x<T>(xk[2]));
      const __m256i p3 = pair_dot<T>(q3, prep_x<T>(xk[3]));
      acc[k] = fold4_fma(p0, p1, p2, p3, dw, scales4(xk), acc[k]);
    }
  }
  for (; b < nb; ++b) {
    const __m256i q = prep_w<T>(blocks[b]);
    const float dw = half_to_float(blocks[b].d);
    for (int k = 0; k < N; ++k) {
      acc[k] = tail_fma(pair_dot<T>(q, prep_x<T>(x[k][b])), dw, half_to_float(x[k][b].d), acc[k]);
    }
  }
  for (int k = 0; k < N; ++k) out[k] = hsum(acc[k]);
}

template <typename T>
float dot_q8_0_sym_1(const void* w, const void* xq, int64_t n) {
  float out;
  dot_q8_0_sym<T, 1>(w, xq, 0, n, &out);
  return out;
}

// Eight weights at w[i..i+8) as floats, for the float element types.
struct F32Loader {
  static __m256 load(const void* w, int64_t i) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  }
  static float one(const void* w, int64_t i) { return static_cast<const float*>(w)[i]; }
};
struct F16Loader {
  static __m256 load(const void* w, int64_t i) {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
  }
  static float one(const void* w, int64_t i) {
    return half_to_float(static_cast<const uint16_t*>(w)[i]);
  }
};
struct Bf16Loader {
  static __m256 load(const void* w, int64_t i) {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float one(const void* w, int64_t i) {
    uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
};

template <typename L>
float dot_float_impl(const void* w, const float* x, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(L::load(w, i), _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(L::load(w, i + 8), _mm256_loadu_ps(x + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(L::load(w, i + 16), _mm256_loadu_ps(x + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(L::load(w, i + 24), _mm256_loadu_ps(x + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(L::load(w, i), _mm256_loadu_ps(x + i), acc0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += L::one(w, i) * x[i];
  return sum;
}

template <typename L>
void dequantize_float_impl(const void* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, L::load(src, i));
  for (; i < n; ++i) dst[i] = L::one(src, i);
}

}  // namespace

void dequantize_f16(const void* src, float* dst, int64_t n) {
  dequantize_float_impl<F16Loader>(src, dst, n);
}
void dequantize_bf16(const void* src, float* dst, int64_t n) {
  dequantize_float_impl<Bf16Loader>(src, dst, n);
}
void dequantize_q4_0(const void* src, float* dst, int64_t n) {
  dequantize_impl<Q4_0>(src, dst, n);
}
void dequantize_q4_1(const void* src, float* dst, int64_t n) {
  dequantize_impl<Q4_1>(src, dst, n);
}
void dequantize_q5_0(const void* src, float* dst, int64_t n) {
  dequantize_impl<Q5_0>(src, dst, n);
}
void dequantize_q5_1(const void* src, float* dst, int64_t n) {
  dequantize_impl<Q5_1>(src, dst, n);
}
void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  dequantize_impl<Q8_0>(src, dst, n);
}

float dot_f32_f32(const void* w, const float* x, int64_t n) {
  return dot_float_impl<F32Loader>(w, x, n);
}
float dot_f32_f16(const void* w, const float* x, int64_t n) {
  return dot_float_impl<F16Loader>(w, x, n);
}
float dot_f32_bf16(const void* w, const float* x, int64_t n) {
  return dot_float_impl<Bf16Loader>(w, x, n);
}
float dot_f32_q4_0(const void* w, const float* x, int64_t n) {
  return dot_f32_impl<Q4_0>(w, x, n);
}
float dot_f32_q4_1(const void* w, const float* x, int64_t n) {
  return dot_f32_impl<Q4_1>(w, x, n);
}
float dot_f32_q5_0(const void* w, const float* x, int64_t n) {
  return dot_f32_impl<Q5_0>(w, x, n);
}
float dot_f32_q5_1(const void* w, const float* x, int64_t n) {
  return dot_f32_impl<Q5_1>(w, x, n);
}
float dot_f32_q8_0(const void* w, const float* x, int64_t n) {
  return dot_f32_impl<Q8_0>(w, x, n);
}

float dot_q8_0_q4_0(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_sym_1<Q4_0>(w, xq, n);
}
void dot_q8_0_q4_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_q8_0_sym<Q4_0, 2>(w, xq, xq_stride, n, out);
}
void dot_q8_0_q4_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_q8_0_sym<Q4_0, 4>(w, xq, xq_stride, n, out);
}
float dot_q8_0_q4_1(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_impl<Q4_1>(w, xq, n);
}
float dot_q8_0_q5_0(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_sym_1<Q5_0>(w, xq, n);
}
float dot_q8_0_q5_1(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_impl<Q5_1>(w, xq, n);
}
float dot_q8_0_q8_0(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_sym_1<Q8_0>(w, xq, n);
}
void dot_q8_0_q8_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_q8_0_sym<Q8_0, 2>(w, xq, xq_stride, n, out);
}
void dot_q8_0_q8_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_q8_0_sym<Q8_0, 4>(w, xq, xq_stride, n, out);
}

// One fma per element (F16C conversion for f16 rows); differs from a multiply-then-add loop only
// by the rounding of the product.
template <typename L>
void accumulate_float_impl(const void* row, float a, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 y0 = _mm256_fmadd_ps(va, L::load(row, i), _mm256_loadu_ps(y + i));
    const __m256 y1 = _mm256_fmadd_ps(va, L::load(row, i + 8), _mm256_loadu_ps(y + i + 8));
    _mm256_storeu_ps(y + i, y0);
    _mm256_storeu_ps(y + i + 8, y1);
  }
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, L::load(row, i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] = std::fma(a, L::one(row, i), y[i]);
}

void accumulate_f32(const void* row, float a, float* y, int64_t n) {
  accumulate_float_impl<F32Loader>(row, a, y, n);
}
void accumulate_f16(const void* row, float a, float* y, int64_t n) {
  accumulate_float_impl<F16Loader>(row, a, y, n);
}

// Bit-identical to scalar::quantize_q8_0: same amax, d, 1/d and product; rounding half away from
// zero like std::round (trunc, then step away when the dropped fraction is >= 0.5).
void quantize_q8_0(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8_0*>(dst);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + k * 8);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, v[k]));
    }
    const float d = hmax(amax) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 s = _mm256_mul_ps(v[k], _mm256_set1_ps(id));
      const __m256 t = _mm256_round_ps(s, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 frac = _mm256_andnot_ps(sign_mask, _mm256_sub_ps(s, t));
      const __m256 step = _mm256_or_ps(_mm256_and_ps(s, sign_mask), one);
      const __m256 r = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), step));
      q[k] = _mm256_cvtps_epi32(r);
    }
    const __m256i q16 =
        _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(blocks[b].qs),
                        _mm256_permutevar8x32_epi32(q16, order));
  }
}

}  // namespace momentkv::kernels::avx2
