// Small AVX2/F16C helpers shared by the x86 kernel files (avx2/, avxvnni/). Each kernel file is
// compiled with its own target flags, so these live in an unnamed namespace: every translation
// unit gets its own copy, compiled for its own instruction set (no one copy shared across them).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace momentkv::kernels::x86 {
namespace {

inline float half_to_float(uint16_t h) {
  return _cvtsh_ss(h);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 32 nibbles of qs[16]: bytes 0..15 = low nibbles, bytes 16..31 = high nibbles (0..15).
inline __m256i nibbles(const uint8_t* qs) {
  // The 16 bytes in both lanes (a load, no shuffle), then the high lane shifted right by 4.
  const __m256i both =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  const __m256i shifted = _mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4));
  return _mm256_and_si256(shifted, _mm256_set1_epi8(15));
}

// Byte i = 0xff where bit i of the little-endian u32 at qh is set, else 0.
inline __m256i bit_bytes(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof bits);
  const __m256i spread =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                          _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                           2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
}

// The four f16 scales at &blocks[0].d, &blocks[1].d, ... as floats.
template <typename Block>
inline __m128 scales4(const Block* blocks) {
  return _mm_cvtph_ps(_mm_setr_epi16(
      static_cast<int16_t>(blocks[0].d), static_cast<int16_t>(blocks[1].d),
      static_cast<int16_t>(blocks[2].d), static_cast<int16_t>(blocks[3].d), 0, 0, 0, 0));
}

// Four blocks' exact i32 partial sums (8 lanes each, lane l: elements 4l..4l+3) folded to
// [s0 s1 s2 s3 | s0' s1' s2' s3']: block j's sum over elements 0..15 in lane j, over 16..31 in
// lane 4 + j.
inline __m256i fold4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
}

}  // namespace
}  // namespace momentkv::kernels::x86
