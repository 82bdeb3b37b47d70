// Builds small random-weight llama/qwen2 GGUF images in memory for tests (no tokenizer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/gguf/gguf_writer.h"

namespace momentkv::test {

struct TinyModelSpec {
  std::string arch = "llama";
  int32_t n_embd = 32;
  int32_t n_layer = 2;
  int32_t n_head = 4;
  int32_t n_head_kv = 2;
  int32_t n_ff = 64;
  int32_t n_vocab = 64;
  int32_t n_ctx = 128;
  bool tied_output = true;
  uint32_t seed = 1;
};

// A writer holding the metadata and F32 tensors of a valid model; tests may alter it further.
GgufWriter tiny_model_writer(const TinyModelSpec& spec);

}  // namespace momentkv::test
