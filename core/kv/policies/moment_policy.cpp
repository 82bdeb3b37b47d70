#include "core/kv/policies/moment_policy.h"

#include <cmath>

namespace momentkv {

void MomentPolicy::observe(KvLayerView& view) {
  if (!view.attn) return;
  const float alpha = config_.alpha;
  if (config_.granularity == Granularity::kLayer) {
    // One score per token for the whole layer: update lane 0, mirror it to the others.
    view.layer_means(abar_);
    KvCells& cells = view.lanes[0];
    float* score = cells.scores();
    for (int32_t s = 0; s < cells.n_used(); ++s) {
      if (evictable(cells, s)) score[s] = alpha * score[s] + abar_[static_cast<size_t>(s)];
    }
    mirror_scores(view.lanes);
    return;
  }
  for (size_t l = 0; l < view.lanes.size(); ++l) {
    KvCells& cells = view.lanes[l];
    float* score = cells.scores();
    for (int32_t s = 0; s < cells.n_used(); ++s) {
      if (!evictable(cells, s)) continue;
      score[s] = alpha * score[s] + view.lane_mean(static_cast<int32_t>(l), s);
    }
  }
}

float MomentPolicy::effective_score(float score, int64_t age) const {
  if (!config_.normalize) return score;
  // Sum of alpha^k for k < age: what a token with constant attention 1 would have collected.
  const double a = config_.alpha;
  const double n = static_cast<double>(std::max<int64_t>(age, 1));
  const double mass = a >= 1.0 ? n : (1.0 - std::pow(a, n)) / (1.0 - a);
  return static_cast<float>(score / mass);
}

void MomentPolicy::plan(const KvLayerView& view, EvictionPlan& plan) {
  const int32_t n_lanes = static_cast<int32_t>(view.lanes.size());
  plan.reset(config_.granularity, n_lanes);
  const int32_t n_plans = config_.granularity == Granularity::kLayer ? 1 : n_lanes;
  for (int32_t p = 0; p < n_plans; ++p) {
    const KvCells& cells = view.lanes[static_cast<size_t>(p)];
    const int32_t over = overflow(cells, view);
    if (over <= 0) continue;
    // Age in steps a slot has been resident (prompt tokens: since the first decode step).
    auto age = [&](int32_t s) { return view.step - std::max<int64_t>(cells.birth(s), 0) + 1; };
    pick_lowest(
        *this, cells, over, [&](int32_t s) { return effective_score(cells.score(s), age(s)); },
        [&](int32_t s) { return config_.grace > 0 && age(s) <= config_.grace; },
        plan.slots[static_cast<size_t>(p)]);
  }
}

}  // namespace momentkv
