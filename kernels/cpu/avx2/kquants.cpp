// K-quant kernels, AVX2/FMA path (no AVX-512). Same results as kernels/cpu/scalar/kquants.cpp up
// to float summation order: the integer dot products are exact (maddubs pairs never saturate:
// |q·qx| ≤ 63·127·2 = 16002 < 32767), and quantize_q8_k is bit-identical (same multiply, same
// round-half-even).
//
// Layouts (../shared/docs/FORMATS.md), 256 elements per super-block:
//   Q4_K: f16 d, f16 dmin, u8 scales[12], u8 qs[128]; qs[32c + l] holds elements 64c + l (low
//         nibble) and 64c + 32 + l (high nibble), so one 32-byte load covers a 64-element chunk.
//   Q5_K: as Q4_K plus qh[32]: bit 2c / 2c + 1 of qh[l] is the fifth bit of those two elements.
//   Q6_K: per half h, ql[64h + l] / ql[64h + 32 + l] (l < 32) low nibbles hold elements l / l + 32,
//         high nibbles l + 64 / l + 96; qh[32h + l] bits 0-1, 2-3, 4-5, 6-7 are their top bits.
//   Q8_K: f32 d, i8 qs[256], i16 bsums[16].
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/tensor/fp16.h"
#include "kernels/cpu/avx2/kquant_dots.h"
#include "kernels/cpu/avx2/simd.h"
#include "kernels/cpu/kquant_blocks.h"
#include "kernels/cpu/kquants.h"

namespace momentkv::kernels::avx2 {
namespace {

constexpr int kQk = kQkBlock;

using x86::hsum;
using x86::loadu;
using x86::mins_for_bsums;
using x86::unpack_q6_half;

// Products of 16-bit pairs added into i32 sums without VNNI: madd, then add (kquant_dots.h).
struct MaddAdd {
  static __m256i add(__m256i sum, __m256i pairs, __m256i scales) {
    return _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, scales));
  }
};

inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Eight consecutive bytes of `v` starting at byte 8·t (t = 0..3), widened to f32.
inline __m256 bytes_u8_to_ps(__m256i v, int t) {
  __m128i half = t < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
  if (t % 2 == 1) half = _mm_srli_si128(half, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(half));
}

inline __m256 bytes_i8_to_ps(__m256i v, int t) {
  __m128i half = t < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
  if (t % 2 == 1) half = _mm_srli_si128(half, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(half));
}

// acc[t] += (a·q − c)·x over 32 elements, q given as 32 unsigned bytes. Four accumulators keep
// four FMA chains in flight (one chain would be bound by FMA latency, not bandwidth).
inline void fma_affine_32(__m256i q, float a, float c, const float* x, __m256 acc[4]) {
  const __m256 va = _mm256_set1_ps(a);
  const __m256 vc = _mm256_set1_ps(c);
  for (int t = 0; t < 4; ++t) {
    const __m256 w = _mm256_fmsub_ps(bytes_u8_to_ps(q, t), va, vc);
    acc[t] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8 * t), acc[t]);
  }
}

inline float hsum4(const __m256 acc[4]) {
  return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

}  // namespace

// ---- dequantize ----

void dequantize_q4_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ4K*>(src);
  const __m256i mask4 = _mm256_set1_epi8(0x0f);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ4K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    const ScalesMins sm = unpack_scales_mins(b.scales);
    float* y = dst + ib * kQk;
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu(b.qs + 32 * c);
      const __m256i qn[2] = {_mm256_and_si256(q, mask4),
                             _mm256_and_si256(_mm256_srli_epi16(q, 4), mask4)};
      for (int s = 0; s < 2; ++s) {
        const int j = 2 * c + s;
        const __m256 va = _mm256_set1_ps(d * sm.sc[j]);
        const __m256 vc = _mm256_set1_ps(dmin * sm.m[j]);
        for (int t = 0; t < 4; ++t) {
          _mm256_storeu_ps(y + 32 * j + 8 * t, _mm256_fmsub_ps(bytes_u8_to_ps(qn[s], t), va, vc));
        }
      }
    }
  }
}

void dequantize_q5_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ5K*>(src);
  const __m256i mask4 = _mm256_set1_epi8(0x0f);
  const __m256i bit0 = _mm256_set1_epi8(0x01);
  const __m256i bit1 = _mm256_set1_epi8(0x02);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ5K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    const ScalesMins sm = unpack_scales_mins(b.scales);
    float* y = dst + ib * kQk;
    __m256i qh = loadu(b.qh);  // shifted right by 2 per chunk: bits 0/1 are the fifth bits
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu(b.qs + 32 * c);
      const __m256i qn[2] = {_mm256_or_si256(_mm256_and_si256(q, mask4),
                                             _mm256_slli_epi16(_mm256_and_si256(qh, bit0), 4)),
                             _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask4),
                                             _mm256_slli_epi16(_mm256_and_si256(qh, bit1), 3))};
      qh = _mm256_srli_epi16(qh, 2);
      for (int s = 0; s < 2; ++s) {
        const int j = 2 * c + s;
        const __m256 va = _mm256_set1_ps(d * sm.sc[j]);
        const __m256 vc = _mm256_set1_ps(dmin * sm.m[j]);
        for (int t = 0; t < 4; ++t) {
          _mm256_storeu_ps(y + 32 * j + 8 * t, _mm256_fmsub_ps(bytes_u8_to_ps(qn[s], t), va, vc));
        }
      }
    }
  }
}

void dequantize_q6_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6K*>(src);
  const __m256i offset = _mm256_set1_epi8(32);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ6K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    float* y = dst + ib * kQk;
    for (int h = 0; h < 2; ++h) {
      __m256i q[4];
      unpack_q6_half(b, h, q);
      for (int k = 0; k < 4; ++k) {
        const __m256i qs = _mm256_sub_epi8(q[k], offset);  // −32..31
        float* yk = y + 128 * h + 32 * k;
        for (int t = 0; t < 4; ++t) {
          const __m256 a = _mm256_set1_ps(d * static_cast<float>(b.scales[8 * h + 2 * k + t / 2]));
          _mm256_storeu_ps(yk + 8 * t, _mm256_mul_ps(bytes_i8_to_ps(qs, t), a));
        }
      }
    }
  }
}

// ---- dot with f32 activations ----

float dot_f32_q4_k(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const BlockQ4K*>(w);
  const __m256i mask4 = _mm256_set1_epi8(0x0f);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ4K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    const ScalesMins sm = unpack_scales_mins(b.scales);
    const float* xb = x + ib * kQk;
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu(b.qs + 32 * c);
      const int j = 2 * c;
      fma_affine_32(_mm256_and_si256(q, mask4), d * sm.sc[j], dmin * sm.m[j], xb + 32 * j, acc);
      fma_affine_32(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask4), d * sm.sc[j + 1],
                    dmin * sm.m[j + 1], xb + 32 * j + 32, acc);
    }
  }
  return hsum4(acc);
}

float dot_f32_q5_k(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const BlockQ5K*>(w);
  const __m256i mask4 = _mm256_set1_epi8(0x0f);
  const __m256i bit0 = _mm256_set1_epi8(0x01);
  const __m256i bit1 = _mm256_set1_epi8(0x02);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ5K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    const ScalesMins sm = unpack_scales_mins(b.scales);
    const float* xb = x + ib * kQk;
    __m256i qh = loadu(b.qh);  // shifted right by 2 per chunk: bits 0/1 are the fifth bits
    for (int c = 0; c < 4; ++c) {
      const __m256i q = loadu(b.qs + 32 * c);
      const __m256i q_lo = _mm256_or_si256(_mm256_and_si256(q, mask4),
                                           _mm256_slli_epi16(_mm256_and_si256(qh, bit0), 4));
      const __m256i q_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask4),
                                           _mm256_slli_epi16(_mm256_and_si256(qh, bit1), 3));
      qh = _mm256_srli_epi16(qh, 2);
      const int j = 2 * c;
      fma_affine_32(q_lo, d * sm.sc[j], dmin * sm.m[j], xb + 32 * j, acc);
      fma_affine_32(q_hi, d * sm.sc[j + 1], dmin * sm.m[j + 1], xb + 32 * j + 32, acc);
    }
  }
  return hsum4(acc);
}

float dot_f32_q6_k(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6K*>(w);
  const __m256i offset = _mm256_set1_epi8(32);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const BlockQ6K& b = blocks[ib];
    const float d = fp16_to_fp32(b.d);
    const float* xb = x + ib * kQk;
    for (int h = 0; h < 2; ++h) {
      __m256i q[4];
      unpack_q6_half(b, h, q);
      for (int k = 0; k < 4; ++k) {
        const __m256i qs = _mm256_sub_epi8(q[k], offset);
        const float* xk = xb + 128 * h + 32 * k;
        for (int g = 0; g < 2; ++g) {  // two groups of 16 share one scale each
          const __m256 a = _mm256_set1_ps(d * static_cast<float>(b.scales[8 * h + 2 * k + g]));
          __m256 t = _mm256_mul_ps(bytes_i8_to_ps(qs, 2 * g), _mm256_loadu_ps(xk + 16 * g));
          t = _mm256_fmadd_ps(bytes_i8_to_ps(qs, 2 * g + 1), _mm256_loadu_ps(xk + 16 * g + 8), t);
          acc[k] = _mm256_fmadd_ps(a, t, acc[k]);
        }
      }
    }
  }
  return hsum4(acc);
}

// ---- Q8_K activations and integer dots ----

void quantize_q8_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8K*>(dst);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // packs interleaves the 128-bit lanes; this puts the 32 bytes back in element order.
  const __m256i unshuffle = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t ib = 0; ib < n / kQk; ++ib) {
    const float* x = src + ib * kQk;
    BlockQ8K& b = blocks[ib];
    __m256 vmax = _mm256_setzero_ps();
    for (int i = 0; i < kQk; i += 8) {
      vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    b.d = amax / 127.0f;
    const __m256 vid = _mm256_set1_ps(id);
    for (int i = 0; i < kQk; i += 32) {
      __m256i v[4];
      for (int t = 0; t < 4; ++t) {
        const __m256 s = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * t), vid);
        v[t] =
            _mm256_cvtps_epi32(_mm256_round_ps(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
      b.bsums[i / 16] = static_cast<int16_t>(hsum(_mm256_add_epi32(v[0], v[1])));
      b.bsums[i / 16 + 1] = static_cast<int16_t>(hsum(_mm256_add_epi32(v[2], v[3])));
      const __m256i p16 =
          _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qs + i),
                          _mm256_permutevar8x32_epi32(p16, unshuffle));
    }
  }
}

MOMENTKV_KQUANT_DOTS(MaddAdd)

}  // namespace momentkv::kernels::avx2
