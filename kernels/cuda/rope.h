// RoPE on the GPU (ops::Rope::apply's rotation, every head of every token).
#pragma once

#include <cstdint>

namespace momentkv::kernels::cuda {

// Rotates dims [0, n_rot) of every head vector of x [n_tokens][n_heads][head_dim] in place with
// the angles cs [n_tokens][n_rot / 2][2] (cos, sin: ops::Rope::angles of each token's position):
// pairs (2j, 2j + 1), or (j, j + n_rot / 2) when `neox`. Device pointers; runs on `stream`
// without waiting; throws Error for a bad shape or a failed launch.
void rope(float* x, const float* cs, int64_t n_tokens, int32_t n_heads, int32_t head_dim,
          int32_t n_rot, bool neox, void* stream = nullptr);

}  // namespace momentkv::kernels::cuda
