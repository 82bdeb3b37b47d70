// KV writes and Moment-KV eviction on the GPU (kv_update.h).
//   kv_write: one block per (token, lane); threads over the head's elements.
//   moment_evict: one block per choice (a lane, or the whole layer); each thread scans slots
//     n_prefill + t, + kThreads, ... keeping its smallest (key, position), with and without the
//     grace rule, then thread 0 picks among the threads' candidates and the block moves the last
//     slot's rows and bookkeeping into the freed one.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/kv_update.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void kv_write_kernel(DeviceKvLayer l, const float* __restrict__ k,
                                const float* __restrict__ v, int32_t first_slot,
                                const int32_t* __restrict__ pos, int32_t birth) {
  const int token = blockIdx.x, g = blockIdx.y;
  const int32_t slot = first_slot + token;
  const int64_t src = (static_cast<int64_t>(token) * l.n_head_kv + g) * l.head_dim;
  const int64_t dst = g * l.lane_stride + slot * l.row_stride;
  for (int d = threadIdx.x; d < l.head_dim; d += blockDim.x) {
    l.k[dst + d] = __half_as_ushort(__float2half_rn(k[src + d]));
    l.v[dst + d] = __half_as_ushort(__float2half_rn(v[src + d]));
  }
  if (threadIdx.x == 0) {
    const int64_t b = static_cast<int64_t>(g) * l.capacity + slot;
    l.pos[b] = pos[token];
    l.birth[b] = birth;
    l.scores[b] = 0.0f;
  }
}

// A candidate for eviction: smaller key first, then the older token (smaller position).
struct Candidate {
  float key;
  int32_t pos;
  int32_t slot;  // -1: none
  __device__ bool better_than(const Candidate& o) const {
    return o.slot < 0 || (slot >= 0 && (key < o.key || (key == o.key && pos < o.pos)));
  }
};

__device__ float effective_score(float score, int64_t age, const MomentEviction& e) {
  if (!e.normalize) return score;
  const double a = e.alpha;
  const double n = static_cast<double>(age > 1 ? age : 1);
  const double mass = a >= 1.0 ? n : (1.0 - pow(a, n)) / (1.0 - a);
  return static_cast<float>(score / mass);
}

__global__ void moment_evict_kernel(DeviceKvLayer l, MomentEviction e) {
  __shared__ Candidate best[kThreads], fallback[kThreads];
  __shared__ int32_t chosen;
  const int lane = e.per_lane ? static_cast<int>(blockIdx.x) : 0;  // whose scores decide
  const int64_t base = static_cast<int64_t>(lane) * l.capacity;
  Candidate b{0.0f, 0, -1}, f{0.0f, 0, -1};
  for (int32_t s = e.first + static_cast<int32_t>(threadIdx.x); s < e.n_used; s += kThreads) {
    const int64_t born = l.birth[base + s] > 0 ? l.birth[base + s] : 0;
    const int64_t age = e.step - born + 1;
    const Candidate c{effective_score(l.scores[base + s], age, e), l.pos[base + s], s};
    Candidate& into = e.grace > 0 && age <= e.grace ? f : b;
    if (c.better_than(into)) into = c;
  }
  best[threadIdx.x] = b;
  fallback[threadIdx.x] = f;
  __syncthreads();
  if (threadIdx.x == 0) {
    Candidate pick = best[0], spare = fallback[0];
    for (int t = 1; t < kThreads; ++t) {
      if (best[t].better_than(pick)) pick = best[t];
      if (fallback[t].better_than(spare)) spare = fallback[t];
    }
    chosen = pick.slot >= 0 ? pick.slot : spare.slot;
  }
  __syncthreads();
  const int32_t slot = chosen, last = e.n_used - 1;
  if (slot < 0) return;
  const int first_lane = e.per_lane ? lane : 0;
  const int n_lanes = e.per_lane ? 1 : l.n_head_kv;
  if (slot != last) {
    for (int i = threadIdx.x; i < n_lanes * l.head_dim; i += kThreads) {
      const int g = first_lane + i / l.head_dim, d = i % l.head_dim;
      const int64_t row = g * l.lane_stride;
      l.k[row + slot * l.row_stride + d] = l.k[row + last * l.row_stride + d];
      l.v[row + slot * l.row_stride + d] = l.v[row + last * l.row_stride + d];
    }
    for (int g = first_lane + static_cast<int>(threadIdx.x); g < first_lane + n_lanes;
         g += kThreads) {
      const int64_t to = static_cast<int64_t>(g) * l.capacity + slot;
      const int64_t from = static_cast<int64_t>(g) * l.capacity + last;
      l.pos[to] = l.pos[from];
      l.birth[to] = l.birth[from];
      l.scores[to] = l.scores[from];
    }
  }
  if (threadIdx.x == 0 && e.evicted) atomicAdd(e.evicted, static_cast<unsigned long long>(n_lanes));
}

}  // namespace

void kv_write(const DeviceKvLayer& layer, const float* k, const float* v, int32_t n_tokens,
              int32_t first_slot, const int32_t* pos, int32_t birth, void* stream) {
  check(n_tokens >= 0 && first_slot >= 0 && first_slot + n_tokens <= layer.capacity &&
            layer.n_head_kv > 0 && layer.head_dim > 0 && n_tokens <= 65535,
        "CUDA kv_write: " + std::to_string(n_tokens) + " tokens at slot " +
            std::to_string(first_slot) + " do not fit " + std::to_string(layer.capacity) +
            " slots");
  if (n_tokens == 0) return;
  const dim3 grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(layer.n_head_kv));
  kv_write_kernel<<<grid, 128, 0, static_cast<cudaStream_t>(stream)>>>(layer, k, v, first_slot, pos,
                                                                       birth);
  check_cuda(cudaGetLastError(), "CUDA kv_write launch");
}

void moment_evict(const DeviceKvLayer& layer, const MomentEviction& e, void* stream) {
  check(e.first >= 0 && e.first < e.n_used && e.n_used <= layer.capacity && layer.n_head_kv > 0,
        "CUDA moment_evict: " + std::to_string(e.n_used) + " slots in use, evictable from " +
            std::to_string(e.first) + ", capacity " + std::to_string(layer.capacity));
  const unsigned blocks = e.per_lane ? static_cast<unsigned>(layer.n_head_kv) : 1u;
  moment_evict_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(layer, e);
  check_cuda(cudaGetLastError(), "CUDA moment_evict launch");
}

}  // namespace momentkv::kernels::cuda
