// RoPE (rope.h). Shapes: x [n_tokens][n_heads][head_dim], cs [n_tokens][n_rot / 2][2]. One
// thread per rotated pair (token, head, j): the same two products and sum per element as
// ops::Rope::apply.
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void rope_kernel(float* x, const float* __restrict__ cs, int64_t n_pairs_total,
                            int32_t n_heads, int32_t head_dim, int32_t n_pairs, bool neox) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (p >= n_pairs_total) return;
  const int32_t j = static_cast<int32_t>(p % n_pairs);
  const int64_t head = p / n_pairs;  // token * n_heads + head
  const int64_t token = head / n_heads;
  float* v = x + head * head_dim;
  const int32_t a = neox ? j : 2 * j;
  const int32_t b = neox ? j + n_pairs : 2 * j + 1;
  const float c = cs[(token * n_pairs + j) * 2], s = cs[(token * n_pairs + j) * 2 + 1];
  const float x0 = v[a], x1 = v[b];
  v[a] = x0 * c - x1 * s;
  v[b] = x0 * s + x1 * c;
}

}  // namespace

void rope(float* x, const float* cs, int64_t n_tokens, int32_t n_heads, int32_t head_dim,
          int32_t n_rot, bool neox, void* stream) {
  check(n_tokens >= 0 && n_heads > 0 && n_rot > 0 && n_rot % 2 == 0 && n_rot <= head_dim,
        "CUDA rope: bad shape: " + std::to_string(n_heads) + " heads of " +
            std::to_string(head_dim) + ", n_rot " + std::to_string(n_rot));
  const int64_t total = n_tokens * n_heads * (n_rot / 2);
  if (total == 0) return;
  rope_kernel<<<static_cast<unsigned>((total + kThreads - 1) / kThreads), kThreads, 0,
                static_cast<cudaStream_t>(stream)>>>(x, cs, total, n_heads, head_dim, n_rot / 2,
                                                     neox);
  check_cuda(cudaGetLastError(), "CUDA rope launch");
}

}  // namespace momentkv::kernels::cuda
