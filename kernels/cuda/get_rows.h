// Embedding lookup on the GPU: rows of a weight matrix, dequantized to f32.
#pragma once

#include <cstdint>

#include "core/tensor/ggml_type.h"

namespace momentkv::kernels::cuda {

// Whether `t` can be read by get_rows: F32, F16, Q4_0, Q8_0, Q4_K, Q6_K.
bool get_rows_supports(GgmlType t);

// out[k][n_in] = row ids[k] of W [n_out][n_in] (type t) as f32, for k < n_ids; w, ids and out are
// device pointers, and each id must be < n_out (checked on the device: an id out of range gives a
// row of NaN, never a read outside W). Runs on `stream` without waiting; throws Error for a type
// it cannot read or a bad shape (before any device work), or when the launch fails.
void get_rows(GgmlType t, const void* w, int64_t n_out, int64_t n_in, const int32_t* ids,
              int64_t n_ids, float* out, void* stream = nullptr);

}  // namespace momentkv::kernels::cuda
