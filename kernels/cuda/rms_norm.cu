// RMSNorm (rms_norm.h). Shapes: x, y [n_rows][n], w [n]. One thread block per row: each thread
// sums the squares of elements t, t + kThreads, ... in f32, the block adds the partial sums
// (warp shuffles, then one warp over the warps' sums), and every thread scales its elements.
// The scalar reference sums in f64; the difference is far below the test's tolerance.
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void rms_norm_kernel(const float* x, const float* __restrict__ w, int64_t n, float eps,
                                float* y) {
  __shared__ float partial[kThreads / 32];
  __shared__ float scale;
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * n;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * n;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) sum += xr[i] * xr[i];
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : 0.0f;
    s = warp_sum(s);
    if (threadIdx.x == 0) scale = rsqrtf(s / static_cast<float>(n) + eps);
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += kThreads) yr[i] = xr[i] * scale * w[i];
}

}  // namespace

void rms_norm(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y,
              void* stream) {
  check(n_rows >= 0 && n_rows <= 0x7fffffff && n > 0,
        "CUDA rms_norm: bad shape " + std::to_string(n_rows) + " x " + std::to_string(n));
  if (n_rows == 0) return;
  rms_norm_kernel<<<static_cast<unsigned>(n_rows), kThreads, 0,
                    static_cast<cudaStream_t>(stream)>>>(x, w, n, eps, y);
  check_cuda(cudaGetLastError(), "CUDA rms_norm launch");
}

}  // namespace momentkv::kernels::cuda
