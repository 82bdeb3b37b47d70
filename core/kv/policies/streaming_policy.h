// `streaming` (StreamingLLM, Xiao et al. 2024): attention sinks plus a window of the most recent
// tokens; the oldest token outside the sinks is evicted. Decode scope: the frozen prompt plays the
// sinks' part and the generated tokens form the window. Unified: the first `sinks` positions of
// the sequence are kept and everything else slides. Positions are not re-indexed (keys keep their
// original RoPE positions).
#pragma once

#include "core/kv/kv_policy.h"

namespace momentkv {

class StreamingPolicy final : public KvPolicy {
 public:
  using KvPolicy::KvPolicy;
  const char* name() const override { return "streaming"; }
  void plan(const KvLayerView& view, EvictionPlan& plan) override;
};

}  // namespace momentkv
