#include "daemon/probe_runner.h"

#include <algorithm>
#include <cmath>

namespace momentkv::daemon {

ProbeRunner::ProbeRunner(Backend& backend, MemoryBudget& budget, ProbeOptions options,
                         int n_threads, telemetry::Telemetry* telemetry)
    : backend_(backend),
      budget_(budget),
      options_(std::move(options)),
      n_threads_(n_threads),
      telemetry_(telemetry),
      rng_(options_.seed ? options_.seed : std::random_device{}()) {}

ProbeRunner::~ProbeRunner() {
  stop();
}

std::vector<KvConfig> ProbeRunner::candidates(const KvConfig& kv, const ProbeOptions& options) {
  std::vector<int32_t> budgets = options.budgets;
  if (budgets.empty()) {
    const int32_t b = kv.decode_budget;
    budgets = {b / 4, b / 2, b, b * 2};
  }
  std::vector<double> alphas = options.alphas;
  if (alphas.empty() || kv.policy != "moment") alphas = {kv.alpha};
  std::vector<KvConfig> out;
  for (int32_t b : budgets) {
    if (b < 8) continue;  // below the sinks and a few recent tokens nothing is learned
    for (double a : alphas) {
      KvConfig c = kv;
      c.decode_budget = b;
      c.alpha = static_cast<float>(a);
      if (c.validate()) continue;
      const bool seen = std::any_of(out.begin(), out.end(), [&](const KvConfig& o) {
        return o.decode_budget == c.decode_budget && o.alpha == c.alpha;
      });
      if (!seen) out.push_back(c);
    }
  }
  return out;
}

bool ProbeRunner::wants(bool context_altered, size_t output_tokens) {
  if (!telemetry_ || options_.rate <= 0 || !context_altered || output_tokens < 2) return false;
  return std::uniform_real_distribution<double>(0, 1)(rng_) < options_.rate;
}

void ProbeRunner::offer(ProbeSubject subject) {
  if (waiting_.size() >= std::max<size_t>(options_.max_waiting, 1)) {
    waiting_.pop_front();
    ++counters_.skipped;
  }
  waiting_.push_back(std::move(subject));
}

void ProbeRunner::release() {
  probe_.reset();
  subject_.reset();
  if (reserved_) {
    budget_.release(reserved_);
    reserved_ = 0;
  }
}

void ProbeRunner::preempt() {
  if (!probe_) return;
  ++counters_.preempted;
  // Start over at the next idle moment, first in line.
  waiting_.push_front(std::move(*subject_));
  if (waiting_.size() > std::max<size_t>(options_.max_waiting, 1)) {
    waiting_.pop_back();
    ++counters_.skipped;
  }
  release();
}

void ProbeRunner::stop() {
  waiting_.clear();
  release();
}

void ProbeRunner::step() {
  if (!probe_) {
    if (waiting_.empty()) return;
    subject_ = std::make_unique<ProbeSubject>(std::move(waiting_.front()));
    waiting_.pop_front();
    candidates_ = candidates(subject_->engine.kv, options_);
    const auto n_prompt = static_cast<int32_t>(subject_->prompt.size());
    const auto n_output =
        std::min<int32_t>(static_cast<int32_t>(subject_->output.size()), options_.max_tokens);
    const uint64_t bytes = eval::FidelityProbe::bytes_needed(
        *subject_->model, subject_->engine, n_prompt, n_output, candidates_, n_threads_);
    if (candidates_.empty() || budget_.try_reserve(bytes, "fidelity probe")) {
      ++counters_.skipped;  // does not fit the memory left now
      subject_.reset();
      return;
    }
    reserved_ = bytes;
    try {
      probe_ = std::make_unique<eval::FidelityProbe>(*subject_->model, backend_, subject_->engine,
                                                     subject_->prompt, subject_->output,
                                                     candidates_, options_.max_tokens);
    } catch (const std::exception&) {
      ++counters_.skipped;
      release();
      return;
    }
  }
  try {
    if (probe_->advance()) {
      finish();
    } else if (probe_->elapsed_ms() > options_.max_ms) {
      ++counters_.aborted;
      release();
    }
  } catch (const std::exception&) {
    ++counters_.aborted;
    release();
  }
}

void ProbeRunner::finish() {
  const int64_t now = telemetry::unix_ms();
  const KvConfig& ran = subject_->engine.kv;
  const auto& results = probe_->results();
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    telemetry::ProbeRecord p;
    p.time_ms = now;
    p.request_id = subject_->request_id;
    p.model = subject_->model_name;
    p.model_hash = subject_->model_hash;
    p.policy = candidates_[i].policy;
    p.scope = kv_scope_name(candidates_[i].scope);
    p.alpha = telemetry::round_alpha(candidates_[i].alpha);
    p.decode_budget = candidates_[i].decode_budget;
    p.request_config =
        candidates_[i].decode_budget == ran.decode_budget && candidates_[i].alpha == ran.alpha;
    p.tokens = r.n_tokens;
    p.kl_mean = r.kl_mean;
    p.kl_max = r.kl_max;
    p.top1_agreement = r.top1_agreement;
    p.duration_ms = probe_->elapsed_ms();
    telemetry_->submit(std::move(p));
  }
  ++counters_.completed;
  release();
}

}  // namespace momentkv::daemon
