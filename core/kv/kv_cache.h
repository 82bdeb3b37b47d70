// Per-sequence KV storage: K and V for every layer and cell, preallocated once, with the position
// each cell holds. Keys are stored after RoPE. (Eviction policies build on this in core/kv/.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace momentkv {

class KvCache {
 public:
  // Storage for `capacity` cells of n_layer × n_embd_kv f32 values each, for K and for V.
  KvCache(int32_t n_layer, int32_t n_embd_kv, int32_t capacity);

  int32_t capacity() const { return capacity_; }
  int32_t n_used() const { return n_used_; }
  int32_t n_embd_kv() const { return n_embd_kv_; }
  uint64_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

  // Appends n cells with positions pos[0..n); returns the index of the first. Precondition:
  // n_used() + n <= capacity().
  int32_t append(const int32_t* pos, int32_t n);
  void clear() { n_used_ = 0; }

  // [n_embd_kv] row of cell `cell` in layer `layer`.
  float* k(int32_t layer, int32_t cell) { return k_.data() + offset(layer, cell); }
  float* v(int32_t layer, int32_t cell) { return v_.data() + offset(layer, cell); }
  const float* k(int32_t layer, int32_t cell) const { return k_.data() + offset(layer, cell); }
  const float* v(int32_t layer, int32_t cell) const { return v_.data() + offset(layer, cell); }
  int32_t pos(int32_t cell) const { return pos_[static_cast<size_t>(cell)]; }

 private:
  size_t offset(int32_t layer, int32_t cell) const {
    return (static_cast<size_t>(layer) * capacity_ + static_cast<size_t>(cell)) * n_embd_kv_;
  }
  int32_t n_layer_, n_embd_kv_, capacity_;
  int32_t n_used_ = 0;
  std::vector<float> k_, v_;  // [n_layer][capacity][n_embd_kv]
  std::vector<int32_t> pos_;  // [capacity]
};

}  // namespace momentkv
