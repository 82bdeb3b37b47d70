// AVX-VNNI kernels for the symmetric 32-element block types (Q4_0, Q5_0, Q8_0 weights against
// Q8_0 activations), compiled with -mavx2 -mfma -mf16c -mavxvnni and only called after
// best_isa() saw AVX-VNNI at run time.
//
// vpdpbusd multiplies unsigned bytes by signed bytes and adds each group of four products into
// an i32 lane in one instruction (AVX2 needs maddubs + madd, and a sign trick or a correction
// for signed weights). Each weight block is therefore used in its unsigned form u = q + offset
// (Q4_0: the nibble, offset 8; Q5_0: the five-bit value, offset 16; Q8_0: q ^ 0x80, offset 128)
// and the exact block sum is dpbusd(u, x) - offset * sum(x). The activation side of that
// correction, and the activation scales as floats, depend only on the activation row, so
// quantize_q8_0 here computes them once per row and stores them after the Q8_0 blocks (the
// "trailer", act_row_bytes): per whole group of four blocks 64 bytes,
//   bytes  0..31: i32 x 8, lane j < 4 = 8 x the sum of block 4g+j's elements 0..15, lane 4 + j
//                 = 8 x the sum of 16..31 (the fold4 layout, see avx2/simd.h; 8 = Q4_0's offset,
//                 the most used weight type, so its correction needs no shift);
//   bytes 32..63: f32 x 8, the four blocks' scales twice [d0 d1 d2 d3 d0 d1 d2 d3].
// A dot product then costs one dpbusd per block and activation row, plus per group of four
// blocks a fold, a shift and subtract, a conversion and one fma. One and four activation rows go
// through the same template, so dot_act_4 equals dot_act bit for bit; the Q8_0 blocks themselves
// are those of avx2::quantize_q8_0 (bit-identical to the scalar quantizer).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx2/simd.h"
#include "kernels/cpu/quants.h"

namespace momentkv::kernels::avxvnni {

namespace {

using x86::bit_bytes;
using x86::fold4;
using x86::half_to_float;
using x86::hsum;
using x86::nibbles;
using x86::scales4;

constexpr int64_t kBlockBytes = sizeof(BlockQ8_0);
constexpr int64_t kGroupTrailerBytes = 64;
constexpr int kTrailerShift = 3;  // the trailer's sums are stored times 2^3

// Unsigned forms of the weight blocks: u(b) = q + 2^kShift, all bytes 0..255.
struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr int kShift = 3;  // offset 8
  static __m256i u(const Block& b) { return nibbles(b.qs); }
};
struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr int kShift = 4;  // offset 16
  static __m256i u(const Block& b) {
    return _mm256_or_si256(nibbles(b.qs), _mm256_and_si256(bit_bytes(b.qh), _mm256_set1_epi8(16)));
  }
};
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr int kShift = 7;  // offset 128: q ^ 0x80 read as unsigned is q + 128
  static __m256i u(const Block& b) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
  }
};

inline __m256i dpbusd(__m256i u, const uint8_t* x) {
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u,
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
}

// One weight row against N activation rows (xq + k * x_stride bytes, each with its trailer).
template <typename T, int N>
void dot_sym(const void* w, const void* xq, int64_t x_stride, int64_t n, float* out) {
  const auto* blocks = static_cast<const typename T::Block*>(w);
  const int64_t nb = n / 32;
  const uint8_t* x[N];  // the first block's qs of each activation row
  const uint8_t* trailer[N];
  for (int k = 0; k < N; ++k) {
    const auto* row = static_cast<const uint8_t*>(xq) + k * x_stride;
    x[k] = row + offsetof(BlockQ8_0, qs);
    trailer[k] = row + nb * kBlockBytes;
  }
  __m256 acc[N];
  for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 3 < nb; b += 4) {
    const __m256i u0 = T::u(blocks[b]), u1 = T::u(blocks[b + 1]);
    const __m256i u2 = T::u(blocks[b + 2]), u3 = T::u(blocks[b + 3]);
    const __m128 dw4 = scales4(blocks + b);
    const __m256 dw = _mm256_set_m128(dw4, dw4);
    for (int k = 0; k < N; ++k) {
      const uint8_t* xk = x[k] + b * kBlockBytes;
      const uint8_t* t = trailer[k] + (b / 4) * kGroupTrailerBytes;
      const __m256i sums =
          fold4(dpbusd(u0, xk), dpbusd(u1, xk + kBlockBytes), dpbusd(u2, xk + 2 * kBlockBytes),
                dpbusd(u3, xk + 3 * kBlockBytes));
      __m256i corr = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t));  // 8 x sums
      if constexpr (T::kShift > kTrailerShift) {
        corr = _mm256_slli_epi32(corr, T::kShift - kTrailerShift);
      }
      const __m256i exact = _mm256_sub_epi32(sums, corr);
      const __m256 d = _mm256_mul_ps(dw, _mm256_loadu_ps(reinterpret_cast<const float*>(t + 32)));
      acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), d, acc[k]);
    }
  }
  // Blocks after the last whole group (none for the usual widths): the correction inline.
  const __m256i offset = _mm256_set1_epi8(static_cast<char>(1 << T::kShift));
  for (; b < nb; ++b) {
    const __m256i u = T::u(blocks[b]);
    const float dw = half_to_float(blocks[b].d);
    for (int k = 0; k < N; ++k) {
      const uint8_t* xk = x[k] + b * kBlockBytes;
      const __m256i exact = _mm256_sub_epi32(dpbusd(u, xk), dpbusd(offset, xk));
      uint16_t dx_bits;
      std::memcpy(&dx_bits, xk - offsetof(BlockQ8_0, qs), sizeof dx_bits);
      const float dx = half_to_float(dx_bits);
      acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), _mm256_set1_ps(dw * dx), acc[k]);
    }
  }
  for (int k = 0; k < N; ++k) out[k] = hsum(acc[k]);
}

}  // namespace

uint64_t act_row_bytes_q8_0(int64_t n) {
  const int64_t nb = n / 32;
  return static_cast<uint64_t>(nb * kBlockBytes + (nb / 4) * kGroupTrailerBytes);
}

void quantize_q8_0(const float* src, void* dst, int64_t n) {
  avx2::quantize_q8_0(src, dst, n);
  const int64_t nb = n / 32;
  const auto* blocks = static_cast<const BlockQ8_0*>(dst);
  uint8_t* trailer = static_cast<uint8_t*>(dst) + nb * kBlockBytes;
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t g = 0; g < nb / 4; ++g) {
    const BlockQ8_0* blk = blocks + 4 * g;
    const auto* qs = reinterpret_cast<const uint8_t*>(blk->qs);
    const __m256i sx =
        fold4(dpbusd(ones, qs), dpbusd(ones, qs + kBlockBytes), dpbusd(ones, qs + 2 * kBlockBytes),
              dpbusd(ones, qs + 3 * kBlockBytes));
    const __m128 d = scales4(blk);
    uint8_t* t = trailer + g * kGroupTrailerBytes;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), _mm256_slli_epi32(sx, kTrailerShift));
    _mm256_storeu_ps(reinterpret_cast<float*>(t + 32), _mm256_set_m128(d, d));
  }
}

float dot_q8_0_q4_0(const void* w, const void* xq, int64_t n) {
  float out;
  dot_sym<Q4_0, 1>(w, xq, 0, n, &out);
  return out;
}
void dot_q8_0_q4_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_sym<Q4_0, 2>(w, xq, xq_stride, n, out);
}
void dot_q8_0_q4_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_sym<Q4_0, 4>(w, xq, xq_stride, n, out);
}
float dot_q8_0_q5_0(const void* w, const void* xq, int64_t n) {
  float out;
  dot_sym<Q5_0, 1>(w, xq, 0, n, &out);
  return out;
}
void dot_q8_0_q5_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_sym<Q5_0, 2>(w, xq, xq_stride, n, out);
}
void dot_q8_0_q5_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_sym<Q5_0, 4>(w, xq, xq_stride, n, out);
}
float dot_q8_0_q8_0(const void* w, const void* xq, int64_t n) {
  float out;
  dot_sym<Q8_0, 1>(w, xq, 0, n, &out);
  return out;
}
void dot_q8_0_q8_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_sym<Q8_0, 2>(w, xq, xq_stride, n, out);
}
void dot_q8_0_q8_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_sym<Q8_0, 4>(w, xq, xq_stride, n, out);
}

}  // namespace momentkv::kernels::avxvnni
