// `tova` (Oren et al. 2024): evict the token with the lowest attention from the current query,
// averaged over all heads of the layer (one eviction set for every KV head). Decode scope limits
// the candidates to generated tokens; unified lets any token go.
#pragma once

#include "core/kv/kv_policy.h"

namespace momentkv {

class TovaPolicy final : public KvPolicy {
 public:
  using KvPolicy::KvPolicy;
  const char* name() const override { return "tova"; }
  bool uses_attention() const override { return true; }
  void observe(KvLayerView& view) override;
  void plan(const KvLayerView& view, EvictionPlan& plan) override;

 private:
  std::vector<float> abar_;
};

}  // namespace momentkv
