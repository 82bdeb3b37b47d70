// K and V rows of every lane, preallocated once in one byte arena and never reallocated per
// token. A lane is one (layer, KV head): its K rows are [capacity][row_bytes], then its V rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/kv/kv_type.h"

namespace momentkv {

class KvStorage {
 public:
  KvStorage() = default;
  // Allocates n_lanes × capacity rows of K and of V (zeroed). The arena comes from calloc: a large
  // one is a fresh mapping whose pages become resident only as rows are written, and are
  // returned to the kernel when it is freed.
  KvStorage(KvType type, int32_t n_lanes, int32_t capacity, int32_t head_dim);

  // Bytes the arena of such a storage takes.
  static uint64_t bytes_needed(KvType type, int32_t n_lanes, int32_t capacity, int32_t head_dim);

  KvType type() const { return type_; }
  int32_t head_dim() const { return head_dim_; }
  int32_t capacity() const { return capacity_; }
  uint64_t row_bytes() const { return row_bytes_; }
  uint64_t bytes() const { return bytes_; }

  // Row pointers: lane in [0, n_lanes), slot in [0, capacity).
  uint8_t* k(int32_t lane, int32_t slot) { return base(lane) + row_bytes_ * slot_index(slot); }
  uint8_t* v(int32_t lane, int32_t slot) { return k(lane, slot) + lane_half_; }
  const uint8_t* k(int32_t lane, int32_t slot) const {
    return base(lane) + row_bytes_ * slot_index(slot);
  }
  const uint8_t* v(int32_t lane, int32_t slot) const { return k(lane, slot) + lane_half_; }

  // Encodes f32 k and v (head_dim each) into `slot` of `lane`.
  void write(int32_t lane, int32_t slot, const float* k_row, const float* v_row);
  // Copies the rows of slot `from` onto slot `to` (compaction).
  void move(int32_t lane, int32_t from, int32_t to);

 private:
  uint8_t* base(int32_t lane) { return arena_.get() + lane_bytes_ * static_cast<uint64_t>(lane); }
  const uint8_t* base(int32_t lane) const {
    return arena_.get() + lane_bytes_ * static_cast<uint64_t>(lane);
  }
  static uint64_t slot_index(int32_t s) { return static_cast<uint64_t>(s); }

  KvType type_ = KvType::kF16;
  int32_t n_lanes_ = 0, capacity_ = 0, head_dim_ = 0;
  uint64_t row_bytes_ = 0, lane_half_ = 0, lane_bytes_ = 0, bytes_ = 0;
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> arena_;
};

}  // namespace momentkv
