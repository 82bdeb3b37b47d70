// Greedy sampling on the GPU: the index of the largest logit, so that a greedy decode step sends
// one integer to the host instead of the whole row of logits.
#pragma once

#include <cstdint>

namespace momentkv::kernels::cuda {

// *out = the smallest i < n with x[i] the maximum of x[0..n) (Sampler's greedy choice: the first
// maximum). NaNs are never chosen unless every value is NaN (then 0). Device pointers; runs on
// `stream` without waiting; throws Error for n <= 0 or a failed launch.
void argmax(const float* x, int64_t n, int32_t* out, void* stream = nullptr);

}  // namespace momentkv::kernels::cuda
