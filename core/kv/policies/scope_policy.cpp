#include "core/kv/policies/scope_policy.h"

namespace momentkv {

void ScopePolicy::observe(KvLayerView& view) {
  if (!view.attn) return;
  for (size_t l = 0; l < view.lanes.size(); ++l) {
    KvCells& cells = view.lanes[l];
    for (int32_t s = 0; s < cells.n_used(); ++s) {
      cells.scores()[s] = view.lane_mean(static_cast<int32_t>(l), s);
    }
  }
}

void ScopePolicy::plan(const KvLayerView& view, EvictionPlan& plan) {
  const int32_t n_lanes = static_cast<int32_t>(view.lanes.size());
  plan.reset(Granularity::kKvHead, n_lanes);
  const int32_t recent = config_.effective_recent();
  for (int32_t l = 0; l < n_lanes; ++l) {
    const KvCells& cells = view.lanes[static_cast<size_t>(l)];
    const int32_t over = overflow(cells, view);
    if (over <= 0) continue;
    pick_lowest(
        *this, cells, over, [&](int32_t s) { return cells.score(s); },
        [&](int32_t s) { return cells.pos(s) > view.newest_pos - recent; },
        plan.slots[static_cast<size_t>(l)]);
  }
}

}  // namespace momentkv
