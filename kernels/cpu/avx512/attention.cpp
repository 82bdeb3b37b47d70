// The grouped attention path with 512-bit vectors: the operations of avx2/attention.cpp (and so
// of the per-head path with the AVX2 row kernels) in the same order, arranged so that the wider
// registers do more of them at once and the horizontal sums cost less:
//   - scores: K rows are converted two at a time into "pairs" (8-element chunk j of the pair is
//     [row a's elements 8j..8j+7 | row b's]); one fma on a pair advances the AVX2 dot's
//     accumulator for both rows, so each row's eight-lane vector comes out without a shuffle,
//     and sixteen rows are summed horizontally together (fold_pairs, hsum_folded);
//   - softmax: each head's maximum kept while its scores are written; sixteen slots per step, the
//     eight partial sums of the exponentials kept in their AVX2 order;
//   - out += p V: up to four heads share each V row loaded, 64 columns in registers per head.
// Head dims 8..128 (multiples of 8) are compiled in; others go to the AVX2 kernel.
//
// This file is compiled for AVX-512 and runs only where the CPU has it, so it defines nothing
// with external linkage that another file might also define (no standard-library templates such
// as std::min, which the linker could otherwise take from here for the whole program).
#include "kernels/cpu/avx512/intrinsics.h"

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/attention_group.h"
#include "kernels/cpu/softmax.h"

namespace momentkv::kernels::avx512 {

namespace {

constexpr int32_t kBlock = GroupAttention::kBlock;  // rows converted at a time
static_assert(kBlock == 16, "fold_pairs and hsum_folded sum sixteen rows");
constexpr int kMaxHeadDim = 128;
constexpr float kNegInf = -__builtin_inff();

inline int32_t min_of(int32_t x, int32_t y) {
  return x < y ? x : y;
}

// A mask of the first k lanes (none for k <= 0).
inline __mmask16 first_lanes(int32_t k) {
  if (k <= 0) return 0;
  return k >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << k) - 1u);
}

// Sixteen (f16) or eight (f32) elements of a row from element j as f32.
inline __m512 load16(bool f16, const uint8_t* r, int32_t j) {
  if (f16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 2 * j)));
  return _mm512_loadu_ps(reinterpret_cast<const float*>(r) + j);
}
inline __m256 load8(bool f16, const uint8_t* r, int32_t j) {
  if (f16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 2 * j)));
  return _mm256_loadu_ps(reinterpret_cast<const float*>(r) + j);
}

// K rows [s0, s0 + kBlock) as f32 pairs into buf (pair p = rows 2p and 2p + 1, at buf + 2p·HD);
// rows past m repeat the last one (their scores are computed and dropped).
template <int HD>
void k_pairs(const GroupAttention& a, int32_t s0, int32_t m, float* buf) {
  const bool f16 = a.f16;
  const size_t rb = a.row_bytes;
  const uint8_t* k = a.k + static_cast<size_t>(s0) * rb;
  for (int32_t p = 0; p < kBlock / 2; ++p) {
    const uint8_t* ra = k + static_cast<size_t>(min_of(2 * p, m - 1)) * rb;
    const uint8_t* rb_ = k + static_cast<size_t>(min_of(2 * p + 1, m - 1)) * rb;
    float* d = buf + static_cast<size_t>(2 * p * HD);
    int32_t j = 0;
    for (; j + 16 <= HD; j += 16) {
      const __m512 za = load16(f16, ra, j), zb = load16(f16, rb_, j);
      _mm512_storeu_ps(d + 2 * j, _mm512_shuffle_f32x4(za, zb, _MM_SHUFFLE(1, 0, 1, 0)));
      _mm512_storeu_ps(d + 2 * j + 16, _mm512_shuffle_f32x4(za, zb, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    if (j < HD) {
      _mm512_storeu_ps(d + 2 * j, _mm512_insertf32x8(_mm512_castps256_ps512(load8(f16, ra, j)),
                                                     load8(f16, rb_, j), 1));
    }
  }
}

// V rows [s0, s0 + m) as f32 rows into buf (in place for f32 rows).
template <int HD>
const float* v_rows(const GroupAttention& a, int32_t s0, int32_t m, float* buf) {
  const size_t rb = a.row_bytes;
  const uint8_t* v = a.v + static_cast<size_t>(s0) * rb;
  if (!a.f16) return reinterpret_cast<const float*>(v);
  for (int32_t r = 0; r < m; ++r) {
    const uint8_t* src = v + static_cast<size_t>(r) * rb;
    float* d = buf + static_cast<size_t>(r) * HD;
    int32_t j = 0;
    for (; j + 16 <= HD; j += 16) _mm512_storeu_ps(d + j, load16(true, src, j));
    if (j < HD) _mm256_storeu_ps(d + j, load8(true, src, j));
  }
  return buf;
}

// For a pair of rows and each of NH heads: [row a's | row b's] eight-lane vectors of the AVX2
// dot before its horizontal sum: accumulators 0..3 over the 32-element steps, accumulator 0 over
// the 8-element chunks after them, then (acc0 + acc1) + (acc2 + acc3). q[h][c] = head h's chunk
// c twice ([chunk c | chunk c]); each K vector is loaded once for all the heads.
template <int HD, int NH>
inline void pair_dots(const float* kp, const __m512 (&q)[NH][HD / 8], __m512 t[NH]) {
  constexpr int kChunks = HD / 8, kFull = (HD / 32) * 4;
  __m512 acc[NH][4];
  for (int h = 0; h < NH; ++h) {
    for (int l = 0; l < 4; ++l) acc[h][l] = _mm512_setzero_ps();
  }
  for (int c = 0; c < kFull; c += 4) {
    for (int l = 0; l < 4; ++l) {
      const __m512 k = _mm512_loadu_ps(kp + 16 * (c + l));
      for (int h = 0; h < NH; ++h) acc[h][l] = _mm512_fmadd_ps(k, q[h][c + l], acc[h][l]);
    }
  }
  for (int c = kFull; c < kChunks; ++c) {
    const __m512 k = _mm512_loadu_ps(kp + 16 * c);
    for (int h = 0; h < NH; ++h) acc[h][0] = _mm512_fmadd_ps(k, q[h][c], acc[h][0]);
  }
  for (int h = 0; h < NH; ++h) {
    t[h] = _mm512_add_ps(_mm512_add_ps(acc[h][0], acc[h][1]), _mm512_add_ps(acc[h][2], acc[h][3]));
  }
}

// The horizontal sums of sixteen rows, lane r = the AVX2 hsum of row r's eight lanes (t_i +
// t_(i+4), then (0 + 2) + (1 + 3)), for t[p] = [row 2p's | row 2p + 1's] eight lanes. In two
// stages, so that a pair's vector is folded as soon as it and its neighbour are done:
// fold_pairs(t[2k], t[2k + 1]) = x[k], chunk c of x[k] row 4k + c's t_i + t_(i+4), i < 4;
// then hsum_folded(x).
inline __m512 fold_pairs(__m512 t0, __m512 t1) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(t0, t1, _MM_SHUFFLE(3, 1, 3, 1)));
}
inline __m512 hsum_folded(const __m512 x[4]) {
  // Chunk c of y0: rows c and 4 + c as (x0 + x2, x1 + x3); of y1: rows 8 + c and 12 + c.
  const __m512 y0 = _mm512_add_ps(_mm512_shuffle_ps(x[0], x[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(x[0], x[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 y1 = _mm512_add_ps(_mm512_shuffle_ps(x[2], x[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(x[2], x[3], _MM_SHUFFLE(3, 2, 3, 2)));
  // Chunk c: rows c, 4 + c, 8 + c, 12 + c; then in order.
  const __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y0, y1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(y0, y1, _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_permutexvar_ps(
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), z);
}

// The scores of the block's last stage for one head (sums: the sixteen rows' dots): scale, mask,
// store, running maximum.
inline void finish_scores(const GroupAttention& a, __m512 sums, int32_t s0, int32_t m,
                          __mmask16 masked, float* sc, float* head_max) {
  __m512 d = _mm512_mul_ps(sums, _mm512_set1_ps(a.scale));
  if (masked != 0) d = _mm512_mask_blend_ps(masked, d, _mm512_set1_ps(kNegInf));
  const __m512 mx = _mm512_loadu_ps(head_max);
  if (m == kBlock) {
    _mm512_storeu_ps(sc + s0, d);
    _mm512_storeu_ps(head_max, _mm512_max_ps(mx, d));
  } else {
    const __mmask16 valid = first_lanes(m);
    _mm512_mask_storeu_ps(sc + s0, valid, d);
    _mm512_storeu_ps(head_max, _mm512_mask_max_ps(mx, valid, mx, d));
  }
}

// Scores of the block for heads [h0, h0 + NH) (K rows as pairs at kp).
template <int HD, int NH>
inline void block_scores(const GroupAttention& a, const float* kp, int32_t h0, int32_t s0,
                         int32_t m, __mmask16 masked) {
  __m512 q[NH][HD / 8];
  for (int h = 0; h < NH; ++h) {
    for (int c = 0; c < HD / 8; ++c) {
      q[h][c] = _mm512_loadu_ps(a.q_pairs + (static_cast<size_t>(h0 + h) * (HD / 8) + c) * 16);
    }
  }
  __m512 x[NH][4];
  for (int k = 0; k < 4; ++k) {
    __m512 t0[NH], t1[NH];
    pair_dots<HD, NH>(kp + 4 * k * HD, q, t0);
    pair_dots<HD, NH>(kp + (4 * k + 2) * HD, q, t1);
    for (int h = 0; h < NH; ++h) x[h][k] = fold_pairs(t0[h], t1[h]);
  }
  for (int h = 0; h < NH; ++h) {
    finish_scores(a, hsum_folded(x[h]), s0, m, masked,
                  a.scores + static_cast<size_t>(h0 + h) * a.stride, a.head_max + 16 * (h0 + h));
  }
}

// softmax::exp_approx on sixteen lanes: the same operations in the same order.
inline __m512 exp_approx16(__m512 x) {
  using namespace softmax;
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kMinX), _CMP_GT_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(kMaxX));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Hi), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP[i]));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i bits =
      _mm512_add_epi32(_mm512_castps_si512(y), _mm512_slli_epi32(_mm512_cvtps_epi32(n), 23));
  return _mm512_maskz_mov_ps(keep, _mm512_castsi512_ps(bits));
}

// softmax::exp_shifted_sum: partial sum l holds slots l, l + 8, ... in order (each sixteen-slot
// step adds its low eight lanes, then its high eight).
inline float exp_shifted_sum(float* p, int32_t n, float mx) {
  const __m512 vmx = _mm512_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  int32_t s = 0;
  for (; s + 16 <= n; s += 16) {
    const __m512 e = exp_approx16(_mm512_sub_ps(_mm512_loadu_ps(p + s), vmx));
    _mm512_storeu_ps(p + s, e);
    acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
    acc = _mm256_add_ps(acc, _mm512_extractf32x8_ps(e, 1));
  }
  if (s + 8 <= n) {
    const __m512 e = exp_approx16(_mm512_sub_ps(_mm512_maskz_loadu_ps(0xFF, p + s), vmx));
    _mm256_storeu_ps(p + s, _mm512_castps512_ps256(e));
    acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
    s += 8;
  }
  float lane[softmax::kLanes];
  _mm256_storeu_ps(lane, acc);
  for (; s < n; ++s) {
    p[s] = softmax::exp_approx(p[s] - mx);
    lane[s % softmax::kLanes] += p[s];
  }
  return softmax::sum_lanes(lane);
}

// Probabilities of one head in place (p / sum of e^(p - mx), mx the largest score), added into
// `sum` when set.
inline void softmax_head(float* p, int32_t n, float mx, float* sum) {
  const __m512 inv = _mm512_set1_ps(1.0f / exp_shifted_sum(p, n, mx));
  int32_t s = 0;
  for (; s + 16 <= n; s += 16) {
    const __m512 w = _mm512_mul_ps(_mm512_loadu_ps(p + s), inv);
    _mm512_storeu_ps(p + s, w);
    if (sum) _mm512_storeu_ps(sum + s, _mm512_add_ps(_mm512_loadu_ps(sum + s), w));
  }
  if (s < n) {
    const __mmask16 k = first_lanes(n - s);
    const __m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + s), inv);
    _mm512_mask_storeu_ps(p + s, k, w);
    if (sum) _mm512_mask_storeu_ps(sum + s, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, sum + s), w));
  }
}

// Columns [j, j + W) of a row as a vector (W < 16: the rest zero; W <= 0: all zero), and back.
template <int W>
inline __m512 load_cols(const float* p) {
  if constexpr (W >= 16) {
    return _mm512_loadu_ps(p);
  } else if constexpr (W > 0) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << W) - 1u), p);
  } else {
    return _mm512_setzero_ps();
  }
}
template <int W>
inline void store_cols(float* p, __m512 x) {
  if constexpr (W >= 16) {
    _mm512_storeu_ps(p, x);
  } else if constexpr (W > 0) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << W) - 1u), x);
  }
}

// out[h0 .. h0 + NH) columns [J0, J0 + 64) += p V over rows [s0, s0 + m) (f32 at v), then the
// next 64 columns: one fma per element, rows in order, rows whose probability is 0 skipped when
// kZeroTest (the per-head path's test).
template <int HD, int NH, bool kZeroTest, int J0 = 0>
void v_heads(const GroupAttention& a, const float* v, int32_t s0, int32_t m, int32_t h0) {
  constexpr int kCols = HD - J0 < 64 ? HD - J0 : 64;
  constexpr int kVecs = (kCols + 15) / 16;
  const size_t nn = a.stride;
  const float* p = a.scores + static_cast<size_t>(h0) * nn + static_cast<size_t>(s0);
  __m512 acc[NH][4];
  for (int h = 0; h < NH; ++h) {
    const float* out = a.out + static_cast<size_t>(h0 + h) * HD + J0;
    acc[h][0] = load_cols<kCols>(out);
    acc[h][1] = load_cols<kCols - 16>(out + 16);
    acc[h][2] = load_cols<kCols - 32>(out + 32);
    acc[h][3] = load_cols<kCols - 48>(out + 48);
  }
  for (int32_t r = 0; r < m; ++r) {
    const float* vr = v + static_cast<size_t>(r) * HD + J0;
    __m512 vv[4] = {load_cols<kCols>(vr), load_cols<kCols - 16>(vr + 16),
                    load_cols<kCols - 32>(vr + 32), load_cols<kCols - 48>(vr + 48)};
    for (int h = 0; h < NH; ++h) {
      const float w = p[static_cast<size_t>(h) * nn + static_cast<size_t>(r)];
      if (kZeroTest && w == 0.0f) continue;
      const __m512 vw = _mm512_set1_ps(w);
      for (int c = 0; c < kVecs; ++c) acc[h][c] = _mm512_fmadd_ps(vw, vv[c], acc[h][c]);
    }
  }
  for (int h = 0; h < NH; ++h) {
    float* out = a.out + static_cast<size_t>(h0 + h) * HD + J0;
    store_cols<kCols>(out, acc[h][0]);
    store_cols<kCols - 16>(out + 16, acc[h][1]);
    store_cols<kCols - 32>(out + 32, acc[h][2]);
    store_cols<kCols - 48>(out + 48, acc[h][3]);
  }
  if constexpr (J0 + 64 < HD) v_heads<HD, NH, kZeroTest, J0 + 64>(a, v, s0, m, h0);
}

// Whether a probability of heads [h0, h0 + nh) over rows [s0, s0 + m) is 0.
inline bool any_zero(const GroupAttention& a, int32_t h0, int32_t nh, int32_t s0, int32_t m) {
  const __mmask16 valid = first_lanes(m);
  for (int32_t h = h0; h < h0 + nh; ++h) {
    const float* p = a.scores + static_cast<size_t>(h) * a.stride + s0;
    if (_mm512_mask_cmp_ps_mask(valid, _mm512_maskz_loadu_ps(valid, p), _mm512_setzero_ps(),
                                _CMP_EQ_OQ) != 0) {
      return true;
    }
  }
  return false;
}

template <int HD, int NH>
void v_heads(const GroupAttention& a, const float* v, int32_t s0, int32_t m, int32_t h0) {
  if (any_zero(a, h0, NH, s0, m)) {
    v_heads<HD, NH, true>(a, v, s0, m, h0);
  } else {
    v_heads<HD, NH, false>(a, v, s0, m, h0);
  }
}

template <int HD>
void attend(const GroupAttention& a) {
  const int32_t n = a.n, g = a.group;
  const size_t nn = a.stride;
  constexpr int kChunks = HD / 8;
  // Each head's q chunks, twice: [chunk c | chunk c].
  for (int32_t h = 0; h < g; ++h) {
    const float* q = a.q + static_cast<size_t>(h) * HD;
    for (int c = 0; c < kChunks; ++c) {
      const __m256 x = _mm256_loadu_ps(q + 8 * c);
      _mm512_storeu_ps(a.q_pairs + (static_cast<size_t>(h) * kChunks + c) * 16,
                       _mm512_insertf32x8(_mm512_castps256_ps512(x), x, 1));
    }
  }
  // Each head's running maximum of its scores (max is exact: any order gives the same value).
  for (int32_t h = 0; h < g; ++h) _mm512_storeu_ps(a.head_max + 16 * h, _mm512_set1_ps(kNegInf));
  const __m512i q_pos = _mm512_set1_epi32(a.q_pos);
  prefetch_first(a, a.k);
  for (int32_t s0 = 0; s0 < n; s0 += kBlock) {
    const int32_t m = min_of(kBlock, n - s0);
    prefetch_ahead(a, a.k, s0);
    k_pairs<HD>(a, s0, m, a.rows);
    const __mmask16 valid = first_lanes(m);  // slots after the query's position are masked
    const __mmask16 masked =
        _mm512_mask_cmpgt_epi32_mask(valid, _mm512_maskz_loadu_epi32(valid, a.pos + s0), q_pos);
    int32_t h = 0;
    for (; h + 2 <= g; h += 2) block_scores<HD, 2>(a, a.rows, h, s0, m, masked);
    if (h < g) block_scores<HD, 1>(a, a.rows, h, s0, m, masked);
  }
  prefetch_first(a, a.v);
  for (int32_t h = 0; h < g; ++h) {
    softmax_head(a.scores + static_cast<size_t>(h) * nn, n,
                 _mm512_reduce_max_ps(_mm512_loadu_ps(a.head_max + 16 * h)), a.sum);
    for (int j = 0; j < HD; j += 16) {
      _mm512_mask_storeu_ps(a.out + static_cast<size_t>(h) * HD + j, first_lanes(HD - j),
                            _mm512_setzero_ps());
    }
  }
  for (int32_t s0 = 0; s0 < n; s0 += kBlock) {
    const int32_t m = min_of(kBlock, n - s0);
    prefetch_ahead(a, a.v, s0);
    const float* v = v_rows<HD>(a, s0, m, a.rows);
    int32_t h = 0;
    for (; h + 4 <= g; h += 4) v_heads<HD, 4>(a, v, s0, m, h);
    switch (g - h) {
      case 3:
        v_heads<HD, 3>(a, v, s0, m, h);
        break;
      case 2:
        v_heads<HD, 2>(a, v, s0, m, h);
        break;
      case 1:
        v_heads<HD, 1>(a, v, s0, m, h);
        break;
      default:
        break;
    }
  }
}

using Kernel = void (*)(const GroupAttention&);
constexpr Kernel kKernels[kMaxHeadDim / 8] = {attend<8>,   attend<16>,  attend<24>,  attend<32>,
                                              attend<40>,  attend<48>,  attend<56>,  attend<64>,
                                              attend<72>,  attend<80>,  attend<88>,  attend<96>,
                                              attend<104>, attend<112>, attend<120>, attend<128>};

}  // namespace

void attend_group(const GroupAttention& a) {
  if (a.head_dim <= 0 || a.head_dim % 8 != 0 || a.head_dim > kMaxHeadDim || a.n == 0) {
    avx2::attend_group(a);
    return;
  }
  kKernels[a.head_dim / 8 - 1](a);
}

}  // namespace momentkv::kernels::avx512
