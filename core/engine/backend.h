// The compute backend the engine talks to. The CPU backend (kernels/cpu/cpu_backend.h) is the
// reference; device backends register beside it. Buffers are host f32 unless stated.
#pragma once

#include <cstdint>
#include <functional>

#include "core/kv/kv_cells.h"
#include "core/kv/kv_storage.h"
#include "core/model/weight.h"

namespace momentkv {

enum class MatmulPrecision {
  kExact,  // activations stay f32 (reproduces float references)
  kFast,   // activations quantized per block (Q8_0 / Q8_K) for integer dot products
};

// Attention of n_tokens queries over one layer's KV lanes (one lane per KV head; query head h
// reads lane h / (n_head / n_head_kv)). A query at position p sees only slots whose position is
// <= p. The softmax is normalised over every visible slot of the lane (prefill + decode).
struct AttentionArgs {
  int32_t n_tokens = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  float scale = 1.0f;
  const float* q = nullptr;        // [n_tokens][n_head * head_dim], after RoPE
  const int32_t* q_pos = nullptr;  // [n_tokens]
  float* out = nullptr;            // [n_tokens][n_head * head_dim]
  const KvStorage* kv = nullptr;
  int32_t layer = 0;
  const KvCells* lanes = nullptr;  // [n_head_kv]: the layer's lanes
  // Optional fused statistics for the eviction policy: attn_sum[lane * attn_stride + slot] +=
  // probability, summed over the lane's query heads and over queries observe_from..n_tokens-1.
  float* attn_sum = nullptr;
  int32_t attn_stride = 0;
  int32_t observe_from = 0;
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
  // Computes args.out (and accumulates args.attn_sum when set).
  virtual void attention(const AttentionArgs& args) = 0;
  // Runs fn(begin, end) over [0, n) split across the backend's threads; returns when all are done.
  virtual void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) = 0;
};

}  // namespace momentkv
