#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/attention_group.h"
#include "kernels/cpu/avx2/simd.h"
#include "kernels/cpu/softmax.h"

namespace momentkv::kernels::avx2 {

namespace {

using x86::hsum;

// Rows [s0, s0 + m) of a lane as f32 (converted into `buf` for f16; in place for f32).
const float* rows_f32(const GroupAttention& a, const uint8_t* base, int32_t s0, int32_t m,
                      float* buf) {
  prefetch_ahead(a, base, s0);
  if (!a.f16) return reinterpret_cast<const float*>(base + static_cast<size_t>(s0) * a.row_bytes);
  for (int32_t r = 0; r < m; ++r) {
    const auto* h =
        reinterpret_cast<const __m128i*>(base + static_cast<size_t>(s0 + r) * a.row_bytes);
    float* d = buf + static_cast<size_t>(r) * static_cast<size_t>(a.head_dim);
    for (int32_t j = 0; j < a.head_dim; j += 8) {
      _mm256_storeu_ps(d + j, _mm256_cvtph_ps(_mm_loadu_si128(h + j / 8)));
    }
  }
  return buf;
}

// dot_f32 of the AVX2 row kernels before its horizontal sum: four accumulators over 32-element
// steps, one over the 8-element steps after them, returned as (acc0 + acc1) + (acc2 + acc3).
inline __m256 dot_lanes(const float* k, const float* q, int32_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int32_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 8), _mm256_loadu_ps(q + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 16), _mm256_loadu_ps(q + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 24), _mm256_loadu_ps(q + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), acc0);
  }
  return _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
}

// The dot_f32 of the AVX2 row kernels.
inline float dot(const float* k, const float* q, int32_t n) {
  return hsum(dot_lanes(k, q, n));
}

// hsum of eight vectors at once: lane r = hsum(v[r]) bit for bit (the same additions, paired the
// same way: lanes i and i + 4, then 0 + 2 and 1 + 3, then those two).
inline __m256 hsum_8x8(const __m256 v[8]) {
  __m256 t[4];  // t[i] = [v[2i] lo + hi | v[2i + 1] lo + hi]
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x20),
                         _mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x31));
  }
  // u0 = rows 0, 2 | 1, 3 and u1 = rows 4, 6 | 5, 7, each as (x0 + x2, x1 + x3).
  const __m256 u0 = _mm256_add_ps(_mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 u1 = _mm256_add_ps(_mm256_shuffle_ps(t[2], t[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(t[2], t[3], _MM_SHUFFLE(3, 2, 3, 2)));
  // Rows 0, 2, 4, 6 | 1, 3, 5, 7, then in order.
  const __m256 h = _mm256_add_ps(_mm256_shuffle_ps(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm256_shuffle_ps(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Scores of rows [s0, s0 + 8) for one head: dot * scale, -inf where the slot is masked.
inline void scores_8(const GroupAttention& a, const float* k, const float* q, int32_t s0,
                     float* sc) {
  const auto hd = static_cast<size_t>(a.head_dim);
  __m256 v[8];
  for (int r = 0; r < 8; ++r) v[r] = dot_lanes(k + static_cast<size_t>(r) * hd, q, a.head_dim);
  const __m256 d = _mm256_mul_ps(hsum_8x8(v), _mm256_set1_ps(a.scale));
  const __m256i masked = _mm256_cmpgt_epi32(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.pos + s0)), _mm256_set1_epi32(a.q_pos));
  _mm256_storeu_ps(sc + s0,
                   _mm256_blendv_ps(d, _mm256_set1_ps(-std::numeric_limits<float>::infinity()),
                                    _mm256_castsi256_ps(masked)));
}

// softmax::exp_approx on eight lanes: the same operations in the same order.
inline __m256 exp_approx8(__m256 x) {
  using namespace softmax;
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(kMinX), _CMP_GT_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(kMaxX));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Hi), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP[i]));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i bits =
      _mm256_add_epi32(_mm256_castps_si256(y), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23));
  return _mm256_and_ps(_mm256_castsi256_ps(bits), keep);
}

// softmax::exp_shifted_sum, eight slots at a time: partial sum l holds slots l, l + 8, ... in
// order, as in the scalar form.
inline float exp_shifted_sum(float* p, int32_t n, float mx) {
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  int32_t s = 0;
  for (; s + softmax::kLanes <= n; s += softmax::kLanes) {
    const __m256 e = exp_approx8(_mm256_sub_ps(_mm256_loadu_ps(p + s), vmx));
    _mm256_storeu_ps(p + s, e);
    acc = _mm256_add_ps(acc, e);
  }
  float lane[softmax::kLanes];
  _mm256_storeu_ps(lane, acc);
  for (; s < n; ++s) {
    p[s] = softmax::exp_approx(p[s] - mx);
    lane[s % softmax::kLanes] += p[s];
  }
  return softmax::sum_lanes(lane);
}

// The largest of p[0..n) (-inf for n = 0); max is exact, so any order gives the same value.
inline float max_of(const float* p, int32_t n) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int32_t s = 0;
  for (; s + 8 <= n; s += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(p + s));
  float mx = x86::hmax(m);
  for (; s < n; ++s) mx = std::max(mx, p[s]);
  return mx;
}

}  // namespace

void attend_group(const GroupAttention& a) {
  const int32_t n = a.n, hd = a.head_dim, g = a.group;
  const size_t nn = a.stride;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  prefetch_first(a, a.k);
  // Scores of every head, a block of K rows at a time.
  for (int32_t s0 = 0; s0 < n; s0 += GroupAttention::kBlock) {
    const int32_t m = std::min(GroupAttention::kBlock, n - s0);
    const float* k = rows_f32(a, a.k, s0, m, a.rows);
    for (int32_t h = 0; h < g; ++h) {
      const float* q = a.q + static_cast<size_t>(h) * static_cast<size_t>(hd);
      float* sc = a.scores + static_cast<size_t>(h) * nn;
      int32_t r = 0;
      for (; r + 8 <= m; r += 8) {
        scores_8(a, k + static_cast<size_t>(r) * static_cast<size_t>(hd), q, s0 + r, sc);
      }
      for (; r < m; ++r) {
        const int32_t s = s0 + r;
        sc[s] = a.pos[s] > a.q_pos
                    ? neg_inf
                    : dot(k + static_cast<size_t>(r) * static_cast<size_t>(hd), q, hd) * a.scale;
      }
    }
  }
  prefetch_first(a, a.v);
  // Softmax per head (the generic path's order), probabilities into `sum` head by head.
  for (int32_t h = 0; h < g; ++h) {
    float* p = a.scores + static_cast<size_t>(h) * nn;
    const float mx = max_of(p, n);  // masked slots hold -inf
    const __m256 inv = _mm256_set1_ps(1.0f / exp_shifted_sum(p, n, mx));
    int32_t s = 0;
    for (; s + 8 <= n; s += 8) {
      const __m256 w = _mm256_mul_ps(_mm256_loadu_ps(p + s), inv);
      _mm256_storeu_ps(p + s, w);
      if (a.sum) _mm256_storeu_ps(a.sum + s, _mm256_add_ps(_mm256_loadu_ps(a.sum + s), w));
    }
    for (; s < n; ++s) {
      p[s] *= _mm256_cvtss_f32(inv);
      if (a.sum) a.sum[s] += p[s];
    }
    std::fill(a.out + static_cast<size_t>(h) * static_cast<size_t>(hd),
              a.out + static_cast<size_t>(h + 1) * static_cast<size_t>(hd), 0.0f);
  }
  // out += p * V, a block of V rows at a time; one fma per element, slots in order.
  for (int32_t s0 = 0; s0 < n; s0 += GroupAttention::kBlock) {
    const int32_t m = std::min(GroupAttention::kBlock, n - s0);
    const float* v = rows_f32(a, a.v, s0, m, a.rows);
    for (int32_t h = 0; h < g; ++h) {
      const float* p = a.scores + static_cast<size_t>(h) * nn;
      float* out = a.out + static_cast<size_t>(h) * static_cast<size_t>(hd);
      // Up to 64 columns in registers while the rows go by (the zero test once per row).
      for (int32_t j0 = 0; j0 < hd; j0 += 64) {
        const int32_t nv = std::min(8, (hd - j0) / 8);
        __m256 acc[8];
        for (int32_t c = 0; c < nv; ++c) acc[c] = _mm256_loadu_ps(out + j0 + 8 * c);
        for (int32_t r = 0; r < m; ++r) {
          const float w = p[s0 + r];
          if (w == 0.0f) continue;
          const __m256 vw = _mm256_set1_ps(w);
          const float* vr = v + static_cast<size_t>(r) * static_cast<size_t>(hd) + j0;
          for (int32_t c = 0; c < nv; ++c) {
            acc[c] = _mm256_fmadd_ps(vw, _mm256_loadu_ps(vr + 8 * c), acc[c]);
          }
        }
        for (int32_t c = 0; c < nv; ++c) _mm256_storeu_ps(out + j0 + 8 * c, acc[c]);
      }
    }
  }
}

}  // namespace momentkv::kernels::avx2
