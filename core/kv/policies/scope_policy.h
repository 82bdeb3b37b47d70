// `scope` (SCOPE "slide", Wu et al. 2025): per KV head, keep the `recent` newest tokens and, among
// the older candidates, the ones the current query attends to most (mean over the head's query
// group; no history). Decode scope: candidates are generated tokens (the prompt is kept whole, as
// SCOPE does); unified: any token.
#pragma once

#include "core/kv/kv_policy.h"

namespace momentkv {

class ScopePolicy final : public KvPolicy {
 public:
  using KvPolicy::KvPolicy;
  const char* name() const override { return "scope"; }
  bool uses_attention() const override { return true; }
  Granularity granularity() const override { return Granularity::kKvHead; }
  void observe(KvLayerView& view) override;
  void plan(const KvLayerView& view, EvictionPlan& plan) override;
};

}  // namespace momentkv
