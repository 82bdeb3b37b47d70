// SnapKV prefill compression (Li et al. 2024), used only when a prompt alone exceeds its share
// (KvConfig::prefill_budget). Per KV head: the attention of the last `snapkv_window` prompt
// queries, summed over them and the head's query group, is average-pooled along positions
// (kernel `snapkv_kernel`); the observation window itself and the top (prefill_budget - window)
// older tokens by pooled score are kept, the rest evicted.
//
// Adaptation for a bounded cache: the prompt is processed in chunks and compressed after every
// chunk that leaves more than prefill_budget prompt tokens, each time with the last window of
// queries of that chunk (for the final chunk this is exactly SnapKV's observation window).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/kv/kv_cells.h"
#include "core/kv/kv_config.h"
#include "core/kv/kv_policy.h"

namespace momentkv {

class SnapKvCompressor {
 public:
  explicit SnapKvCompressor(const KvConfig& config) : config_(config) {}

  // Fills `plan` (per KV head) with the prompt slots to evict from each lane so that at most
  // prefill_budget prompt tokens stay. attn: [lanes][attn_stride] sums over the observed queries.
  void plan(std::span<const KvCells> lanes, const float* attn, int32_t attn_stride,
            int32_t newest_pos, EvictionPlan& plan);

 private:
  KvConfig config_;
  std::vector<int32_t> order_;   // prompt slots of a lane in position order
  std::vector<float> pooled_;    // pooled score per entry of order_
  std::vector<int32_t> ranked_;  // candidate indices into order_
};

}  // namespace momentkv
