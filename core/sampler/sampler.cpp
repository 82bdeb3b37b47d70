#include "core/sampler/sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "core/util/error.h"

namespace momentkv {

namespace {

// Canonical order: higher logit first, lower id on ties. A total order (NaN is rejected on load),
// so any correct sort gives the same sequence on every standard library.
bool before(const Sampler::Candidate& a, const Sampler::Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

uint64_t pick_seed(uint64_t requested) {
  if (requested != kRandomSeed) return requested;
  std::random_device device;
  const uint64_t entropy = (uint64_t{device()} << 32) ^ uint64_t { device() };
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  uint64_t s = entropy ^ static_cast<uint64_t>(now);
  // Never hand back the sentinel itself, so seed() can always be replayed.
  return s == kRandomSeed ? 0 : s;
}

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), seed_(0), rng_(0) {
  if (auto err = params_.validate()) throw Error("sampling parameters: " + *err);
  seed_ = pick_seed(params_.seed);
  rng_.seed(seed_);
  history_.reserve(static_cast<size_t>(params_.repeat_last_n));
  penalised_.reserve(static_cast<size_t>(params_.repeat_last_n));
}

void Sampler::accept(int32_t token) {
  if (token < 0) throw Error("Sampler::accept: negative token id " + std::to_string(token));
  const size_t cap = static_cast<size_t>(params_.repeat_last_n);
  if (cap == 0) return;
  if (history_.size() < cap) {
    history_.push_back(token);
    return;
  }
  history_[history_head_] = token;
  history_head_ = (history_head_ + 1) % cap;
}

void Sampler::reset() {
  history_.clear();
  history_head_ = 0;
  rng_.seed(seed_);
  candidates_.clear();
}

int32_t Sampler::sample(std::span<const float> logits) {
  // Messages are built only on failure: this path must not allocate.
  if (logits.empty()) throw Error("Sampler::sample: empty logits");
  if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw Error("Sampler::sample: vocabulary of " + std::to_string(logits.size()) +
                " exceeds int32");
  }
  const auto n_vocab = static_cast<int32_t>(logits.size());

  load_logits(logits);
  apply_repeat_penalty(n_vocab);
  if (params_.temperature <= 0.0f) return pick_greedy();

  apply_top_k();
  float max_logit = -std::numeric_limits<float>::infinity();
  for (const Candidate& c : candidates_) max_logit = std::max(max_logit, c.logit);
  if (!std::isfinite(max_logit)) throw Error("Sampler::sample: every logit is -inf");

  // top-p normalises over the set top-k left, so the sum is taken before min-p trims it. Doing
  // min-p first is then exact (both keep a prefix of the sorted set and min-p's threshold depends
  // only on the maximum) and spares sorting the whole vocabulary when top-k is off.
  double sum_exp = 0.0;
  if (params_.top_p < 1.0f) {
    for (const Candidate& c : candidates_) {
      sum_exp += std::exp(static_cast<double>(c.logit) - static_cast<double>(max_logit));
    }
  }
  apply_min_p(max_logit);
  apply_top_p(max_logit, sum_exp);
  return draw(max_logit);
}

void Sampler::load_logits(std::span<const float> logits) {
  candidates_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (std::isnan(l) || l == std::numeric_limits<float>::infinity()) {
      throw Error("Sampler::sample: logit " + std::to_string(l) + " at id " + std::to_string(i));
    }
    candidates_[i] = Candidate{static_cast<int32_t>(i), l, 0.0f};
  }
  sorted_ = false;
}

void Sampler::apply_repeat_penalty(int32_t n_vocab) {
  const float penalty = params_.repeat_penalty;
  if (penalty == 1.0f || history_.empty()) return;
  // Each distinct token is penalised once, however often it repeats.
  penalised_.assign(history_.begin(), history_.end());
  std::sort(penalised_.begin(), penalised_.end());
  penalised_.erase(std::unique(penalised_.begin(), penalised_.end()), penalised_.end());
  for (int32_t id : penalised_) {
    if (id >= n_vocab) {
      throw Error("Sampler::sample: history token " + std::to_string(id) +
                  " outside a vocabulary of " + std::to_string(n_vocab));
    }
    float& l = candidates_[static_cast<size_t>(id)].logit;  // still in id order here
    l = l <= 0.0f ? l * penalty : l / penalty;
  }
}

int32_t Sampler::pick_greedy() {
  size_t best = 0;
  for (size_t i = 1; i < candidates_.size(); ++i) {
    if (candidates_[i].logit > candidates_[best].logit) best = i;
  }
  const Candidate chosen{candidates_[best].id, candidates_[best].logit, 1.0f};
  candidates_.assign(1, chosen);
  sorted_ = true;
  return chosen.id;
}

void Sampler::apply_top_k() {
  const int32_t k = params_.top_k;
  if (k <= 0 || static_cast<size_t>(k) >= candidates_.size()) return;
  std::partial_sort(candidates_.begin(), candidates_.begin() + k, candidates_.end(), before);
  candidates_.resize(static_cast<size_t>(k));
  sorted_ = true;
}

void Sampler::apply_min_p(float max_logit) {
  const float min_p = params_.min_p;
  if (min_p <= 0.0f) return;
  // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p), whatever the normaliser.
  const float threshold = max_logit + std::log(min_p);
  size_t kept = 0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    if (candidates_[i].logit >= threshold) candidates_[kept++] = candidates_[i];
  }
  candidates_.resize(std::max<size_t>(kept, 1));  // the maximum always passes
}

void Sampler::apply_top_p(float max_logit, double sum_exp) {
  const float top_p = params_.top_p;
  if (top_p >= 1.0f) return;
  sort_candidates();
  // Keep the smallest prefix whose probability reaches top_p (at least one token).
  double cumulative = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    cumulative +=
        std::exp(static_cast<double>(candidates_[i].logit) - static_cast<double>(max_logit)) /
        sum_exp;
    if (cumulative >= static_cast<double>(top_p)) {
      candidates_.resize(i + 1);
      return;
    }
  }
}

void Sampler::sort_candidates() {
  if (sorted_) return;
  std::sort(candidates_.begin(), candidates_.end(), before);
  sorted_ = true;
}

int32_t Sampler::draw(float max_logit) {
  const double inv_temp = 1.0 / static_cast<double>(params_.temperature);
  double total = 0.0;
  for (Candidate& c : candidates_) {
    const double w =
        std::exp((static_cast<double>(c.logit) - static_cast<double>(max_logit)) * inv_temp);
    c.p = static_cast<float>(w);  // unnormalised for now
    total += static_cast<double>(c.p);
  }
  const double target = next_uniform() * total;
  double cumulative = 0.0;
  size_t chosen = candidates_.size();
  size_t last_positive = 0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    const double w = static_cast<double>(candidates_[i].p);
    if (w > 0.0) last_positive = i;
    cumulative += w;
    if (chosen == candidates_.size() && target < cumulative) chosen = i;
    candidates_[i].p = static_cast<float>(w / total);
  }
  // Rounding can leave target just past the last sum; the last token with weight takes it.
  if (chosen == candidates_.size()) chosen = last_positive;
  return candidates_[chosen].id;
}

double Sampler::next_uniform() {
  // The top 53 bits as a double in [0, 1): exact, and the same on every platform, unlike
  // std::uniform_real_distribution.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

}  // namespace momentkv
