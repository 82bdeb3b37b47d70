// The KV cache of one sequence: storage (preallocated rows) + cells (bookkeeping per lane) +
// policy (decides evictions). The engine appends tokens, runs each layer's attention over the
// lanes, then calls after_attention(), which lets the policy observe and plan and applies the
// plan by swap-with-last compaction.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/kv/kv_cells.h"
#include "core/kv/kv_config.h"
#include "core/kv/kv_policy.h"
#include "core/kv/kv_storage.h"
#include "core/kv/snapkv_compressor.h"

namespace momentkv {

// What compression did to one generation (ready-made telemetry).
struct KvStats {
  int64_t evicted = 0;         // slots freed by decode-time eviction, summed over all lanes
  int64_t evicted_tokens = 0;  // evictions in layer 0, lane 0 (decode-time policies)
  int64_t prompt_evicted = 0;  // prompt tokens dropped by prefill compression (layer 0, lane 0)
  int32_t resident_peak = 0;   // most slots occupied in any lane
  uint64_t kv_bytes = 0;       // bytes reserved for K and V
  bool context_altered() const { return evicted > 0 || prompt_evicted > 0; }
};

class KvCache {
 public:
  // A cache for a prompt of up to `max_prompt` tokens plus the decode region of `config`.
  KvCache(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t max_prompt,
          const KvConfig& config);

  // Bytes a cache of this shape reserves (K and V rows; bookkeeping not included).
  static uint64_t bytes_needed(int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                               int32_t max_prompt, const KvConfig& config);
  // Slots per lane for a prompt of max_prompt tokens: prompt (or, when it is compressed,
  // prefill_budget + prefill_chunk) + budget (+1 when evicting, for the newcomer that is written
  // before the eviction).
  static int32_t lane_capacity(int32_t max_prompt, const KvConfig& config);

  const KvConfig& config() const { return config_; }
  KvPolicy& policy() { return *policy_; }
  int32_t n_layer() const { return n_layer_; }
  int32_t n_head_kv() const { return n_head_kv_; }
  int32_t capacity() const { return capacity_; }
  KvStorage& storage() { return storage_; }
  const KvStorage& storage() const { return storage_; }
  KvCells& cells(int32_t layer, int32_t kv_head) { return lanes_[lane(layer, kv_head)]; }
  const KvCells& cells(int32_t layer, int32_t kv_head) const {
    return lanes_[lane(layer, kv_head)];
  }
  static int32_t lane_index(int32_t layer, int32_t kv_head, int32_t n_head_kv) {
    return layer * n_head_kv + kv_head;
  }

  // Whether n more tokens of `region` fit: prompt tokens up to max_prompt; generated tokens up to
  // the budget for `full` (evicting policies always have room).
  bool can_append(int32_t n, Region region) const;
  // Adds n tokens at positions pos[0..n) to every lane (slots at the end of each lane).
  void append(const int32_t* pos, int32_t n, Region region);
  // Slot of the i-th token added by the last append() in lane (layer, kv_head).
  int32_t appended_slot(int32_t layer, int32_t kv_head, int32_t i) const;

  // Attention statistics buffer for one layer: [n_head_kv][capacity], zeroed; the attention
  // kernel adds probabilities into it. Null when the policy does not use attention.
  float* begin_layer_stats(int32_t layer, bool decode_step);
  // For a prompt chunk of n tokens: when it leaves more prompt tokens than prefill_budget, a
  // zeroed statistics buffer and the first query index to observe (SnapKV's window); else null.
  float* begin_prefill_stats(int32_t layer, int32_t n_tokens, int32_t* observe_from);
  int32_t stats_stride() const { return capacity_; }
  // Gathers attention statistics on decode steps even when the policy needs none (diagnostics).
  void enable_attention_stats();
  // The statistics of the layer whose attention ran last: [n_head_kv][stats_stride()], or null.
  const float* layer_stats() const { return stats_buf_.empty() ? nullptr : stats_buf_.data(); }
  // After layer `layer`'s attention: observe (decode steps), plan and apply evictions.
  void after_attention(int32_t layer, int32_t heads_per_lane, int32_t n_queries, bool decode_step);

  int64_t step() const { return step_; }
  const KvStats& stats() const { return stats_; }
  // Slots evicted at decode time in `layer`, summed over its lanes.
  int64_t evicted_in_layer(int32_t layer) const {
    return evicted_by_layer_[static_cast<size_t>(layer)];
  }
  void clear();
  // Throws Error when storage and bookkeeping disagree or an invariant is broken.
  void check_invariants() const;

 private:
  size_t lane(int32_t layer, int32_t kv_head) const {
    return static_cast<size_t>(lane_index(layer, kv_head, n_head_kv_));
  }
  // Frees the planned slots by swap-with-last; `prompt`: counted as prefill compression.
  void apply(int32_t layer, const EvictionPlan& plan, bool prompt);

  KvConfig config_;
  int32_t n_layer_, n_head_kv_, head_dim_, max_prompt_, prompt_capacity_, capacity_;
  std::unique_ptr<KvPolicy> policy_;
  SnapKvCompressor snapkv_;
  KvStorage storage_;
  std::vector<KvCells> lanes_;             // [n_layer * n_head_kv]
  std::vector<int64_t> evicted_by_layer_;  // [n_layer]
  std::vector<float> stats_buf_;           // [n_head_kv][capacity]
  EvictionPlan plan_;
  std::vector<int32_t> sorted_;
  int64_t step_ = 0;
  int32_t prompt_tokens_ = 0;  // prompt tokens resident (after any prefill compression)
  int32_t prompt_seen_ = 0;    // prompt tokens appended since clear()
  int32_t newest_pos_ = 0;
  int32_t n_last_append_ = 0;
  KvStats stats_;
};

}  // namespace momentkv
