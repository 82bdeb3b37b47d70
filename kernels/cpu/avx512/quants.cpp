// AVX-512 VNNI kernels for the symmetric 32-element block types (Q4_0, Q5_0, Q8_0 weights against
// Q8_0 activations), compiled with AVX-512 F/VL/BW/DQ and VNNI and only called after best_isa()
// saw them at run time.
//
// One 512-bit vpdpbusd covers two blocks. As in avxvnni/quants.cpp each weight block is used in
// its unsigned form u = q + offset (Q4_0: the nibble, offset 8; Q5_0: the five-bit value, 16;
// Q8_0: q ^ 0x80, 128) and the exact sum is dpbusd(u, x) - offset * sum(x). Blocks go four at a
// time (a quad): two dpbusd give 32 i32 lanes (eight per block), one fold (shifts, adds and a
// blend) halves them to sixteen (four per block, each the sum of eight products), and then one
// correction add, one conversion, one multiply and one fma per activation row scale and add the
// quad into sixteen f32 lanes. The activation side is laid out once per row by quantize_q8_0
// here, after the Q8_0 blocks (which equal the scalar quantizer's), per quad (256 bytes, "the
// trailer"):
//   bytes   0..127: the four blocks' 128 quants, contiguous;
//   bytes 128..191: i32 x 16, lane quad_lane(j, l) = -8 x the sum of block j's quants 8l..8l+7
//                   (8 = Q4_0's offset; the other types shift it);
//   bytes 192..255: f32 x 16, block j's scale in the same lanes.
// The last quad of a row whose block count is not a multiple of four is padded with zeros
// (quants, corrections and scales), and its missing weight blocks read as zeros. One, two and
// four activation rows go through one template: dot_act_4 equals dot_act bit for bit (the float
// order differs from the AVX2 and AVX-VNNI kernels', within the dot tolerance of the scalar
// reference).
//
// Compiled for AVX-512 and run only where the CPU has it: nothing here has external linkage that
// another file might also define (no standard-library templates). avx512/intrinsics.h comes
// first: the AVX2 helpers include <immintrin.h> too.
#include "kernels/cpu/avx512/intrinsics.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx2/simd.h"
#include "kernels/cpu/quants.h"

namespace momentkv::kernels::avx512 {

namespace {

using x86::half_to_float;
using x86::nibbles;
using x86::scales4;

constexpr int64_t kBlockBytes = sizeof(BlockQ8_0);
constexpr int64_t kQuadBytes = 256;
constexpr int kTrailerShift = 3;  // the trailer's corrections are -2^3 x the sums

int64_t n_quads(int64_t nb) {
  return (nb + 3) / 4;
}

// Two 16-byte nibble arrays as 64 bytes: block 0's low nibbles, its high nibbles, then block 1's.
__m512i nibbles2(const uint8_t* qs0, const uint8_t* qs1) {
  const __m256i a =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0)));
  const __m256i b =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1)));
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
  const __m512i shifted = _mm512_srlv_epi64(both, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
  return _mm512_and_si512(shifted, _mm512_set1_epi8(15));
}

// Unsigned forms of a pair of weight blocks (pair), or of one block and zeros (one).
struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr int kShift = 3;  // offset 8
  static __m512i pair(const Block* b) { return nibbles2(b[0].qs, b[1].qs); }
  static __m512i one(const Block& b) { return _mm512_zextsi256_si512(nibbles(b.qs)); }
};
struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr int kShift = 4;  // offset 16
  static uint64_t high_bits(const Block& b) {
    uint32_t bits;
    std::memcpy(&bits, b.qh, sizeof bits);
    return bits;
  }
  static __m512i pair(const Block* b) {
    const __mmask64 high = high_bits(b[0]) | (high_bits(b[1]) << 32);
    return _mm512_or_si512(nibbles2(b[0].qs, b[1].qs),
                           _mm512_maskz_mov_epi8(high, _mm512_set1_epi8(16)));
  }
  static __m512i one(const Block& b) {
    const __mmask64 high = high_bits(b);
    const __m512i lo = _mm512_zextsi256_si512(nibbles(b.qs));
    return _mm512_or_si512(lo, _mm512_maskz_mov_epi8(high, _mm512_set1_epi8(16)));
  }
};
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr int kShift = 7;  // offset 128: q ^ 0x80 read as unsigned is q + 128
  static __m512i pair(const Block* b) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs));
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), c, 1),
                            _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  static __m512i one(const Block& b) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    return _mm512_zextsi256_si512(_mm256_xor_si256(a, _mm256_set1_epi8(static_cast<char>(0x80))));
  }
};

// x's lanes 2i and 2i + 1 added into lane 2i, y's into lane 2i + 1 (shifts, adds and a blend: no
// cross-lane permute). With x = the dpbusd of blocks 0 and 1 and y that of blocks 2 and 3, block
// j's eight-quant group p lands in lane quad_lane(j, p).
__m512i fold(__m512i x, __m512i y) {
  const __m512i even = _mm512_add_epi32(x, _mm512_srli_epi64(x, 32));
  const __m512i odd = _mm512_add_epi32(y, _mm512_slli_epi64(y, 32));
  return _mm512_mask_blend_epi32(0xaaaa, even, odd);
}
constexpr int quad_lane(int64_t j, int p) {
  return static_cast<int>(2 * (p + 4 * (j % 2)) + j / 2);
}

// The four blocks' f32 scales in the lanes of their quants: [v0 v2 v0 v2 ... v1 v3 v1 v3 ...].
__m512 spread4(__m128 v) {
  const __m512i idx = _mm512_setr_epi32(0, 2, 0, 2, 0, 2, 0, 2, 1, 3, 1, 3, 1, 3, 1, 3);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}

// Four f16 scales (zeros past `count`) as f32.
template <typename Block>
__m128 scales(const Block* b, int count) {
  uint16_t d[4] = {0, 0, 0, 0};
  for (int j = 0; j < count; ++j) d[j] = b[j].d;
  uint64_t bits;
  std::memcpy(&bits, d, sizeof bits);
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(bits)));
}

// One weight row against N activation rows (xq + k * x_stride bytes, each with its trailer).
template <typename T, int N>
void dot_quads(const void* w, const void* xq, int64_t x_stride, int64_t n, float* out) {
  const auto* blocks = static_cast<const typename T::Block*>(w);
  const int64_t nb = n / 32;
  const uint8_t* trailer[N];
  for (int k = 0; k < N; ++k) {
    trailer[k] = static_cast<const uint8_t*>(xq) + k * x_stride + nb * kBlockBytes;
  }
  __m512 acc[N];
  for (int k = 0; k < N; ++k) acc[k] = _mm512_setzero_ps();
  auto add_quad = [&](int64_t q, __m512i u01, __m512i u23, __m512 dw) {
    for (int k = 0; k < N; ++k) {
      const uint8_t* t = trailer[k] + q * kQuadBytes;
      const __m512i zero = _mm512_setzero_si512();
      const __m512i sums = fold(_mm512_dpbusd_epi32(zero, u01, _mm512_loadu_si512(t)),
                                _mm512_dpbusd_epi32(zero, u23, _mm512_loadu_si512(t + 64)));
      __m512i corr = _mm512_loadu_si512(t + 128);
      if constexpr (T::kShift > kTrailerShift) {
        corr = _mm512_slli_epi32(corr, T::kShift - kTrailerShift);
      }
      const __m512 d = _mm512_mul_ps(dw, _mm512_loadu_ps(t + 192));
      acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(sums, corr)), d, acc[k]);
    }
  };
  int64_t q = 0;
  for (; 4 * q + 3 < nb; ++q) {
    const auto* b = blocks + 4 * q;
    add_quad(q, T::pair(b), T::pair(b + 2), spread4(scales4(b)));
  }
  if (const int rest = static_cast<int>(nb - 4 * q); rest > 0) {
    const auto* b = blocks + 4 * q;
    const __m512i u01 = rest >= 2 ? T::pair(b) : T::one(b[0]);
    const __m512i u23 = rest == 3 ? T::one(b[2]) : _mm512_setzero_si512();
    add_quad(q, u01, u23, spread4(scales(b, rest)));
  }
  for (int k = 0; k < N; ++k) out[k] = _mm512_reduce_add_ps(acc[k]);
}

}  // namespace

uint64_t act_row_bytes_q8_0(int64_t n) {
  const int64_t nb = n / 32;
  return static_cast<uint64_t>(nb * kBlockBytes + n_quads(nb) * kQuadBytes);
}

void quantize_q8_0(const float* src, void* dst, int64_t n) {
  avx2::quantize_q8_0(src, dst, n);
  const int64_t nb = n / 32;
  const auto* blocks = static_cast<const BlockQ8_0*>(dst);
  uint8_t* trailer = static_cast<uint8_t*>(dst) + nb * kBlockBytes;
  if (nb % 4 != 0) std::memset(trailer + (n_quads(nb) - 1) * kQuadBytes, 0, kQuadBytes);
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* t = trailer + (b / 4) * kQuadBytes;
    const int64_t j = b % 4;
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[b].qs));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + 32 * j), x);
    // Sums of four quants per lane, then of eight (lanes 2l and 2l + 1: the fold's pairs).
    const __m256i sums4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, x);
    int32_t four[8];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(four), sums4);
    // The trailer follows 34-byte blocks, so it is not 4-byte aligned: values go in by memcpy.
    const float d = half_to_float(blocks[b].d);
    for (int p = 0; p < 4; ++p) {
      const int32_t corr = -8 * (four[2 * p] + four[2 * p + 1]);
      const auto lane = static_cast<size_t>(quad_lane(j, p));
      std::memcpy(t + 128 + 4 * lane, &corr, sizeof corr);
      std::memcpy(t + 192 + 4 * lane, &d, sizeof d);
    }
  }
}

float dot_q8_0_q4_0(const void* w, const void* xq, int64_t n) {
  float out;
  dot_quads<Q4_0, 1>(w, xq, 0, n, &out);
  return out;
}
void dot_q8_0_q4_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_quads<Q4_0, 2>(w, xq, xq_stride, n, out);
}
void dot_q8_0_q4_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_quads<Q4_0, 4>(w, xq, xq_stride, n, out);
}
float dot_q8_0_q5_0(const void* w, const void* xq, int64_t n) {
  float out;
  dot_quads<Q5_0, 1>(w, xq, 0, n, &out);
  return out;
}
void dot_q8_0_q5_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_quads<Q5_0, 2>(w, xq, xq_stride, n, out);
}
void dot_q8_0_q5_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_quads<Q5_0, 4>(w, xq, xq_stride, n, out);
}
float dot_q8_0_q8_0(const void* w, const void* xq, int64_t n) {
  float out;
  dot_quads<Q8_0, 1>(w, xq, 0, n, &out);
  return out;
}
void dot_q8_0_q8_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_quads<Q8_0, 2>(w, xq, xq_stride, n, out);
}
void dot_q8_0_q8_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) {
  dot_quads<Q8_0, 4>(w, xq, xq_stride, n, out);
}

}  // namespace momentkv::kernels::avx512
