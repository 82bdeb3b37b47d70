// The compute backend the engine talks to. The CPU backend (kernels/cpu/cpu_backend.h) is the
// reference; device backends register beside it. Buffers are host f32 unless stated.
#pragma once

#include <cstdint>
#include <functional>

#include "core/model/weight.h"

namespace momentkv {

enum class MatmulPrecision {
  kExact,  // activations stay f32 (reproduces float references)
  kFast,   // activations quantized per block (Q8_0 / Q8_K) for integer dot products
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual int n_threads() const = 0;
  // y[n_tokens][w.n_out] = x[n_tokens][w.n_in] · Wᵀ.
  virtual void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                      MatmulPrecision precision) = 0;
  // out[k][w.n_in] = row ids[k] of W, dequantized. Each id must be < w.n_out.
  virtual void get_rows(const WeightView& w, const int32_t* ids, int64_t n_ids, float* out) = 0;
  // Runs fn(begin, end) over [0, n) split across the backend's threads; returns when all are done.
  virtual void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) = 0;
};

}  // namespace momentkv
