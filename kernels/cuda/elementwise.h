// Element-wise ops of the decoder block on the GPU: SwiGLU's gate and the residual add.
#pragma once

#include <cstdint>

namespace momentkv::kernels::cuda {

// gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + e^-gate[i]) * up[i] for i < n (ops::silu_mul).
void silu_mul(float* gate, const float* up, int64_t n, void* stream = nullptr);
// y[i] += x[i] for i < n (the residual stream).
void add(float* y, const float* x, int64_t n, void* stream = nullptr);

// Both take device pointers, run on `stream` without waiting, and throw Error for a negative n or
// a failed launch.

}  // namespace momentkv::kernels::cuda
