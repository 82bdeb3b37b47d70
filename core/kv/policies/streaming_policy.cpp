#include "core/kv/policies/streaming_policy.h"

namespace momentkv {

void StreamingPolicy::plan(const KvLayerView& view, EvictionPlan& plan) {
  plan.reset(Granularity::kLayer, static_cast<int32_t>(view.lanes.size()));
  const KvCells& cells = view.lanes[0];
  const int32_t over = overflow(cells, view);
  if (over <= 0) return;
  const int32_t sinks = config_.scope == KvScope::kUnified ? config_.sinks : 0;
  pick_lowest(
      *this, cells, over, [&](int32_t s) { return static_cast<float>(cells.pos(s)); },
      [&](int32_t s) { return cells.pos(s) < sinks; }, plan.slots[0]);
}

}  // namespace momentkv
