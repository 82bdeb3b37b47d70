#include "core/kv/snapkv_compressor.h"

#include <algorithm>

namespace momentkv {

void SnapKvCompressor::plan(std::span<const KvCells> lanes, const float* attn, int32_t attn_stride,
                            int32_t newest_pos, EvictionPlan& plan) {
  plan.reset(Granularity::kKvHead, static_cast<int32_t>(lanes.size()));
  const int32_t keep_total = config_.prefill_budget;
  const int32_t window = config_.snapkv_window;
  const int32_t half = config_.snapkv_kernel / 2;
  for (size_t l = 0; l < lanes.size(); ++l) {
    const KvCells& cells = lanes[l];
    if (cells.n_prefill() <= keep_total) continue;
    order_.clear();
    for (int32_t s = 0; s < cells.n_used(); ++s) {
      if (cells.region(s) == Region::kPrefill) order_.push_back(s);
    }
    std::sort(order_.begin(), order_.end(),
              [&](int32_t a, int32_t b) { return cells.pos(a) < cells.pos(b); });
    const float* a = attn + static_cast<size_t>(attn_stride) * l;
    const int32_t n = static_cast<int32_t>(order_.size());
    // Average pooling along positions (neighbours in the kept prompt, clipped at the ends).
    pooled_.assign(static_cast<size_t>(n), 0.0f);
    for (int32_t i = 0; i < n; ++i) {
      const int32_t lo = std::max(0, i - half), hi = std::min(n - 1, i + half);
      float s = 0.0f;
      for (int32_t j = lo; j <= hi; ++j) s += a[order_[static_cast<size_t>(j)]];
      pooled_[static_cast<size_t>(i)] = s / static_cast<float>(hi - lo + 1);
    }
    // The observation window (the newest `window` positions) is always kept.
    ranked_.clear();
    for (int32_t i = 0; i < n; ++i) {
      if (cells.pos(order_[static_cast<size_t>(i)]) <= newest_pos - window) ranked_.push_back(i);
    }
    const int32_t n_window = n - static_cast<int32_t>(ranked_.size());
    const int32_t keep = std::max(0, keep_total - n_window);
    if (static_cast<int32_t>(ranked_.size()) <= keep) continue;
    // Highest pooled score first; ties keep the older token.
    std::stable_sort(ranked_.begin(), ranked_.end(), [&](int32_t x, int32_t y) {
      return pooled_[static_cast<size_t>(x)] > pooled_[static_cast<size_t>(y)];
    });
    auto& out = plan.slots[l];
    for (size_t k = static_cast<size_t>(keep); k < ranked_.size(); ++k) {
      out.push_back(order_[static_cast<size_t>(ranked_[k])]);
    }
  }
}

}  // namespace momentkv
