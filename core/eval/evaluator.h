// Measures what a KV policy does to a generation, against the same model with a full cache
// (DESIGN.md §6): a full-cache greedy reference y* (with its logits and its attention on every
// position), then per configuration a teacher-forced replay of y* (KL, top-1 agreement, ΔNLL,
// copy-position agreement, retained attention mass, kept-token ages) and a free-running greedy
// generation (first divergence, agreement, ROUGE-L, repetition, length, speed).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "core/tokenizer/tokenizer.h"

namespace momentkv::eval {

struct EvalOptions {
  int32_t n_gen = 400;   // generated tokens per prompt (fewer if the reference ends)
  int32_t bucket = 64;   // positions per bucket of the by-position curves
  EngineOptions engine;  // precision, batch, context; kv is set per configuration
  KvType kv_type = KvType::kF32;
};

// The full-cache reference of one prompt.
struct Reference {
  std::vector<int32_t> prompt;
  std::vector<int32_t> tokens;   // y*: greedy continuation (an EOS that ended it excluded)
  std::vector<double> logprobs;  // [tokens.size()][n_vocab]: log p_full before each token
  // [tokens.size() - 1][n_layer]: the full cache's attention when y*[t] was fed (t < size - 1),
  // indexed by position (mean over query heads).
  std::vector<std::vector<std::vector<float>>> attention;
  double decode_tokens_per_s = 0;
};

// One configuration on one prompt.
struct PromptResult {
  int32_t n_tokens = 0;  // teacher-forced positions scored
  double kl_sum = 0, top1_sum = 0, delta_nll_sum = 0;
  double copy_top1_sum = 0;
  int32_t n_copy = 0;
  std::vector<double> kl_bucket, top1_bucket;  // sums per bucket of positions
  std::vector<int32_t> bucket_count;
  double retained_mass_sum = 0;
  int32_t n_retained = 0;
  std::vector<int64_t> age_histogram;  // kept generated tokens by age: [0,16), [16,32), ...
  // Free-running.
  int32_t first_divergence = 0;
  double token_agreement = 0, rouge_l = 0, repetition_rate = 0, reference_repetition_rate = 0;
  double length_ratio = 0;
  double tokens_per_s = 0;
  uint64_t peak_kv_bytes = 0;
  int64_t evicted = 0;
};

class Evaluator {
 public:
  Evaluator(const Model& model, const Tokenizer& tokenizer, Backend& backend, EvalOptions options);

  // The full-cache greedy reference for `prompt` (BOS added as the vocabulary asks).
  Reference reference(const std::string& prompt);
  // Teacher-forced and free-running measurements of `kv` on `ref`.
  PromptResult evaluate(const Reference& ref, const KvConfig& kv);

  const EvalOptions& options() const { return options_; }
  // Buckets of the age histogram: upper bounds in steps (the last is open).
  static const std::vector<int32_t>& age_buckets();

 private:
  EngineOptions engine_options(const KvConfig& kv, int32_t n_prompt) const;

  const Model& model_;
  const Tokenizer& tokenizer_;
  Backend& backend_;
  EvalOptions options_;
};

}  // namespace momentkv::eval
