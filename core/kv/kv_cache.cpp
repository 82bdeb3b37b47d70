#include "core/kv/kv_cache.h"

#include <algorithm>

#include "core/util/error.h"

namespace momentkv {

namespace {
int32_t prompt_slots(int32_t max_prompt, const KvConfig& c) {
  return c.compresses_prompt(max_prompt)
             ? std::min(max_prompt, c.prefill_budget + std::max(c.prefill_chunk, 1))
             : max_prompt;
}
}  // namespace

int32_t KvCache::lane_capacity(int32_t max_prompt, const KvConfig& c) {
  return prompt_slots(max_prompt, c) + c.decode_budget + (c.evicts() ? 1 : 0);
}

uint64_t KvCache::bytes_needed(int32_t n_layer, int32_t n_head_kv, int32_t head_dim,
                               int32_t max_prompt, const KvConfig& c) {
  return KvStorage::bytes_needed(c.type, n_layer * n_head_kv, lane_capacity(max_prompt, c),
                                 head_dim);
}

KvCache::KvCache(int32_t n_layer, int32_t n_head_kv, int32_t head_dim, int32_t max_prompt,
                 const KvConfig& config)
    : config_(config),
      n_layer_(n_layer),
      n_head_kv_(n_head_kv),
      head_dim_(head_dim),
      max_prompt_(max_prompt),
      prompt_capacity_(prompt_slots(max_prompt, config)),
      capacity_(lane_capacity(max_prompt, config)),
      policy_(make_policy(config)),
      snapkv_(config),
      storage_(config.type, n_layer * n_head_kv, capacity_, head_dim),
      lanes_(static_cast<size_t>(n_layer * n_head_kv), KvCells(capacity_)),
      evicted_by_layer_(static_cast<size_t>(n_layer), 0) {
  check(max_prompt >= 1, "KvCache: max_prompt must be >= 1");
  if (policy_->uses_attention() || config.compresses_prompt(max_prompt)) {
    stats_buf_.assign(static_cast<size_t>(n_head_kv) * capacity_, 0);
  }
  stats_.kv_bytes = storage_.bytes();
}

bool KvCache::can_append(int32_t n, Region region) const {
  const KvCells& c = lanes_[0];
  // A plain cache (full, no decode budget) is shared by prompt and generated tokens.
  if (!config_.evicts() && config_.decode_budget == 0) return c.n_used() + n <= capacity_;
  if (region == Region::kPrefill) {
    if (prompt_seen_ + n > max_prompt_) return false;
    // A compressed prompt goes in chunks of at most prefill_chunk tokens, each compressed after
    // its attention, so any prompt up to max_prompt fits.
    if (config_.compresses_prompt(max_prompt_)) return true;
    return c.n_prefill() + n <= prompt_capacity_;
  }
  if (!config_.evicts()) return c.n_decode() + n <= config_.decode_budget;
  // Evicting policies free room after each layer; a step adds at most the +1 slack.
  return n <= 1 || c.n_used() + n <= capacity_;
}

void KvCache::append(const int32_t* pos, int32_t n, Region region) {
  check(can_append(n, region) && lanes_[0].n_used() + n <= capacity_,
        std::string("KV cache full: cannot add ") + std::to_string(n) +
            (region == Region::kPrefill ? " prompt" : " generated") + " tokens");
  if (region == Region::kDecode) step_ += n;
  if (region == Region::kPrefill) prompt_seen_ += n;
  for (auto& cells : lanes_) {
    for (int32_t i = 0; i < n; ++i)
      cells.add(pos[i], region, region == Region::kDecode ? step_ : 0);
  }
  n_last_append_ = n;
  for (int32_t i = 0; i < n; ++i) newest_pos_ = std::max(newest_pos_, pos[i]);
  if (region == Region::kPrefill) prompt_tokens_ = lanes_[0].n_prefill();
  for (const auto& cells : lanes_)
    stats_.resident_peak = std::max(stats_.resident_peak, cells.n_used());
}

int32_t KvCache::appended_slot(int32_t layer, int32_t kv_head, int32_t i) const {
  return lanes_[lane(layer, kv_head)].n_used() - n_last_append_ + i;
}

void KvCache::enable_attention_stats() {
  if (stats_buf_.empty()) stats_buf_.assign(static_cast<size_t>(n_head_kv_) * capacity_, 0.0f);
}

float* KvCache::begin_prefill_stats(int32_t layer, int32_t n_tokens, int32_t* observe_from) {
  *observe_from = 0;
  if (stats_buf_.empty() || lanes_[lane(layer, 0)].n_prefill() <= config_.prefill_budget ||
      config_.prefill_budget == 0) {
    return nullptr;
  }
  *observe_from = std::max(0, n_tokens - config_.snapkv_window);
  for (int32_t h = 0; h < n_head_kv_; ++h) {
    float* row = stats_buf_.data() + static_cast<size_t>(h) * static_cast<size_t>(capacity_);
    std::fill(row, row + lanes_[lane(layer, h)].n_used(), 0.0f);
  }
  return stats_buf_.data();
}

float* KvCache::begin_layer_stats(int32_t layer, bool decode_step) {
  if (stats_buf_.empty() || !decode_step) return nullptr;
  // Only the occupied prefix of each lane's row is read back.
  for (int32_t h = 0; h < n_head_kv_; ++h) {
    float* row = stats_buf_.data() + static_cast<size_t>(h) * static_cast<size_t>(capacity_);
    std::fill(row, row + lanes_[lane(layer, h)].n_used(), 0.0f);
  }
  return stats_buf_.data();
}

void KvCache::after_attention(int32_t layer, int32_t heads_per_lane, int32_t n_queries,
                              bool decode_step) {
  std::span<KvCells> layer_lanes(lanes_.data() + lane(layer, 0), static_cast<size_t>(n_head_kv_));
  if (!decode_step && config_.prefill_budget > 0 && !stats_buf_.empty() &&
      layer_lanes[0].n_prefill() > config_.prefill_budget) {
    snapkv_.plan(layer_lanes, stats_buf_.data(), capacity_, newest_pos_, plan_);
    apply(layer, plan_, /*prompt=*/true);
    prompt_tokens_ = layer_lanes[0].n_prefill();
    return;
  }
  if (!config_.evicts()) return;
  KvLayerView view;
  view.layer = layer;
  view.lanes = layer_lanes;
  view.attn = decode_step && !stats_buf_.empty() ? stats_buf_.data() : nullptr;
  view.attn_stride = capacity_;
  view.heads_per_lane = heads_per_lane;
  view.n_queries = n_queries;
  view.step = step_;
  view.newest_pos = newest_pos_;
  view.prompt_tokens = prompt_tokens_;
  if (decode_step) policy_->observe(view);
  policy_->plan(view, plan_);
  if (plan_.total() > 0) apply(layer, plan_, /*prompt=*/false);
}

void KvCache::apply(int32_t layer, const EvictionPlan& plan, bool prompt) {
  for (int32_t h = 0; h < n_head_kv_; ++h) {
    const auto& list = plan.granularity == Granularity::kLayer ? plan.slots[0]
                                                               : plan.slots[static_cast<size_t>(h)];
    if (list.empty()) continue;
    // Free the highest slot first, so that the last slot moved into a freed place is never one
    // that is itself waiting to be freed.
    sorted_.assign(list.begin(), list.end());
    std::sort(sorted_.begin(), sorted_.end(), std::greater<>());
    KvCells& cells = lanes_[lane(layer, h)];
    const int32_t ln = lane_index(layer, h, n_head_kv_);
    for (int32_t s : sorted_) {
      const int32_t moved_from = cells.remove(s);
      storage_.move(ln, moved_from, s);
    }
    const auto n = static_cast<int64_t>(sorted_.size());
    if (prompt) {
      if (layer == 0 && h == 0) stats_.prompt_evicted += n;
    } else {
      stats_.evicted += n;
      evicted_by_layer_[static_cast<size_t>(layer)] += n;
      if (layer == 0 && h == 0) stats_.evicted_tokens += n;
    }
  }
}

void KvCache::clear() {
  for (auto& c : lanes_) c.clear();
  step_ = 0;
  prompt_seen_ = 0;
  prompt_tokens_ = 0;
  newest_pos_ = 0;
  n_last_append_ = 0;
  const uint64_t bytes = stats_.kv_bytes;
  std::fill(evicted_by_layer_.begin(), evicted_by_layer_.end(), 0);
  stats_ = {};
  stats_.kv_bytes = bytes;
}

void KvCache::check_invariants() const {
  for (int32_t l = 0; l < n_layer_; ++l) {
    const KvCells& first = lanes_[lane(l, 0)];
    for (int32_t h = 0; h < n_head_kv_; ++h) {
      const KvCells& c = lanes_[lane(l, h)];
      c.check_invariants();
      check(c.n_used() <= capacity_, "KV invariant: lane over capacity");
      if (config_.evicts()) {
        if (config_.scope == KvScope::kDecode) {
          check(c.n_prefill() == prompt_tokens_ || step_ == 0, [&] {
            return "KV invariant: a prompt token was evicted in decode scope (layer " +
                   std::to_string(l) + ")";
          });
          check(c.n_decode() <= config_.decode_budget, [&] {
            return "KV invariant: " + std::to_string(c.n_decode()) +
                   " generated tokens resident, "
                   "budget " +
                   std::to_string(config_.decode_budget);
          });
        } else {
          check(c.n_used() <= prompt_tokens_ + config_.decode_budget,
                "KV invariant: unified cache over its size");
        }
      }
      if (policy_->granularity() == Granularity::kLayer) {
        check(c.n_used() == first.n_used(), "KV invariant: lanes of a layer differ in size");
        for (int32_t s = 0; s < c.n_used(); ++s) {
          check(c.pos(s) == first.pos(s), "KV invariant: lanes of a layer hold different tokens");
        }
      }
    }
  }
}

}  // namespace momentkv
