// Changes to one layer's KV lanes on the GPU: writing new tokens' keys and values, and Moment-KV's
// eviction (the selection and the swap-with-last compaction, both on the device, so that no
// host round trip happens per layer). The bookkeeping mirrors KvCells: every lane keeps the
// position, birth step and score of each slot; occupied slots are 0..n_used-1, the prompt's
// first (in decode scope they stay there: only generated slots are evicted).
#pragma once

#include <cstdint>

namespace momentkv::kernels::cuda {

// One layer's lanes (one per KV head) in KvStorage's layout, f16: lane g's K row s at
// k + g * lane_stride + s * row_stride, its V row at v + the same offset. Device pointers.
struct DeviceKvLayer {
  uint16_t* k = nullptr;
  uint16_t* v = nullptr;
  int64_t lane_stride = 0, row_stride = 0;
  int32_t n_head_kv = 0, head_dim = 0, capacity = 0;
  int32_t* pos = nullptr;  // [n_head_kv][capacity]
  int32_t* birth =
      nullptr;  // [n_head_kv][capacity]: the decode step that wrote the slot (0: prompt)
  float* scores = nullptr;  // [n_head_kv][capacity]
};

// Writes n_tokens new tokens into slots first_slot.. of every lane: k and v are f32
// [n_tokens][n_head_kv][head_dim] (k after RoPE), stored as f16 (round to nearest even, as the
// CPU's KvStorage does); each slot gets pos[i] (device [n_tokens]), birth `birth` and score 0.
void kv_write(const DeviceKvLayer& layer, const float* k, const float* v, int32_t n_tokens,
              int32_t first_slot, const int32_t* pos, int32_t birth, void* stream = nullptr);

// One decode step's Moment-KV eviction for a layer whose lanes hold n_used slots, when the layer
// is one slot over its limit (MomentPolicy::plan with an overflow of one): among the slots
// first..n_used-1 (decode scope: the generated ones, first = the prompt's slot count; unified
// scope: all, first = 0) the one with the smallest score (bias-corrected when `normalize`; tie:
// the smaller position) is freed by moving the last slot into it. With `grace`, slots resident
// for at most grace steps are taken only when no other is left. per_lane (granularity kv_head):
// each lane chooses by its own scores; else lane 0's choice is applied to every lane (the lanes
// of a layer hold the same tokens). `evicted` (device) gets the number of slots freed, summed
// over the lanes.
struct MomentEviction {
  int32_t n_used = 0, first = 0;
  int64_t step = 0;  // the decode step, as KvCache counts it (this step included)
  float alpha = 0.9f;
  int32_t grace = 0;
  bool normalize = false;
  bool per_lane = false;
  unsigned long long* evicted = nullptr;
};
void moment_evict(const DeviceKvLayer& layer, const MomentEviction& e, void* stream = nullptr);

}  // namespace momentkv::kernels::cuda
