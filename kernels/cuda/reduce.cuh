// Warp reductions shared by the CUDA kernels (CUDA header: for .cu files only). Every lane of
// the (full, converged) warp gets the result.
#pragma once

namespace momentkv::kernels::cuda {

__device__ inline float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}

}  // namespace momentkv::kernels::cuda
