// Quantized mat-vec for decode on the GPU: y = W x for one activation row. W stays in its GGUF
// row layout on the device (no repacking: rows of blocks, row r at r * row_bytes(type, n_in)),
// x and y are f32. One warp per output row; each lane takes 32-element chunks of the row in turn
// (a Q4_0/Q8_0 block, a 32-element sub-block of a Q4_K/Q6_K super-block, 32 F16/F32 values), so
// the lanes of a warp read neighbouring chunks and every weight byte is read once.
#pragma once

#include <cstdint>

#include "core/tensor/ggml_type.h"

namespace momentkv::kernels::cuda {

// Whether `t` has a mat-vec kernel: F32, F16, Q4_0, Q8_0, Q4_K, Q6_K.
bool matvec_supports(GgmlType t);

// y[n_out] = W[n_out][n_in] · x[n_in]; w, x and y are device pointers, n_in a whole number of the
// type's blocks. Runs on `stream` (a cudaStream_t; null: the default stream) and returns without
// waiting. Throws Error for a type without a kernel or a bad shape (before any device work), or
// when the launch fails.
void matvec(GgmlType t, const void* w, int64_t n_out, int64_t n_in, const float* x, float* y,
            void* stream = nullptr);

}  // namespace momentkv::kernels::cuda
