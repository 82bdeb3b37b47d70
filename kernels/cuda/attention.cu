// Decode attention with the fused Moment-KV update (attention.h). One thread block per KV lane
// (the n_head / n_head_kv query heads that share it), kThreads threads:
//   1. logits: warp w takes slots w, w + kWarps, ...; its lanes hold the K row's elements
//      lane, lane + 32, ... in registers and dot them with each head's q (shared memory);
//      probs[h][s] = q_h . k_s * scale, or -inf for a slot after the query's position;
//   2. per head: the maximum, e^(logit - max) and their sum (block reductions), then p / sum;
//   3. per slot: the lane's sum over its heads, kept in lane_sums (per_lane: the score updated);
//   4. out[h][d] = sum over slots of p[h][s] * v_s[d], one thread per (head, d);
//   5. granularity layer: the last block to finish (a counter after a memory fence) adds the
//      lanes' sums, updates lane 0's scores and copies them to every lane.
// f32 arithmetic throughout; the CPU reference differs only in summation order and exp.
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/blocks.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;  // K elements a warp lane holds

// The sum (or maximum) of v over the block; every thread gets it. `scratch` has kWarps floats.
template <bool kMax>
__device__ float block_reduce(float v, float* scratch) {
  v = kMax ? warp_max(v) : warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < kWarps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  r = kMax ? warp_max(r) : warp_sum(r);
  return r;
}

__global__ void decode_attention_kernel(DecodeAttention a) {
  extern __shared__ float q_shared[];  // [group][head_dim]
  __shared__ float scratch[kWarps];
  __shared__ bool last_block;
  const int g = blockIdx.x;
  const int group = a.n_head / a.n_head_kv;
  const int hd = a.head_dim, n = a.n_used, cap = a.capacity;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  for (int i = threadIdx.x; i < group * hd; i += kThreads) {
    q_shared[i] = a.q[static_cast<int64_t>(g) * group * hd + i];
  }
  __syncthreads();

  const uint16_t* k = a.k + g * a.lane_stride;
  const uint16_t* v = a.v + g * a.lane_stride;
  const int32_t* pos = a.pos + static_cast<int64_t>(g) * cap;
  float* probs = a.probs + static_cast<int64_t>(g) * group * cap;  // [group][cap]

  // 1. Logits.
  for (int s = warp; s < n; s += kWarps) {
    float kv[kPerLane];
    const uint16_t* row = k + s * a.row_stride;
    for (int j = 0; j < kPerLane; ++j) {
      const int d = lane + 32 * j;
      kv[j] = d < hd ? half_value(row[d]) : 0.0f;
    }
    const bool masked = pos[s] > a.q_pos;
    for (int h = 0; h < group; ++h) {
      float dot = 0.0f;
      for (int j = 0; j < kPerLane; ++j) {
        const int d = lane + 32 * j;
        if (d < hd) dot += kv[j] * q_shared[h * hd + d];
      }
      dot = warp_sum(dot);
      if (lane == 0) probs[static_cast<int64_t>(h) * cap + s] = masked ? -INFINITY : dot * a.scale;
    }
  }
  __syncthreads();

  // 2. Softmax per head.
  for (int h = 0; h < group; ++h) {
    float* p = probs + static_cast<int64_t>(h) * cap;
    float mx = -INFINITY;
    for (int s = threadIdx.x; s < n; s += kThreads) mx = fmaxf(mx, p[s]);
    mx = block_reduce<true>(mx, scratch);
    float sum = 0.0f;
    for (int s = threadIdx.x; s < n; s += kThreads) {
      const float e = p[s] == -INFINITY ? 0.0f : expf(p[s] - mx);
      p[s] = e;
      sum += e;
    }
    sum = block_reduce<false>(sum, scratch);
    const float inv = 1.0f / sum;
    for (int s = threadIdx.x; s < n; s += kThreads) p[s] *= inv;
  }
  __syncthreads();

  // 3. The lane's probability sums (and, per lane, the score update).
  float* lane_sums = a.lane_sums + static_cast<int64_t>(g) * cap;
  for (int s = threadIdx.x; s < n; s += kThreads) {
    float total = 0.0f;
    for (int h = 0; h < group; ++h) total += probs[static_cast<int64_t>(h) * cap + s];
    lane_sums[s] = total;
    if (a.scores && a.per_lane && a.evictable[static_cast<int64_t>(g) * cap + s]) {
      float& score = a.scores[static_cast<int64_t>(g) * cap + s];
      score = a.alpha * score + total / static_cast<float>(group);
    }
  }

  // 4. out = p V.
  for (int i = threadIdx.x; i < group * hd; i += kThreads) {
    const int h = i / hd, d = i % hd;
    const float* p = probs + static_cast<int64_t>(h) * cap;
    float acc = 0.0f;
    for (int s = 0; s < n; ++s) acc += p[s] * half_value(v[s * a.row_stride + d]);
    a.out[(static_cast<int64_t>(g) * group + h) * hd + d] = acc;
  }

  // 5. Granularity layer: the last block updates every lane's scores from all lanes' sums.
  if (!a.scores || a.per_lane) return;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(a.counter, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last_block) return;
  const float inv_heads = 1.0f / static_cast<float>(a.n_head);
  for (int s = threadIdx.x; s < n; s += kThreads) {
    float total = 0.0f;
    for (int l = 0; l < a.n_head_kv; ++l)
      total += __ldcg(a.lane_sums + static_cast<int64_t>(l) * cap + s);
    float score = a.scores[s];
    if (a.evictable[s]) score = a.alpha * score + total * inv_heads;
    for (int l = 0; l < a.n_head_kv; ++l) a.scores[static_cast<int64_t>(l) * cap + s] = score;
  }
  if (threadIdx.x == 0) *a.counter = 0;
}

}  // namespace

void decode_attention(const DecodeAttention& a, void* stream) {
  check(a.n_head > 0 && a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0 && a.head_dim > 0 &&
            a.head_dim <= kMaxHeadDim && a.row_stride >= a.head_dim && a.n_used > 0 &&
            a.n_used <= a.capacity,
        "CUDA decode attention: bad shape: " + std::to_string(a.n_head) + "/" +
            std::to_string(a.n_head_kv) + " heads of " + std::to_string(a.head_dim) + ", " +
            std::to_string(a.n_used) + " of " + std::to_string(a.capacity) + " slots");
  check(!a.scores || (a.evictable && a.lane_sums && (a.per_lane || a.counter)),
        "CUDA decode attention: the score update needs evictable flags, lane sums and a counter");
  check(a.probs && a.lane_sums, "CUDA decode attention: no scratch");
  const auto shared = static_cast<size_t>(a.n_head / a.n_head_kv) * a.head_dim * sizeof(float);
  check(shared <= 48 * 1024, "CUDA decode attention: " + std::to_string(a.n_head / a.n_head_kv) +
                                 " query heads per KV head of " + std::to_string(a.head_dim) +
                                 " do not fit in 48 KiB of shared memory");
  decode_attention_kernel<<<static_cast<unsigned>(a.n_head_kv), kThreads, shared,
                            static_cast<cudaStream_t>(stream)>>>(a);
  check_cuda(cudaGetLastError(), "CUDA decode attention launch");
}

}  // namespace momentkv::kernels::cuda
