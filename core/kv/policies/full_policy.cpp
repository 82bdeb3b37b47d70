#include "core/kv/policies/full_policy.h"

namespace momentkv {

void FullPolicy::plan(const KvLayerView& view, EvictionPlan& plan) {
  plan.reset(Granularity::kLayer, static_cast<int32_t>(view.lanes.size()));
}

}  // namespace momentkv
