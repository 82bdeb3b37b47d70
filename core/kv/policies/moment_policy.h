// `moment`: Moment-KV (DESIGN.md §5). Per layer, every decode step:
//   score_i = alpha * score_i + abar_i,  abar_i = mean over all query heads of the attention
//   probability on slot i (row-normalised over prefill + decode);
// then, while the decode region exceeds decode_budget, evict the lowest score (tie: the older).
// The prefill region is frozen in decode scope. Options beyond the paper (off in paper mode):
// grace (minimum residency in steps), normalize (bias-corrected score
// I / ((1 - alpha^age) / (1 - alpha))), granularity kv_head (per-KV-head scores and eviction).
// alpha = 0 chooses exactly what `tova` chooses; alpha = 1 what `h2o` without a recent window does.
#pragma once

#include "core/kv/kv_policy.h"

namespace momentkv {

class MomentPolicy final : public KvPolicy {
 public:
  using KvPolicy::KvPolicy;
  const char* name() const override { return "moment"; }
  bool uses_attention() const override { return true; }
  Granularity granularity() const override { return config_.granularity; }
  void observe(KvLayerView& view) override;
  void plan(const KvLayerView& view, EvictionPlan& plan) override;

  // The score eviction compares: raw, or bias-corrected for a token resident `age` steps.
  float effective_score(float score, int64_t age) const;

 private:
  std::vector<float> abar_;  // [n_used] scratch, reused every step
};

}  // namespace momentkv
