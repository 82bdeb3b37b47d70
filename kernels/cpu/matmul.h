// Matrix products against weight matrices stored in any supported GGUF type, and row gathers.
// W is [n_out][n_in] in w_type (row stride = row_bytes(w_type, n_in)); activations are f32.
#pragma once

#include <cstdint>

#include "core/tensor/ggml_type.h"
#include "core/util/thread_pool.h"

namespace momentkv::kernels {

enum class MatmulMode {
  kExact,  // activations stay f32 (dot_f32): reproduces float references
  kFast,   // activations quantized once per row to the type's act_type, integer dot (dot_act)
};

// y[t][o] = sum_i W[o][i] * x[t][i] for x [n_tokens][n_in] and y [n_tokens][n_out], split over
// output rows across the pool. n_in must be a multiple of the type's block size; y must not
// alias x. Throws momentkv::Error for a type without kernels or a bad shape.
void matmul(ThreadPool& pool, GgmlType w_type, const void* w, int64_t n_in, int64_t n_out,
            const float* x, int64_t n_tokens, float* y, MatmulMode mode);

// out[k][0..n_in) = row ids[k] of W (dequantized), for k < n_ids; ids must be >= 0 and index
// existing rows (embedding lookup).
void get_rows(GgmlType t, const void* w, int64_t n_in, const int32_t* ids, int64_t n_ids,
              float* out);

}  // namespace momentkv::kernels
