#include "core/kv/policies/tova_policy.h"

namespace momentkv {

void TovaPolicy::observe(KvLayerView& view) {
  if (!view.attn) return;
  // The score is only the current step's head-mean attention: no history.
  view.layer_means(abar_);
  KvCells& cells = view.lanes[0];
  for (int32_t s = 0; s < cells.n_used(); ++s) cells.scores()[s] = abar_[static_cast<size_t>(s)];
  mirror_scores(view.lanes);
}

void TovaPolicy::plan(const KvLayerView& view, EvictionPlan& plan) {
  plan.reset(Granularity::kLayer, static_cast<int32_t>(view.lanes.size()));
  const KvCells& cells = view.lanes[0];
  const int32_t over = overflow(cells, view);
  if (over <= 0) return;
  pick_lowest(
      *this, cells, over, [&](int32_t s) { return cells.score(s); }, [](int32_t) { return false; },
      plan.slots[0]);
}

}  // namespace momentkv
