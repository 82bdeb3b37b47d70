// Greedy sampling (sampling.h): one block; each thread keeps the first maximum of its strided
// share, then a shared-memory tree keeps the larger value, or on a tie the smaller index.
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kThreads = 1024;

__device__ bool beats(float v, int64_t i, float bv, int64_t bi) {
  if (bi < 0) return true;
  return v > bv || (v == bv && i < bi);
}

__global__ void argmax_kernel(const float* __restrict__ x, int64_t n, int32_t* out) {
  __shared__ float value[kThreads];
  __shared__ int64_t index[kThreads];
  float bv = 0.0f;
  int64_t bi = -1;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const float v = x[i];
    if (!isnan(v) && beats(v, i, bv, bi)) {
      bv = v;
      bi = i;
    }
  }
  value[threadIdx.x] = bv;
  index[threadIdx.x] = bi;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      const int o = threadIdx.x + half;
      if (index[o] >= 0 && beats(value[o], index[o], value[threadIdx.x], index[threadIdx.x])) {
        value[threadIdx.x] = value[o];
        index[threadIdx.x] = index[o];
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = index[0] < 0 ? 0 : static_cast<int32_t>(index[0]);
}

}  // namespace

void argmax(const float* x, int64_t n, int32_t* out, void* stream) {
  check(n > 0 && n <= INT32_MAX, "CUDA argmax: bad length " + std::to_string(n));
  argmax_kernel<<<1, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, n, out);
  check_cuda(cudaGetLastError(), "CUDA argmax launch");
}

}  // namespace momentkv::kernels::cuda
