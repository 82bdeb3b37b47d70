// Bookkeeping for the slots of one KV lane (one layer's, or one layer-and-KV-head's, keys and
// values): which slots are occupied, the position each holds, its region (prompt or generated),
// when it was written, and the policy's score. Occupied slots are always 0..n_used()-1; a freed
// slot is filled by moving the last one into it (swap-with-last compaction).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace momentkv {

enum class Region : uint8_t { kPrefill, kDecode };

class KvCells {
 public:
  explicit KvCells(int32_t capacity = 0);

  int32_t capacity() const { return capacity_; }
  int32_t n_used() const { return n_used_; }
  int32_t n_prefill() const { return n_prefill_; }
  int32_t n_decode() const { return n_used_ - n_prefill_; }

  // Occupies the next slot (index n_used()) with a token at `pos` written at decode step `step`;
  // its score starts at 0. Precondition: n_used() < capacity().
  int32_t add(int32_t pos, Region region, int64_t step);
  // Frees `slot` by moving the last occupied slot into it; returns the index that was moved from
  // (== slot when slot was the last). The storage must mirror the same move.
  int32_t remove(int32_t slot);
  void clear();

  const int32_t* positions() const { return pos_.data(); }  // [n_used]
  int32_t pos(int32_t slot) const { return pos_[idx(slot)]; }
  Region region(int32_t slot) const { return region_[idx(slot)]; }
  int64_t birth(int32_t slot) const { return birth_[idx(slot)]; }
  float score(int32_t slot) const { return score_[idx(slot)]; }
  float* scores() { return score_.data(); }  // [n_used], owned by the policy
  const float* scores() const { return score_.data(); }

  // Throws Error if the bookkeeping is inconsistent: counts out of range, duplicate positions,
  // prefill count wrong, a score that is not finite.
  void check_invariants() const;

 private:
  static size_t idx(int32_t s) { return static_cast<size_t>(s); }
  int32_t capacity_;
  int32_t n_used_ = 0;
  int32_t n_prefill_ = 0;
  std::vector<int32_t> pos_;    // [capacity]
  std::vector<Region> region_;  // [capacity]
  std::vector<int64_t> birth_;  // [capacity]
  std::vector<float> score_;    // [capacity]
};

}  // namespace momentkv
