// Element-wise ops (elementwise.h): one thread per element.
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void silu_mul_kernel(float* gate, const float* __restrict__ up, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  const float g = gate[i];
  gate[i] = g / (1.0f + expf(-g)) * up[i];
}

__global__ void add_kernel(float* y, const float* __restrict__ x, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i < n) y[i] += x[i];
}

unsigned blocks_for(int64_t n, const char* op) {
  check(n >= 0, std::string("CUDA ") + op + ": negative length " + std::to_string(n));
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

}  // namespace

void silu_mul(float* gate, const float* up, int64_t n, void* stream) {
  const unsigned blocks = blocks_for(n, "silu_mul");
  if (blocks == 0) return;
  silu_mul_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(gate, up, n);
  check_cuda(cudaGetLastError(), "CUDA silu_mul launch");
}

void add(float* y, const float* x, int64_t n, void* stream) {
  const unsigned blocks = blocks_for(n, "add");
  if (blocks == 0) return;
  add_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(y, x, n);
  check_cuda(cudaGetLastError(), "CUDA add launch");
}

}  // namespace momentkv::kernels::cuda
