// Q4_K, Q5_K and Q6_K weights against Q8_K activations with 256-bit integer dots, shared by the
// AVX2, AVX-VNNI and AVX-512 VNNI kernel files. Each includes it with its own target flags, so
// everything here is in an unnamed namespace (every translation unit compiles its own copy for
// its own instruction set; see simd.h).
//
// The instruction sets differ in one step only, given as PairSum: adding the products of 16-bit
// pairs (a maddubs result times sub-block scales) into eight i32 sums. AVX2 does it with madd and
// add, VNNI with one vpdpwssd. The integer sums are exact either way (maddubs pairs never
// saturate: |q·qx| ≤ 63·127·2 = 16002 < 32767, and the i32 sums stay far from overflow), and the
// float operations are the same, so all three give the same bits.
//
// Layouts: ../shared/docs/FORMATS.md, summarized at the top of avx2/kquants.cpp.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/avx2/simd.h"
#include "kernels/cpu/kquant_blocks.h"

namespace momentkv::kernels::x86 {
namespace {

inline __m256i loadu(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 16 × i16 with lanes 2j and 2j+1 equal to m[j] (the low eight bytes of m8): multiplies bsums so
// that the madd gives the per-sub-block Σ m[j]·(bsum[2j] + bsum[2j+1]).
inline __m256i mins_for_bsums(__m128i m8) {
  return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
}
inline __m256i mins_for_bsums(const uint8_t* m) {
  return mins_for_bsums(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)));
}

// unpack_scales_mins (kquant_blocks.h) in vector registers: the eight 6-bit scales as i16 lanes
// 0-7 of both 128-bit halves of sc16, and the mins as mins_for_bsums gives them. Reads 16 bytes
// from `packed`: the block's 12 scale bytes and the 4 after them, still inside the block.
inline void unpack_scales_mins(const uint8_t* packed, __m256i& sc16, __m256i& m16) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));  // w0 w1 w2 -
  const __m128i k4 = _mm_set1_epi8(0x0f);
  const __m128i w2 = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 2, 2));
  const __m128i top = _mm_and_si128(_mm_srli_epi32(v, 2), _mm_set1_epi8(0x30));  // of w0, w1
  const __m128i low = _mm_and_si128(v, _mm_set1_epi8(0x3f));       // sc[0..3], m[0..3]
  const __m128i sc_hi = _mm_or_si128(_mm_and_si128(w2, k4), top);  // lane 0
  const __m128i m_hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi32(w2, 4), k4), top);  // lane 1
  // sc[0..3], sc[4..7], m[0..3], m[4..7] as 32-bit lanes 0-3.
  const __m128i all = _mm_unpacklo_epi32(low, _mm_blend_epi32(sc_hi, m_hi, 0b0010));
  sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(all));
  m16 = mins_for_bsums(_mm_srli_si128(all, 8));
}

// pshufb controls, read from memory (as immediates they cost GCC four instructions each, and
// with 16 ymm registers they do not stay in registers): lane[j] puts i16 lane j (0-7) of each
// 128-bit half in all of that half's lanes; pair[p] puts lane 2p of the low half and lane 2p + 1
// of the high half in all lanes of their halves.
struct ScaleControls {
  alignas(32) uint8_t lane[8][32];
  alignas(32) uint8_t pair[4][32];
  constexpr ScaleControls() : lane{}, pair{} {
    for (int j = 0; j < 8; ++j) {
      for (int i = 0; i < 32; ++i) lane[j][i] = static_cast<uint8_t>(2 * j + i % 2);
    }
    for (int p = 0; p < 4; ++p) {
      for (int i = 0; i < 32; ++i) pair[p][i] = static_cast<uint8_t>(2 * (2 * p + i / 16) + i % 2);
    }
  }
};
constexpr ScaleControls kScaleControls;

inline __m256i scale_lane(int j) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kScaleControls.lane[j]));
}
inline __m256i scale_pair(int p) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kScaleControls.pair[p]));
}

// The four 32-byte vectors of 6-bit values (0..63) of Q6_K half h: quarter k holds elements
// 128h + 32k .. +31.
inline void unpack_q6_half(const BlockQ6K& b, int h, __m256i q[4]) {
  const __m256i mask4 = _mm256_set1_epi8(0x0f);
  const __m256i mask_top = _mm256_set1_epi8(0x30);
  const __m256i ql0 = loadu(b.ql + 64 * h);
  const __m256i ql1 = loadu(b.ql + 64 * h + 32);
  const __m256i qh = loadu(b.qh + 32 * h);
  // Top bits moved to bits 4-5 of each byte; 16-bit shifts are safe after masking.
  const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(qh, 4), mask_top);
  const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(qh, 2), mask_top);
  const __m256i h2 = _mm256_and_si256(qh, mask_top);
  const __m256i h3 = _mm256_and_si256(_mm256_srli_epi16(qh, 2), mask_top);
  q[0] = _mm256_or_si256(_mm256_and_si256(ql0, mask4), h0);
  q[1] = _mm256_or_si256(_mm256_and_si256(ql1, mask4), h1);
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask4), h2);
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask4), h3);
}

// The Q8_K blocks of N activation rows, row k at xq + k * x_stride bytes.
template <int N>
void q8k_rows(const void* xq, int64_t x_stride, const BlockQ8K* (&xb)[N]) {
  for (int k = 0; k < N; ++k) {
    xb[k] = reinterpret_cast<const BlockQ8K*>(static_cast<const uint8_t*>(xq) + k * x_stride);
  }
}

// The 4-bit (Q4_K) and 5-bit (Q5_K) quants of one super-block as unsigned bytes, chunk c (64
// elements, 0..3) at a time: lo holds elements 64c .. 64c + 31, hi the next 32.
struct Q4KQuants {
  using Block = BlockQ4K;
  explicit Q4KQuants(const Block&) {}
  void chunk(const Block& b, int c, __m256i& lo, __m256i& hi) {
    const __m256i mask4 = _mm256_set1_epi8(0x0f);
    const __m256i q = loadu(b.qs + 32 * c);
    lo = _mm256_and_si256(q, mask4);
    hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask4);
  }
};
struct Q5KQuants {
  using Block = BlockQ5K;
  __m256i qh;  // shifted right by 2 per chunk: bits 0/1 are the fifth bits of lo / hi
  explicit Q5KQuants(const Block& b) : qh(loadu(b.qh)) {}
  void chunk(const Block& b, int c, __m256i& lo, __m256i& hi) {
    const __m256i mask4 = _mm256_set1_epi8(0x0f);
    const __m256i q = loadu(b.qs + 32 * c);
    lo = _mm256_or_si256(_mm256_and_si256(q, mask4),
                         _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(1)), 4));
    hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), mask4),
                         _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(2)), 3));
    qh = _mm256_srli_epi16(qh, 2);
  }
};

// Q4_K or Q5_K (Quants) against N activation rows (xq + k * x_stride bytes): the weight
// unpacking (quants, scales, mins) is done once per super-block for all rows. Each row sees the
// same float operations in the same order whatever N is (N = 1 and N = 4 agree bit for bit). The
// low and high halves of each chunk sum into separate registers (two dependency chains).
template <typename Quants, typename PairSum, int N>
void dot_q8k_q45_k_rows(const void* w, const void* xq, int64_t x_stride, int64_t n, float* out) {
  const auto* wb = static_cast<const typename Quants::Block*>(w);
  const BlockQ8K* xb[N];
  q8k_rows(xq, x_stride, xb);
  __m256 acc[N];
  for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < n / kQkBlock; ++ib) {
    const auto& b = wb[ib];
    __m256i sc16, m16;
    unpack_scales_mins(b.scales, sc16, m16);
    Quants quants(b);
    __m256i sum_lo[N];  // 8 × i32 partial Σ sc·q·qx per row
    __m256i sum_hi[N];
    for (int k = 0; k < N; ++k) sum_lo[k] = sum_hi[k] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      __m256i q_lo, q_hi;
      quants.chunk(b, c, q_lo, q_hi);
      const __m256i sc_lo = _mm256_shuffle_epi8(sc16, scale_lane(2 * c));
      const __m256i sc_hi = _mm256_shuffle_epi8(sc16, scale_lane(2 * c + 1));
      for (int k = 0; k < N; ++k) {
        const int8_t* x = xb[k][ib].qs + 64 * c;
        sum_lo[k] = PairSum::add(sum_lo[k], _mm256_maddubs_epi16(q_lo, loadu(x)), sc_lo);
        sum_hi[k] = PairSum::add(sum_hi[k], _mm256_maddubs_epi16(q_hi, loadu(x + 32)), sc_hi);
      }
    }
    const float dw = half_to_float(b.d);
    const float dmin_w = half_to_float(b.dmin);
    for (int k = 0; k < N; ++k) {
      const BlockQ8K& a = xb[k][ib];
      const __m256i mins = _mm256_madd_epi16(loadu(a.bsums), m16);  // 8 × i32
      const __m256i sum_q = _mm256_add_epi32(sum_lo[k], sum_hi[k]);
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(a.d * dw), _mm256_cvtepi32_ps(sum_q), acc[k]);
      acc[k] = _mm256_fnmadd_ps(_mm256_set1_ps(a.d * dmin_w), _mm256_cvtepi32_ps(mins), acc[k]);
    }
  }
  for (int k = 0; k < N; ++k) out[k] = hsum(acc[k]);
}

// Q6_K against N activation rows, unpacked once per super-block; as dot_q8k_q45_k_rows (the two
// halves of the super-block sum into separate registers).
template <typename PairSum, int N>
void dot_q8k_q6_k_rows(const void* w, const void* xq, int64_t x_stride, int64_t n, float* out) {
  const auto* wb = static_cast<const BlockQ6K*>(w);
  const BlockQ8K* xb[N];
  q8k_rows(xq, x_stride, xb);
  __m256 acc[N];
  for (int k = 0; k < N; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < n / kQkBlock; ++ib) {
    const BlockQ6K& b = wb[ib];
    const __m256i scales16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    // Half h's eight scales in both 128-bit halves: one pshufb then gives a pair of groups.
    const __m256i half_scales[2] = {_mm256_permute2x128_si256(scales16, scales16, 0x00),
                                    _mm256_permute2x128_si256(scales16, scales16, 0x11)};
    __m256i sum_h[2][N];
    for (int k = 0; k < N; ++k) {
      // −32·Σ_g scale[g]·bsum[g]: the offset of every q, applied once per block.
      const __m256i offset =
          _mm256_slli_epi32(_mm256_madd_epi16(scales16, loadu(xb[k][ib].bsums)), 5);
      sum_h[0][k] = _mm256_sub_epi32(_mm256_setzero_si256(), offset);
      sum_h[1][k] = _mm256_setzero_si256();
    }
    for (int h = 0; h < 2; ++h) {
      __m256i q[4];
      unpack_q6_half(b, h, q);
      for (int j = 0; j < 4; ++j) {
        // Groups 8h + 2j (bytes 0-15) and 8h + 2j + 1 (bytes 16-31).
        const __m256i sc = _mm256_shuffle_epi8(half_scales[h], scale_pair(j));
        for (int k = 0; k < N; ++k) {
          const __m256i p = _mm256_maddubs_epi16(q[j], loadu(xb[k][ib].qs + 128 * h + 32 * j));
          sum_h[h][k] = PairSum::add(sum_h[h][k], p, sc);
        }
      }
    }
    const float dw = half_to_float(b.d);
    for (int k = 0; k < N; ++k) {
      const __m256i sum_q = _mm256_add_epi32(sum_h[0][k], sum_h[1][k]);
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(xb[k][ib].d * dw), _mm256_cvtepi32_ps(sum_q), acc[k]);
    }
  }
  for (int k = 0; k < N; ++k) out[k] = hsum(acc[k]);
}

}  // namespace
}  // namespace momentkv::kernels::x86

// The nine Q4_K/Q5_K/Q6_K dot entry points of one instruction set's namespace (kquants.h), from
// the templates above with that set's PairSum.
#define MOMENTKV_KQUANT_DOT_SET(T, rows, ...)                                                      \
  float dot_q8k_##T(const void* w, const void* xq, int64_t n) {                                    \
    float out;                                                                                     \
    x86::rows<__VA_ARGS__, 1>(w, xq, 0, n, &out);                                                  \
    return out;                                                                                    \
  }                                                                                                \
  void dot_q8k_##T##_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) { \
    x86::rows<__VA_ARGS__, 2>(w, xq, xq_stride, n, out);                                           \
  }                                                                                                \
  void dot_q8k_##T##_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out) { \
    x86::rows<__VA_ARGS__, 4>(w, xq, xq_stride, n, out);                                           \
  }
#define MOMENTKV_KQUANT_DOTS(PairSum)                                        \
  MOMENTKV_KQUANT_DOT_SET(q4_k, dot_q8k_q45_k_rows, x86::Q4KQuants, PairSum) \
  MOMENTKV_KQUANT_DOT_SET(q5_k, dot_q8k_q45_k_rows, x86::Q5KQuants, PairSum) \
  MOMENTKV_KQUANT_DOT_SET(q6_k, dot_q8k_q6_k_rows, PairSum)
