// Batched decode: one generated token for each of several sequences (engines on the same model)
// in one pass over the weights. Decode reads every weight once per step; with n sequences
// batched, the matrix products reuse each weight block for n tokens (the multi-token kernels),
// while RoPE, each sequence's KV cache, attention and eviction stay per engine. Every sequence's
// logits are exactly those of a solo Engine::eval of the same token (tests/core/batch_decoder_*).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/engine/engine.h"
#include "core/engine/forward_scratch.h"

namespace momentkv {

class BatchDecoder {
 public:
  // Scratch for up to max_batch sequences of `model`.
  BatchDecoder(const Model& model, Backend& backend, MatmulPrecision precision, int32_t max_batch);

  // Feeds tokens[i] to engines[i] as a generated token (each must satisfy
  // can_eval(1, Region::kDecode), run `model` with this decoder's precision, and appear once).
  // Returns the logits, [engines.size()][n_vocab], valid until the next call. Throws Error on a
  // violated precondition (nothing is fed then).
  std::span<const float> decode(std::span<Engine* const> engines, std::span<const int32_t> tokens);

  int32_t max_batch() const { return max_batch_; }
  // Bytes of scratch and logits this decoder holds.
  uint64_t bytes() const;
  // What bytes() will be for `max_batch` sequences of `model` (to reserve before constructing).
  static uint64_t bytes_needed(const Model& model, int32_t max_batch);

 private:
  const Model& model_;
  Backend& backend_;
  MatmulPrecision precision_;
  int32_t max_batch_;
  ForwardScratch scratch_;
  std::vector<float> logits_;
  std::vector<Engine::Segment> segments_;
};

}  // namespace momentkv
