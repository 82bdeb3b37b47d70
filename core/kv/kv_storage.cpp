#include "core/kv/kv_storage.h"

#include <new>

#include "core/util/checked_math.h"
#include "core/util/error.h"

namespace momentkv {

uint64_t KvStorage::bytes_needed(KvType type, int32_t n_lanes, int32_t capacity, int32_t head_dim) {
  const uint64_t row = kv_row_bytes(type, head_dim);
  const auto lane = checked_mul(2 * row, static_cast<uint64_t>(capacity));
  const auto total = lane ? checked_mul(*lane, static_cast<uint64_t>(n_lanes)) : std::nullopt;
  check(total.has_value(), "KV size overflows");
  return *total;
}

KvStorage::KvStorage(KvType type, int32_t n_lanes, int32_t capacity, int32_t head_dim)
    : type_(type), n_lanes_(n_lanes), capacity_(capacity), head_dim_(head_dim) {
  check(n_lanes > 0 && capacity > 0 && head_dim > 0,
        "KvStorage: invalid shape " + std::to_string(n_lanes) + " lanes x " +
            std::to_string(capacity) + " slots x " + std::to_string(head_dim));
  row_bytes_ = kv_row_bytes(type, head_dim);
  lane_half_ = row_bytes_ * static_cast<uint64_t>(capacity);
  lane_bytes_ = 2 * lane_half_;
  bytes_ = bytes_needed(type, n_lanes, capacity, head_dim);
  arena_.reset(static_cast<uint8_t*>(std::calloc(bytes_, 1)));
  if (!arena_) throw std::bad_alloc();
}

void KvStorage::write(int32_t lane, int32_t slot, const float* k_row, const float* v_row) {
  kv_encode_row(type_, k_row, k(lane, slot), head_dim_);
  kv_encode_row(type_, v_row, v(lane, slot), head_dim_);
}

void KvStorage::move(int32_t lane, int32_t from, int32_t to) {
  if (from == to) return;
  std::memcpy(k(lane, to), k(lane, from), row_bytes_);
  std::memcpy(v(lane, to), v(lane, from), row_bytes_);
}

}  // namespace momentkv
