#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/attention_group.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {

namespace {

GgmlType row_type(KvType t) {
  switch (t) {
    case KvType::kF32:
      return GgmlType::F32;
    case KvType::kF16:
      return GgmlType::F16;
    case KvType::kQ8_0:
      return GgmlType::Q8_0;
  }
  return GgmlType::F32;
}

// One query head of one token over one lane: scores, softmax, weighted sum of V; adds the
// probabilities into `sum` when it is not null.
void attend_one(const AttentionArgs& a, const TypeKernels& rk, int32_t i, int32_t h,
                std::vector<float>& p, std::vector<float>& vrow, float* sum) {
  const int32_t group = a.n_head / a.n_head_kv;
  const int32_t g = h / group;
  const int32_t lane = a.layer * a.n_head_kv + g;
  const KvCells& cells = a.lanes[g];
  const int32_t n = cells.n_used();
  const int32_t hd = a.head_dim;
  const size_t q_stride = static_cast<size_t>(a.n_head) * static_cast<size_t>(hd);
  const float* q = a.q + static_cast<size_t>(i) * q_stride + static_cast<size_t>(h) * hd;
  float* out = a.out + static_cast<size_t>(i) * q_stride + static_cast<size_t>(h) * hd;
  const int32_t qpos = a.q_pos[i];
  const int32_t* pos = cells.positions();
  if (p.size() < static_cast<size_t>(n)) p.resize(static_cast<size_t>(n));
  if (vrow.size() < static_cast<size_t>(hd)) vrow.resize(static_cast<size_t>(hd));
  float mx = -std::numeric_limits<float>::infinity();
  for (int32_t s = 0; s < n; ++s) {
    if (pos[s] > qpos) {
      p[static_cast<size_t>(s)] = -std::numeric_limits<float>::infinity();
      continue;
    }
    const float d = rk.dot_f32(a.kv->k(lane, s), q, hd) * a.scale;
    p[static_cast<size_t>(s)] = d;
    mx = std::max(mx, d);
  }
  const float inv = 1.0f / softmax::exp_shifted_sum(p.data(), n, mx);
  std::fill(out, out + hd, 0.0f);
  for (int32_t s = 0; s < n; ++s) {
    const float w = p[static_cast<size_t>(s)] * inv;
    if (sum) sum[s] += w;
    if (w == 0.0f) continue;
    if (rk.accumulate != nullptr) {
      rk.accumulate(a.kv->v(lane, s), w, out, hd);  // same sums as below, vectorized (f16, f32)
      continue;
    }
    rk.dequantize(a.kv->v(lane, s), vrow.data(), hd);
    for (int32_t d = 0; d < hd; ++d) out[d] += w * vrow[static_cast<size_t>(d)];
  }
}

using GroupKernel = void (*)(const GroupAttention&);

#ifdef MOMENTKV_HAVE_AVX2
bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}
#endif

// n floats of scratch in v starting on a 64-byte boundary (a cache line, one 512-bit vector):
// the kernels' full-vector loads and stores of their scratch then never straddle two lines
// (grouped AVX-512 at 2,048 slots: 107 -> 78 us per layer with two threads, as measured by
// bench/kernels_bench.cpp; malloc's 16-byte alignment had every 512-bit access split).
float* aligned(std::vector<float>& v, size_t n) {
  constexpr size_t kLine = 64 / sizeof(float);
  v.resize(n + kLine);
  const auto address = reinterpret_cast<uintptr_t>(v.data());
  const size_t skip = (kLine - (address / sizeof(float)) % kLine) % kLine;
  return v.data() + skip;
}

// The query heads of KV group g for token i, through a grouped path's kernel.
void attend_group(GroupKernel kernel, const AttentionArgs& a, int32_t i, int32_t g, float* sum) {
  thread_local std::vector<float> scores, rows, q_pairs, head_max;
  const int32_t group = a.n_head / a.n_head_kv;
  const int32_t lane = a.layer * a.n_head_kv + g;
  const KvCells& cells = a.lanes[g];
  const size_t q_stride = static_cast<size_t>(a.n_head) * static_cast<size_t>(a.head_dim);
  const size_t first = static_cast<size_t>(i) * q_stride +
                       static_cast<size_t>(g) * static_cast<size_t>(group) * a.head_dim;
  GroupAttention ga;
  ga.q = a.q + first;
  ga.out = a.out + first;
  ga.group = group;
  ga.head_dim = a.head_dim;
  ga.scale = a.scale;
  ga.k = a.kv->k(lane, 0);
  ga.v = a.kv->v(lane, 0);
  ga.row_bytes = static_cast<size_t>(a.kv->row_bytes());
  ga.f16 = a.kv->type() == KvType::kF16;
  ga.pos = cells.positions();
  ga.n = cells.n_used();
  ga.q_pos = a.q_pos[i];
  ga.sum = sum;
  // Each head's scores from a cache line's start, as the kernels' blocks of 16 slots.
  ga.stride = (static_cast<size_t>(std::max(ga.n, 1)) + 15) / 16 * 16;
  ga.scores = aligned(scores, static_cast<size_t>(group) * ga.stride);
  ga.rows =
      aligned(rows, static_cast<size_t>(GroupAttention::kBlock) * static_cast<size_t>(a.head_dim));
  ga.q_pairs = aligned(q_pairs, static_cast<size_t>(group) * 2 * static_cast<size_t>(a.head_dim));
  ga.head_max = aligned(head_max, static_cast<size_t>(group) * 16);
  kernel(ga);
}

// The grouped fast path over every (token, KV group), or over groups when statistics are summed
// (each group's sums written by one thread).
void attention_grouped(ThreadPool& pool, const AttentionArgs& a, GroupKernel kernel) {
  if (a.attn_sum) {
    pool.parallel_for(a.n_head_kv, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        float* sum = a.attn_sum + static_cast<size_t>(a.attn_stride) * static_cast<size_t>(g);
        for (int32_t i = 0; i < a.n_tokens; ++i) {
          attend_group(kernel, a, i, static_cast<int32_t>(g), i >= a.observe_from ? sum : nullptr);
        }
      }
    });
    return;
  }
  pool.parallel_for(static_cast<int64_t>(a.n_tokens) * a.n_head_kv,
                    [&](int64_t begin, int64_t end) {
                      for (int64_t item = begin; item < end; ++item) {
                        attend_group(kernel, a, static_cast<int32_t>(item / a.n_head_kv),
                                     static_cast<int32_t>(item % a.n_head_kv), nullptr);
                      }
                    });
}

// The grouped path's kernel for `path` with these arguments, or null for the per-head path.
GroupKernel group_kernel(const AttentionArgs& a, Isa isa, AttentionPath path) {
  if (path == AttentionPath::kPerHead || a.kv->type() == KvType::kQ8_0 || a.head_dim % 8 != 0 ||
      a.head_dim <= 0) {
    return nullptr;
  }
#if defined(MOMENTKV_HAVE_AVX2)
  if (!has_avx2(isa)) return nullptr;
  static const bool avx512 = cpu_has_avx512();
  if (path == AttentionPath::kGroupedAvx2 || !avx512) return avx2::attend_group;
  return avx512::attend_group;
#elif defined(MOMENTKV_HAVE_NEON)
  return isa == Isa::kNeon ? neon::attend_group : nullptr;
#else
  (void)isa;
  return nullptr;
#endif
}

}  // namespace

const char* attention_path_name(AttentionPath path) {
  switch (path) {
    case AttentionPath::kAuto:
      return "auto";
    case AttentionPath::kPerHead:
      return "per-head";
    case AttentionPath::kGroupedAvx2:
      return "grouped-avx2";
    case AttentionPath::kGroupedAvx512:
      return "grouped-avx512";
    case AttentionPath::kGroupedNeon:
      return "grouped-neon";
  }
  return "unknown";
}

std::vector<AttentionPath> attention_paths() {
  std::vector<AttentionPath> paths = {AttentionPath::kPerHead};
#ifdef MOMENTKV_HAVE_AVX2
  if (has_avx2(best_isa())) paths.push_back(AttentionPath::kGroupedAvx2);
  if (has_avx2(best_isa()) && cpu_has_avx512()) paths.push_back(AttentionPath::kGroupedAvx512);
#endif
#ifdef MOMENTKV_HAVE_NEON
  if (best_isa() == Isa::kNeon) paths.push_back(AttentionPath::kGroupedNeon);
#endif
  return paths;
}

void attention(ThreadPool& pool, const AttentionArgs& a, Isa isa, AttentionPath path) {
  const TypeKernels& rk = type_kernels(row_type(a.kv->type()), isa);
  const int32_t group = a.n_head / a.n_head_kv;
  if (const GroupKernel kernel = group_kernel(a, isa, path); kernel != nullptr) {
    attention_grouped(pool, a, kernel);
    return;
  }
  if (a.attn_sum) {
    pool.parallel_for(a.n_head_kv, [&](int64_t begin, int64_t end) {
      thread_local std::vector<float> p, vrow;
      for (int64_t g = begin; g < end; ++g) {
        float* sum = a.attn_sum + static_cast<size_t>(a.attn_stride) * static_cast<size_t>(g);
        for (int32_t i = 0; i < a.n_tokens; ++i) {
          for (int32_t h = static_cast<int32_t>(g) * group;
               h < (static_cast<int32_t>(g) + 1) * group; ++h) {
            attend_one(a, rk, i, h, p, vrow, i >= a.observe_from ? sum : nullptr);
          }
        }
      }
    });
    return;
  }
  pool.parallel_for(static_cast<int64_t>(a.n_tokens) * a.n_head, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> p, vrow;
    for (int64_t item = begin; item < end; ++item) {
      attend_one(a, rk, static_cast<int32_t>(item / a.n_head),
                 static_cast<int32_t>(item % a.n_head), p, vrow, nullptr);
    }
  });
}

}  // namespace momentkv::kernels
