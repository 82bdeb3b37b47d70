// The activations of one forward pass over `rows` token rows (one engine's prompt chunk, or one
// token of each sequence of a batched decode step).
#pragma once

#include <cstdint>
#include <vector>

#include "core/model/model_config.h"

namespace momentkv {

struct ForwardScratch {
  std::vector<float> x, xn, q, k, v, attn, gate, up, rope_cs;
  std::vector<int32_t> positions;
  int64_t rows = 0;

  // Sizes every buffer for `rows` rows of model `c` with `n_pairs` RoPE pairs per position.
  void resize(const ModelConfig& c, int32_t n_pairs, int64_t rows);
  uint64_t bytes() const;
  // Floats resize() allocates per row.
  static int64_t floats_per_row(const ModelConfig& c, int32_t n_pairs);
};

}  // namespace momentkv
