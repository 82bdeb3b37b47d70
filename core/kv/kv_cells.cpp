#include "core/kv/kv_cells.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/util/error.h"

namespace momentkv {

KvCells::KvCells(int32_t capacity)
    : capacity_(capacity),
      pos_(idx(capacity), -1),
      region_(idx(capacity), Region::kPrefill),
      birth_(idx(capacity), 0),
      score_(idx(capacity), 0.0f) {}

int32_t KvCells::add(int32_t pos, Region region, int64_t step) {
  check(n_used_ < capacity_,
        [&] { return "KV lane full: " + std::to_string(capacity_) + " slots"; });
  const int32_t s = n_used_++;
  pos_[idx(s)] = pos;
  region_[idx(s)] = region;
  birth_[idx(s)] = step;
  score_[idx(s)] = 0.0f;
  if (region == Region::kPrefill) ++n_prefill_;
  return s;
}

int32_t KvCells::remove(int32_t slot) {
  check(slot >= 0 && slot < n_used_,
        [&] { return "KV remove: slot " + std::to_string(slot) + " not in use"; });
  if (region_[idx(slot)] == Region::kPrefill) --n_prefill_;
  const int32_t last = --n_used_;
  if (slot != last) {
    pos_[idx(slot)] = pos_[idx(last)];
    region_[idx(slot)] = region_[idx(last)];
    birth_[idx(slot)] = birth_[idx(last)];
    score_[idx(slot)] = score_[idx(last)];
  }
  pos_[idx(last)] = -1;
  return last;
}

void KvCells::clear() {
  for (int32_t s = 0; s < n_used_; ++s) pos_[idx(s)] = -1;
  n_used_ = 0;
  n_prefill_ = 0;
}

void KvCells::check_invariants() const {
  check(n_used_ >= 0 && n_used_ <= capacity_, [&] {
    return "KV invariant: n_used " + std::to_string(n_used_) + " > capacity " +
           std::to_string(capacity_);
  });
  int32_t prefill = 0;
  std::vector<int32_t> held;  // one allocation, sorted to find a position held twice
  held.reserve(static_cast<size_t>(n_used_));
  for (int32_t s = 0; s < n_used_; ++s) {
    check(pos_[idx(s)] >= 0,
          [&] { return "KV invariant: slot " + std::to_string(s) + " has no position"; });
    check(std::isfinite(score_[idx(s)]),
          [&] { return "KV invariant: slot " + std::to_string(s) + " has a non-finite score"; });
    held.push_back(pos_[idx(s)]);
    if (region_[idx(s)] == Region::kPrefill) ++prefill;
  }
  std::sort(held.begin(), held.end());
  const auto twice = std::adjacent_find(held.begin(), held.end());
  check(twice == held.end(),
        [&] { return "KV invariant: position " + std::to_string(*twice) + " held twice"; });
  check(prefill == n_prefill_, [&] {
    return "KV invariant: prefill count " + std::to_string(n_prefill_) + " but " +
           std::to_string(prefill) + " prefill slots";
  });
  for (int32_t s = n_used_; s < capacity_; ++s) {
    check(pos_[idx(s)] == -1,
          [&] { return "KV invariant: free slot " + std::to_string(s) + " has a position"; });
  }
}

}  // namespace momentkv
