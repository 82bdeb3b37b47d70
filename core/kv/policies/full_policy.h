// `full`: no eviction. The cache holds the prompt plus decode_budget generated tokens; when that
// is reached the generation ends with finish reason "length".
#pragma once

#include "core/kv/kv_policy.h"

namespace momentkv {

class FullPolicy final : public KvPolicy {
 public:
  using KvPolicy::KvPolicy;
  const char* name() const override { return "full"; }
  void plan(const KvLayerView& view, EvictionPlan& plan) override;
};

}  // namespace momentkv
