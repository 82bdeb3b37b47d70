// The grouped attention path on NEON (Jetson's Arm cores): the operations of the per-head path
// with the NEON row kernels in the same order, so the results are the same bit for bit, with
// the work a per-head loop repeats done once per KV lane:
//   - K and V rows are converted from f16 once per block of slots for every query head of the
//     group (not once per head), and no kernel is called through a pointer per row;
//   - a score is dot_f32_f16's sum (neon/dot.h, on the converted row) times the scale;
//   - the softmax is softmax.h's scalar exp_shifted_sum, as on the per-head path;
//   - out += p V is accumulate_f16's one fma per element, up to four heads sharing each V row,
//     sixteen columns per head in registers while the rows go by.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/attention_group.h"
#include "kernels/cpu/neon/dot.h"
#include "kernels/cpu/softmax.h"

namespace momentkv::kernels::neon {

namespace {

constexpr int32_t kBlock = GroupAttention::kBlock;
constexpr float kNegInf = -__builtin_inff();

inline int32_t min_of(int32_t x, int32_t y) {
  return x < y ? x : y;
}

// Rows [s0, s0 + m) of a lane as f32 (converted into buf for f16; in place for f32).
const float* rows_f32(const GroupAttention& a, const uint8_t* base, int32_t s0, int32_t m,
                      float* buf) {
  prefetch_ahead(a, base, s0);
  const uint8_t* first = base + static_cast<size_t>(s0) * a.row_bytes;
  if (!a.f16) return reinterpret_cast<const float*>(first);
  const auto hd = static_cast<size_t>(a.head_dim);
  for (int32_t r = 0; r < m; ++r) {
    const auto* h = reinterpret_cast<const uint16_t*>(first + static_cast<size_t>(r) * a.row_bytes);
    float* d = buf + static_cast<size_t>(r) * hd;
    for (size_t j = 0; j < hd; j += 4) {
      vst1q_f32(d + j, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + j))));
    }
  }
  return buf;
}

// out[h0 .. h0 + NH) columns [j0, j0 + 4 NV) += p V over rows [s0, s0 + m) (f32 at v): one fma per
// element, rows in order, rows whose probability is 0 skipped.
template <int NH, int NV>
void v_heads(const GroupAttention& a, const float* v, int32_t s0, int32_t m, int32_t h0,
             int32_t j0) {
  const size_t nn = a.stride;
  const auto hd = static_cast<size_t>(a.head_dim);
  const float* p = a.scores + static_cast<size_t>(h0) * nn + static_cast<size_t>(s0);
  float32x4_t acc[NH][NV];
  for (int h = 0; h < NH; ++h) {
    for (int c = 0; c < NV; ++c) acc[h][c] = vld1q_f32(a.out + (h0 + h) * hd + j0 + 4 * c);
  }
  for (int32_t r = 0; r < m; ++r) {
    const float* vr = v + static_cast<size_t>(r) * hd + j0;
    float32x4_t vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = vld1q_f32(vr + 4 * c);
    for (int h = 0; h < NH; ++h) {
      const float w = p[static_cast<size_t>(h) * nn + static_cast<size_t>(r)];
      if (w == 0.0f) continue;
      const float32x4_t vw = vdupq_n_f32(w);
      for (int c = 0; c < NV; ++c) acc[h][c] = vfmaq_f32(acc[h][c], vv[c], vw);
    }
  }
  for (int h = 0; h < NH; ++h) {
    for (int c = 0; c < NV; ++c) vst1q_f32(a.out + (h0 + h) * hd + j0 + 4 * c, acc[h][c]);
  }
}

// All columns of heads [h0, h0 + NH): sixteen at a time, then the last eight (head_dim is a
// multiple of 8).
template <int NH>
void v_heads(const GroupAttention& a, const float* v, int32_t s0, int32_t m, int32_t h0) {
  int32_t j0 = 0;
  for (; j0 + 16 <= a.head_dim; j0 += 16) v_heads<NH, 4>(a, v, s0, m, h0, j0);
  if (j0 < a.head_dim) v_heads<NH, 2>(a, v, s0, m, h0, j0);
}

}  // namespace

void attend_group(const GroupAttention& a) {
  const int32_t n = a.n, hd = a.head_dim, g = a.group;
  const size_t nn = a.stride;
  // Scores of every head a block of K rows at a time, each head's maximum on the way.
  for (int32_t h = 0; h < g; ++h) a.head_max[h] = kNegInf;
  prefetch_first(a, a.k);
  for (int32_t s0 = 0; s0 < n; s0 += kBlock) {
    const int32_t m = min_of(kBlock, n - s0);
    const float* k = rows_f32(a, a.k, s0, m, a.rows);
    for (int32_t h = 0; h < g; ++h) {
      const float* q = a.q + static_cast<size_t>(h) * static_cast<size_t>(hd);
      float* sc = a.scores + static_cast<size_t>(h) * nn;
      float mx = a.head_max[h];
      for (int32_t r = 0; r < m; ++r) {
        const int32_t s = s0 + r;
        if (a.pos[s] > a.q_pos) {
          sc[s] = kNegInf;
          continue;
        }
        const float d =
            dot_rows(F32Values{k + static_cast<size_t>(r) * static_cast<size_t>(hd)}, q, hd) *
            a.scale;
        sc[s] = d;
        mx = mx < d ? d : mx;  // std::max(mx, d)
      }
      a.head_max[h] = mx;
    }
  }
  prefetch_first(a, a.v);
  // Probabilities per head, into `sum` head by head; the outputs start at zero.
  for (int32_t h = 0; h < g; ++h) {
    float* p = a.scores + static_cast<size_t>(h) * nn;
    const float inv = 1.0f / softmax::exp_shifted_sum(p, n, a.head_max[h]);
    for (int32_t s = 0; s < n; ++s) {
      p[s] *= inv;
      if (a.sum) a.sum[s] += p[s];
    }
    float* out = a.out + static_cast<size_t>(h) * static_cast<size_t>(hd);
    for (int32_t j = 0; j < hd; ++j) out[j] = 0.0f;
  }
  for (int32_t s0 = 0; s0 < n; s0 += kBlock) {
    const int32_t m = min_of(kBlock, n - s0);
    const float* v = rows_f32(a, a.v, s0, m, a.rows);
    int32_t h = 0;
    for (; h + 4 <= g; h += 4) v_heads<4>(a, v, s0, m, h);
    switch (g - h) {
      case 3:
        v_heads<3>(a, v, s0, m, h);
        break;
      case 2:
        v_heads<2>(a, v, s0, m, h);
        break;
      case 1:
        v_heads<1>(a, v, s0, m, h);
        break;
      default:
        break;
    }
  }
}

}  // namespace momentkv::kernels::neon
