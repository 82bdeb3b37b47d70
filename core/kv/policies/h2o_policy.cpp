#include "core/kv/policies/h2o_policy.h"

namespace momentkv {

void H2oPolicy::observe(KvLayerView& view) {
  if (!view.attn) return;
  view.layer_means(abar_);
  KvCells& cells = view.lanes[0];
  for (int32_t s = 0; s < cells.n_used(); ++s) {
    if (evictable(cells, s)) cells.scores()[s] += abar_[static_cast<size_t>(s)];
  }
  mirror_scores(view.lanes);
}

void H2oPolicy::plan(const KvLayerView& view, EvictionPlan& plan) {
  plan.reset(Granularity::kLayer, static_cast<int32_t>(view.lanes.size()));
  const KvCells& cells = view.lanes[0];
  const int32_t over = overflow(cells, view);
  if (over <= 0) return;
  const int32_t recent = config_.effective_recent();
  pick_lowest(
      *this, cells, over, [&](int32_t s) { return cells.score(s); },
      [&](int32_t s) { return cells.pos(s) > view.newest_pos - recent; }, plan.slots[0]);
}

}  // namespace momentkv
