#include "core/kv/kv_policy.h"

#include <algorithm>

#include "core/kv/policies/full_policy.h"
#include "core/kv/policies/h2o_policy.h"
#include "core/kv/policies/moment_policy.h"
#include "core/kv/policies/scope_policy.h"
#include "core/kv/policies/streaming_policy.h"
#include "core/kv/policies/tova_policy.h"
#include "core/util/error.h"

namespace momentkv {

float KvLayerView::layer_mean(int32_t slot) const {
  float sum = 0.0f;
  for (size_t l = 0; l < lanes.size(); ++l) {
    sum += attn[static_cast<size_t>(attn_stride) * l + static_cast<size_t>(slot)];
  }
  return sum / static_cast<float>(static_cast<int64_t>(lanes.size()) * heads_per_lane *
                                  std::max(n_queries, 1));
}

float KvLayerView::lane_mean(int32_t lane, int32_t slot) const {
  return attn[static_cast<size_t>(attn_stride) * static_cast<size_t>(lane) +
              static_cast<size_t>(slot)] /
         static_cast<float>(heads_per_lane * std::max(n_queries, 1));
}

void KvLayerView::layer_means(std::vector<float>& out) const {
  const int32_t n = lanes[0].n_used();
  out.assign(static_cast<size_t>(n), 0.0f);
  for (size_t l = 0; l < lanes.size(); ++l) {
    const float* a = attn + static_cast<size_t>(attn_stride) * l;
    for (int32_t s = 0; s < n; ++s) out[static_cast<size_t>(s)] += a[s];
  }
  const float inv = 1.0f / static_cast<float>(static_cast<int64_t>(lanes.size()) * heads_per_lane *
                                              std::max(n_queries, 1));
  for (auto& v : out) v *= inv;
}

void mirror_scores(std::span<KvCells> lanes) {
  for (size_t l = 1; l < lanes.size(); ++l) {
    std::copy(lanes[0].scores(), lanes[0].scores() + lanes[0].n_used(), lanes[l].scores());
  }
}

void EvictionPlan::reset(Granularity g, int32_t n_lanes) {
  granularity = g;
  const size_t n = g == Granularity::kLayer ? 1 : static_cast<size_t>(n_lanes);
  if (slots.size() < n) slots.resize(n);
  slots.resize(n);
  for (auto& s : slots) s.clear();
}

int32_t EvictionPlan::total() const {
  int32_t t = 0;
  for (const auto& s : slots) t += static_cast<int32_t>(s.size());
  return t;
}

int32_t KvPolicy::overflow(const KvCells& cells, const KvLayerView& view) const {
  if (config_.scope == KvScope::kDecode)
    return std::max(0, cells.n_decode() - config_.decode_budget);
  return std::max(0, cells.n_used() - (view.prompt_tokens + config_.decode_budget));
}

bool KvPolicy::evictable(const KvCells& cells, int32_t slot) const {
  return config_.scope == KvScope::kUnified || cells.region(slot) == Region::kDecode;
}

std::unique_ptr<KvPolicy> make_policy(const KvConfig& c) {
  if (auto err = c.validate()) throw Error("invalid KV configuration: " + *err);
  if (c.policy == "full") return std::make_unique<FullPolicy>(c);
  if (c.policy == "moment") return std::make_unique<MomentPolicy>(c);
  if (c.policy == "h2o") return std::make_unique<H2oPolicy>(c);
  if (c.policy == "tova") return std::make_unique<TovaPolicy>(c);
  if (c.policy == "streaming") return std::make_unique<StreamingPolicy>(c);
  return std::make_unique<ScopePolicy>(c);
}

}  // namespace momentkv
