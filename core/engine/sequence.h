// One sequence's model state, as a generation drives it: feed tokens, get logits, ask what fits.
// The CPU Engine (core/engine/engine.h) is the reference; the CUDA engine
// (kernels/cuda/cuda_engine.h) keeps the same state on the device. GenerationSession and
// Generator work with either.
#pragma once

#include <cstdint>
#include <span>

#include "core/kv/compression_summary.h"
#include "core/kv/kv_cells.h"

namespace momentkv {

class Sequence {
 public:
  virtual ~Sequence() = default;

  // Feeds `tokens` at positions n_past()..n_past()+n-1 as prompt (prefill region) or generated
  // (decode region) tokens. Returns the logits of the last token ([n_vocab]), or of every token
  // ([n][n_vocab]) when all_logits; valid until the next call. Throws Error if the positions or
  // the cache would overflow or a token id is out of range; check can_eval() first.
  virtual std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false,
                                      Region region = Region::kPrefill) = 0;
  // Feeds `tokens` as eval() does and returns the greedy next token (the first largest logit).
  // A device engine chooses it on the device and sends only the id.
  virtual int32_t eval_greedy(std::span<const int32_t> tokens, Region region = Region::kPrefill);
  // Whether n more tokens of `region` fit (positions and KV cache).
  virtual bool can_eval(int32_t n, Region region) const = 0;
  // Forgets every token (an empty context).
  virtual void reset() = 0;

  virtual int32_t n_past() const = 0;
  virtual int32_t n_ctx() const = 0;
  virtual int32_t max_prompt() const = 0;
  virtual int32_t n_vocab() const = 0;
  // What KV compression has done since reset().
  virtual CompressionSummary compression() const = 0;
};

}  // namespace momentkv
