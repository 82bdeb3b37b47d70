// What a generation is asked to do, and what it produced.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/kv/compression_summary.h"
#include "core/sampler/sampling_params.h"

namespace momentkv {

struct GenerationRequest {
  std::string prompt;
  bool add_special = true;    // BOS as the vocabulary asks
  bool parse_special = true;  // "<s>", "<|im_start|>" in the prompt become special tokens
  SamplingParams sampling;
};

struct GenerationTimings {
  int32_t n_prompt = 0;
  int32_t n_generated = 0;
  double prompt_ms = 0.0;  // prompt processing, including the first token's logits
  double decode_ms = 0.0;  // the rest: n_generated - 1 forward passes plus sampling
  double prompt_tokens_per_s() const;
  double decode_tokens_per_s() const;
};

struct GenerationResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> ids;   // generated ids (an EOG token that ended the run is not included)
  std::string text;           // generated text (a stop string and what follows are cut)
  std::string finish_reason;  // "stop" (EOG or stop string), "length", or "cancelled"
  uint64_t seed = 0;          // the sampler's seed (the one picked when none was given)
  CompressionSummary compression;  // what compression did
  GenerationTimings timings;
};

}  // namespace momentkv
