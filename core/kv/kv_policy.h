// The eviction-policy interface. A policy only decides: it updates per-slot scores from the
// attention of a step and returns a plan; KvCache::apply executes it. Policies are deterministic
// (no clock, no randomness) so that tests can replay scripted attention traces.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/kv/kv_cells.h"
#include "core/kv/kv_config.h"

namespace momentkv {

// What a policy sees of one layer after its attention ran.
struct KvLayerView {
  int32_t layer = 0;
  std::span<KvCells> lanes;  // the layer's lanes: one per KV head
  // attn[lane * attn_stride + slot]: sum over the query heads of that lane's group (and over the
  // observed queries) of the softmax probability on `slot`, normalised over the whole row
  // (prefill + decode). Null when no attention was observed for this call.
  const float* attn = nullptr;
  int32_t attn_stride = 0;
  int32_t heads_per_lane = 1;  // query heads sharing a KV head (GQA group size)
  int32_t n_queries = 0;       // queries whose attention was summed (1 in a decode step)
  int64_t step = 0;            // decode steps so far, the current one included
  int32_t newest_pos = 0;      // position of the newest token
  int32_t prompt_tokens = 0;   // prompt tokens resident at the end of prefill (unified limit)

  // Mean attention of the layer's query heads on `slot` (all lanes hold the same slots when the
  // granularity is per layer).
  float layer_mean(int32_t slot) const;
  // Mean attention of lane `lane`'s query heads on `slot`.
  float lane_mean(int32_t lane, int32_t slot) const;
  // Fills out[0..n_used) with layer_mean of every slot of the layer's lanes (one pass).
  void layer_means(std::vector<float>& out) const;
};

// Slots to free. Per layer: one list applied to every lane; per KV head: one list per lane.
struct EvictionPlan {
  Granularity granularity = Granularity::kLayer;
  std::vector<std::vector<int32_t>> slots;  // [1] (layer) or [n_lanes] (kv_head)

  void reset(Granularity g, int32_t n_lanes);
  int32_t total() const;
};

class KvPolicy {
 public:
  explicit KvPolicy(const KvConfig& config) : config_(config) {}
  virtual ~KvPolicy() = default;

  virtual const char* name() const = 0;
  // Whether observe() needs the attention statistics of decode steps.
  virtual bool uses_attention() const { return false; }
  virtual Granularity granularity() const { return Granularity::kLayer; }
  // Updates the scores in `view.lanes` from this step's attention (decode steps only).
  virtual void observe(KvLayerView& view) { (void)view; }
  // Fills `plan` with the slots to evict so that every lane is back within its limit.
  virtual void plan(const KvLayerView& view, EvictionPlan& plan) = 0;

  const KvConfig& config() const { return config_; }
  // Tokens over the limit in a lane: generated tokens over the budget (decode scope), or all
  // tokens over prompt + budget (unified scope).
  int32_t overflow(const KvCells& cells, const KvLayerView& view) const;
  // Whether `slot` may be evicted under the scope (decode scope: generated tokens only).
  bool evictable(const KvCells& cells, int32_t slot) const;

 protected:
  KvConfig config_;
};

// Sets every lane's scores to lane 0's (per-layer policies keep the lanes of a layer identical).
void mirror_scores(std::span<KvCells> lanes);

// Creates the policy named by config.policy. Throws Error for an invalid config.
std::unique_ptr<KvPolicy> make_policy(const KvConfig& config);

// Picks the `count` evictable slots of `cells` with the smallest key(slot) (ties: the older token,
// i.e. the smaller position), skipping slots for which skip(slot) is true; if fewer than `count`
// remain, the skipped ones are taken too (oldest first by key). Appends them to `out`.
template <typename Key, typename Skip>
void pick_lowest(const KvPolicy& policy, const KvCells& cells, int32_t count, Key key, Skip skip,
                 std::vector<int32_t>& out);

}  // namespace momentkv

#include "core/kv/kv_policy_inl.h"
