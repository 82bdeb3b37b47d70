// `h2o` (Zhang et al. 2023): each token's score is its attention accumulated over every query
// since it entered the cache (head-mean, per layer); the `recent` newest tokens are always kept,
// and among the others the lowest score is evicted. With recent = 0 it chooses exactly what
// `moment` with alpha = 1 chooses.
#pragma once

#include "core/kv/kv_policy.h"

namespace momentkv {

class H2oPolicy final : public KvPolicy {
 public:
  using KvPolicy::KvPolicy;
  const char* name() const override { return "h2o"; }
  bool uses_attention() const override { return true; }
  void observe(KvLayerView& view) override;
  void plan(const KvLayerView& view, EvictionPlan& plan) override;

 private:
  std::vector<float> abar_;
};

}  // namespace momentkv
