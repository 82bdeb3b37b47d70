#include "core/eval/fidelity_probe.h"

#include <algorithm>
#include <chrono>

#include "core/engine/memory_budget.h"
#include "core/eval/metrics.h"
#include "core/util/error.h"

namespace momentkv::eval {

namespace {
using Clock = std::chrono::steady_clock;

int32_t clamp_batch(int32_t n_batch) {
  return std::clamp(n_batch, 1, 4096);  // as the engine clamps it
}
int32_t replayed(size_t n_output, int32_t max_tokens) {
  check(max_tokens >= 0, "FidelityProbe: max_tokens " + std::to_string(max_tokens) + " < 0");
  return static_cast<int32_t>(std::min<size_t>(n_output, static_cast<size_t>(max_tokens)));
}
}  // namespace

KvConfig FidelityProbe::full_config(const EngineOptions& base, int32_t n) {
  KvConfig full;
  full.policy = "full";
  full.type = base.kv.type;
  full.decode_budget = std::max(n, 1);
  return full;
}

EngineOptions FidelityProbe::engine_options(const Model& model, const EngineOptions& base,
                                            const KvConfig& kv, int32_t n_prompt, int32_t n) {
  EngineOptions o = base;
  o.kv = kv;
  o.probe_attention = false;
  // A full cache must hold the whole output. An evicting one cannot fill below the output
  // length, so a larger budget only costs memory (capped unless that breaks a constraint such
  // as recent <= budget).
  if (!kv.evicts()) {
    o.kv.decode_budget = std::max(n, 1);
  } else if (kv.decode_budget > std::max(n, 1)) {
    KvConfig capped = kv;
    capped.decode_budget = std::max(n, 1);
    if (!capped.validate()) o.kv = capped;
  }
  o.max_prompt = n_prompt;
  const int32_t n_ctx = o.n_ctx > 0 ? o.n_ctx : model.config().n_ctx_train;
  o.n_ctx = std::max(n_ctx, n_prompt + n);
  return o;
}

uint64_t FidelityProbe::bytes_needed(const Model& model, const EngineOptions& base,
                                     int32_t n_prompt, int32_t n_output,
                                     const std::vector<KvConfig>& candidates, int n_threads) {
  check(n_prompt > 0 && n_output >= 0, "FidelityProbe::bytes_needed: bad sizes " +
                                           std::to_string(n_prompt) + ", " +
                                           std::to_string(n_output));
  const auto plan = [&](const KvConfig& kv) {
    const MemoryPlan p =
        plan_memory(model, engine_options(model, base, kv, n_prompt, n_output), n_threads, 0);
    return p.kv + p.scratch;
  };
  uint64_t bytes = plan(full_config(base, n_output));
  for (const auto& kv : candidates) bytes += plan(kv);
  return bytes + 2ull * static_cast<uint64_t>(model.config().n_vocab) * sizeof(double);
}

int64_t FidelityProbe::passes_needed(int32_t n_prompt, int32_t n_output, int32_t n_candidates,
                                     int32_t n_batch) {
  if (n_output <= 0) return 0;
  const int32_t b = clamp_batch(n_batch);
  const int64_t per_engine = (n_prompt + b - 1) / b + n_output - 1;
  return (1 + static_cast<int64_t>(n_candidates)) * per_engine;
}

FidelityProbe::FidelityProbe(const Model& model, Backend& backend, const EngineOptions& base,
                             std::vector<int32_t> prompt, std::vector<int32_t> output,
                             std::vector<KvConfig> candidates, int32_t max_tokens)
    : prompt_(std::move(prompt)), output_(std::move(output)), n_batch_(clamp_batch(base.n_batch)) {
  check(!prompt_.empty(), "FidelityProbe: empty prompt");
  output_.resize(static_cast<size_t>(replayed(output_.size(), max_tokens)));
  const auto n_prompt = static_cast<int32_t>(prompt_.size());
  const auto n = static_cast<int32_t>(output_.size());
  for (const auto& kv : candidates) {
    if (auto err = kv.validate()) throw Error("FidelityProbe: candidate " + *err);
  }
  passes_total_ = passes_needed(n_prompt, n, static_cast<int32_t>(candidates.size()), base.n_batch);
  results_.resize(candidates.size());
  for (size_t k = 0; k < candidates.size(); ++k) results_[k].kv = candidates[k];
  if (n == 0) return;
  engines_.push_back(std::make_unique<Engine>(
      model, backend, engine_options(model, base, full_config(base, n), n_prompt, n)));
  for (const auto& kv : candidates) {
    engines_.push_back(
        std::make_unique<Engine>(model, backend, engine_options(model, base, kv, n_prompt, n)));
  }
  kl_sum_.assign(results_.size(), 0.0);
  top1_sum_.assign(results_.size(), 0.0);
}

FidelityProbe::~FidelityProbe() = default;

uint64_t FidelityProbe::state_bytes() const {
  uint64_t bytes = (lp_.capacity() + lq_.capacity()) * sizeof(double);
  for (const auto& e : engines_) bytes += e->state_bytes();
  return bytes;
}

bool FidelityProbe::advance() {
  if (done()) return true;
  const auto t0 = Clock::now();
  step();
  elapsed_ms_ += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return done();
}

void FidelityProbe::step() {
  Engine& engine = *engines_[engine_];
  std::span<const float> logits;
  if (pos_ == 0) {
    // Chunks of n_batch tokens, as Engine::eval cuts a whole prompt.
    const auto n_prompt = static_cast<int32_t>(prompt_.size());
    const int32_t chunk = std::min(n_batch_, n_prompt - fed_);
    logits = engine.eval(std::span<const int32_t>(prompt_).subspan(static_cast<size_t>(fed_),
                                                                   static_cast<size_t>(chunk)),
                         false, Region::kPrefill);
    fed_ += chunk;
    ++passes_done_;
    if (fed_ < n_prompt) return;
    fed_ = 0;
  } else {
    const int32_t one[1] = {output_[static_cast<size_t>(pos_ - 1)]};
    logits = engine.eval(one, false, Region::kDecode);
    ++passes_done_;
  }
  // The logits predict output_[pos_].
  if (engine_ == 0) {
    log_softmax(logits, lp_);
    full_top1_ = argmax(logits);
  } else {
    score(engine_ - 1, logits);
  }
  if (++engine_ == engines_.size()) {
    engine_ = 0;
    ++pos_;
  }
}

void FidelityProbe::score(size_t k, std::span<const float> logits) {
  log_softmax(logits, lq_);
  const double kl = kl_divergence(lp_, lq_);
  ProbeCandidateResult& r = results_[k];
  kl_sum_[k] += kl;
  top1_sum_[k] += argmax(logits) == full_top1_ ? 1.0 : 0.0;
  ++r.n_tokens;
  r.kl_max = std::max(r.kl_max, kl);
  r.kl_mean = kl_sum_[k] / r.n_tokens;
  r.top1_agreement = top1_sum_[k] / r.n_tokens;
  r.evicted = engines_[k + 1]->kv().stats().evicted_tokens;
}

}  // namespace momentkv::eval
