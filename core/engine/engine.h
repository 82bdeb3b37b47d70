// Runs a Model on a Backend: batched prompt processing (matrix-matrix) and one-token decode,
// keeping the sequence's KV cache.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/engine/backend.h"
#include "core/kv/kv_cache.h"
#include "core/model/model.h"
#include "core/model/ops.h"

namespace momentkv {

struct EngineOptions {
  int32_t n_ctx = 0;     // KV capacity in tokens; 0 = the model's trained context
  int32_t n_batch = 64;  // prompt tokens per forward pass
  MatmulPrecision precision = MatmulPrecision::kFast;
};

class Engine {
 public:
  Engine(const Model& model, Backend& backend, EngineOptions options);

  // Feeds `tokens` at positions n_past()..n_past()+n-1. Returns the logits of the last token
  // ([n_vocab]), or of every token ([n][n_vocab]) when all_logits. Throws Error if the context
  // would overflow or a token id is out of range.
  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false);

  int32_t n_past() const { return n_past_; }
  int32_t n_ctx() const { return kv_.capacity(); }
  int32_t n_vocab() const { return model_.config().n_vocab; }
  void reset();
  const Model& model() const { return model_; }
  const KvCache& kv() const { return kv_; }
  // Bytes of scratch buffers and KV cache this engine holds.
  uint64_t state_bytes() const;

 private:
  void forward(const int32_t* tokens, int32_t n, bool all_logits, float* logits);
  void attention(int32_t layer, int32_t n, int32_t first_cell);

  const Model& model_;
  Backend& backend_;
  EngineOptions options_;
  ops::Rope rope_;
  KvCache kv_;
  int32_t n_past_ = 0;
  // Scratch, sized for n_batch tokens.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, rope_cs_, scores_, logits_;
  std::vector<int32_t> positions_;
};

}  // namespace momentkv
