// The daemon's shadow fidelity probe (DESIGN.md §6): after a compressed request finishes, its
// prompt and generated output are replayed teacher-forced through a full cache and through each
// candidate KV configuration, and per candidate the per-token KL(p_full || q_candidate) and top-1
// agreement (argmax q == argmax p_full: the output was sampled, so argmaxes are compared, not the
// token) are measured. The work is cut into units of one forward pass of one engine so the
// daemon's worker can preempt it between any two units.
//
// Engines run in lockstep per position: the full engine first, then every candidate at the same
// position, so memory is 1 + K KV caches and only the full engine's current log-softmax is kept.
// Results equal the teacher-forced part of Evaluator::evaluate on the same tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/engine/engine.h"
#include "core/kv/kv_config.h"

namespace momentkv::eval {

struct ProbeCandidateResult {
  KvConfig kv;           // as given to the probe
  int32_t n_tokens = 0;  // output positions scored so far
  double kl_mean = 0, kl_max = 0;
  double top1_agreement = 0;  // share of positions where argmax q == argmax p_full
  int64_t evicted = 0;        // tokens the candidate's cache evicted during the replay
};

class FidelityProbe {
 public:
  // base: the daemon's engine options (precision, n_batch, n_ctx); its kv.type is the full
  // reference's element type, each candidate keeps its own. `output` is truncated to max_tokens
  // (>= 0). The full reference and `full` candidates never evict; an evicting candidate's decode
  // budget is capped at the output length (it then cannot fill, so results are unchanged) to
  // save memory. n_ctx is raised to prompt + output if smaller (the positions were already used).
  // Allocates every engine: reserve bytes_needed() first. Throws Error on an empty prompt, an
  // invalid candidate or max_tokens < 0; advance() throws Error on a token id out of range.
  FidelityProbe(const Model& model, Backend& backend, const EngineOptions& base,
                std::vector<int32_t> prompt, std::vector<int32_t> output,
                std::vector<KvConfig> candidates, int32_t max_tokens);
  ~FidelityProbe();
  FidelityProbe(const FidelityProbe&) = delete;
  FidelityProbe& operator=(const FidelityProbe&) = delete;

  // Bytes of the KV caches and scratch of the probe's 1 + K engines (plan_memory with base 0,
  // as the scheduler reserves a request) plus its two log-softmax rows: what the daemon reserves
  // before constructing the probe. n_output: output tokens replayed, i.e. min(output size,
  // max_tokens) (a larger value only overestimates).
  static uint64_t bytes_needed(const Model& model, const EngineOptions& base, int32_t n_prompt,
                               int32_t n_output, const std::vector<KvConfig>& candidates,
                               int n_threads);
  // Forward passes a probe of K candidates takes, n_output as above:
  // (1 + K) * (ceil(n_prompt / n_batch) + n_output - 1), or 0 when n_output is 0.
  static int64_t passes_needed(int32_t n_prompt, int32_t n_output, int32_t n_candidates,
                               int32_t n_batch);

  // One unit of work: one forward pass of one engine (a prompt chunk of at most n_batch tokens,
  // or one output token). Returns true when the probe is finished (then it does nothing).
  bool advance();
  bool done() const { return passes_done_ == passes_total_; }
  // Per candidate, in the order given; complete once done(), partial (positions so far) before.
  const std::vector<ProbeCandidateResult>& results() const { return results_; }
  int64_t passes_done() const { return passes_done_; }
  // Bytes of KV cache and scratch the probe's engines hold (at most bytes_needed()).
  uint64_t state_bytes() const;
  int64_t passes_total() const { return passes_total_; }
  // Compute time spent inside advance(), in milliseconds.
  double elapsed_ms() const { return elapsed_ms_; }

 private:
  // Options of one engine replaying prompt + n output tokens with `kv`.
  static EngineOptions engine_options(const Model& model, const EngineOptions& base,
                                      const KvConfig& kv, int32_t n_prompt, int32_t n);
  static KvConfig full_config(const EngineOptions& base, int32_t n);
  void step();
  void score(size_t candidate, std::span<const float> logits);

  std::vector<int32_t> prompt_, output_;  // output_ already truncated
  int32_t n_batch_;
  std::vector<std::unique_ptr<Engine>> engines_;  // [0]: full reference, [1 + k]: candidate k
  std::vector<ProbeCandidateResult> results_;
  std::vector<double> kl_sum_, top1_sum_;
  // The full engine's log-softmax and argmax at the current position; a candidate's scratch row.
  std::vector<double> lp_, lq_;
  int32_t full_top1_ = 0;
  // Schedule: position pos_ (0: the prompt, t >= 1: output token t - 1 fed), engine_ within it,
  // prompt tokens fed to that engine so far.
  int32_t pos_ = 0;
  size_t engine_ = 0;
  int32_t fed_ = 0;
  int64_t passes_done_ = 0, passes_total_ = 0;
  double elapsed_ms_ = 0;
};

}  // namespace momentkv::eval
