// Chooses the next token from a row of logits, in llama.cpp's default order: repetition penalty
// over the last `repeat_last_n` accepted tokens, then either greedy argmax (temperature <= 0) or
// top-k -> top-p -> min-p -> temperature -> softmax -> a draw from a seeded std::mt19937_64.
//
// Deterministic: the same seed, history and logits give the same token on every platform (the
// uniform variate is built from raw generator bits, and candidate order never depends on the
// standard library's sort), up to last-ulp differences in the platform's exp/log.
// After the first call for a given vocabulary size, sample() does not allocate.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/sampler/sampling_params.h"

namespace momentkv {

class Sampler {
 public:
  // A token the last sample() could have drawn. `logit` is after the repetition penalty and before
  // temperature; `p` is the probability it was drawn with.
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };

  // Throws Error when params.validate() fails. kRandomSeed picks a seed; seed() reports it.
  explicit Sampler(const SamplingParams& params);

  // Picks a token id in [0, logits.size()). logits: [n_vocab], not modified; throws Error on NaN
  // or +inf, when every logit is -inf, or when the history holds an id >= n_vocab.
  int32_t sample(std::span<const float> logits);

  // Records `token` (>= 0) as generated, for the repetition penalty. Callers that want the prompt
  // penalised too accept its tokens before the first sample().
  void accept(int32_t token);

  // Forgets the history and restarts the random stream from seed(), so a new request with the
  // same seed repeats its draws.
  void reset();

  // The tokens the last sample() chose among, with their probabilities, in a deterministic order
  // (descending logit when top-k or top-p ran, else by id); greedy leaves just the argmax, p = 1.
  std::span<const Candidate> candidates() const { return candidates_; }

  // The seed in use: params.seed, or the one picked for kRandomSeed.
  uint64_t seed() const { return seed_; }

  const SamplingParams& params() const { return params_; }

 private:
  void load_logits(std::span<const float> logits);
  void apply_repeat_penalty(int32_t n_vocab);
  int32_t pick_greedy();
  void apply_top_k();
  void apply_min_p(float max_logit);
  void apply_top_p(float max_logit, double sum_exp);
  void sort_candidates();
  int32_t draw(float max_logit);
  double next_uniform();

  SamplingParams params_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;  // [n_vocab] capacity, reused across calls
  bool sorted_ = false;                // candidates_ in descending (logit, then ascending id)
  std::vector<int32_t> history_;       // ring of the last repeat_last_n accepted tokens
  size_t history_head_ = 0;            // next slot to overwrite once the ring is full
  std::vector<int32_t> penalised_;     // scratch: distinct ids in the history
};

}  // namespace momentkv
