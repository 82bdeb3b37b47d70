// Decode attention on the GPU, one layer and one query token, with the Moment-KV score update
// fused in: the kernel that produces the attention probabilities also folds them into each
// slot's score, score = alpha * score + mean over query heads of the probability (DESIGN.md §5;
// MomentPolicy::observe on the CPU), so no probabilities go back to the host.
#pragma once

#include <cstdint>

namespace momentkv::kernels::cuda {

struct DecodeAttention {
  // The query heads after RoPE and the output, both [n_head][head_dim] f32.
  const float* q = nullptr;
  float* out = nullptr;
  int32_t n_head = 0, n_head_kv = 0, head_dim = 0;  // head_dim <= 256, n_head % n_head_kv == 0
  float scale = 1.0f;
  int32_t q_pos = 0;  // the query's position: slots at later positions are masked
  // The layer's KV lanes (one per KV head), f16 rows of row_stride elements (>= head_dim): lane g's
  // K row s at k + g * lane_stride + s * row_stride, its V row at v + the same offset (the layout
  // of KvStorage, which keeps a lane's K rows and then its V rows in one block).
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  int64_t lane_stride = 0, row_stride = 0;
  int32_t capacity = 0;          // slots per lane
  int32_t n_used = 0;            // slots in use, 0..n_used-1 in every lane
  const int32_t* pos = nullptr;  // [n_head_kv][capacity] the position each slot holds
  // Moment-KV (skipped when scores is null): for every slot s of lane g with evictable[g][s] != 0,
  //   per_lane (granularity kv_head): scores[g][s] = alpha * scores[g][s] + sum of lane g's heads'
  //     probabilities / (n_head / n_head_kv);
  //   else (granularity layer): every lane gets lane 0's update with the sum over all heads /
  //   n_head
  //     (the lanes of a layer keep identical scores; lane 0's evictable flags decide).
  float* scores = nullptr;             // [n_head_kv][capacity]
  const uint8_t* evictable = nullptr;  // [n_head_kv][capacity]
  float alpha = 0.9f;
  bool per_lane = false;
  // Device scratch: probs [n_head][capacity], lane_sums [n_head_kv][capacity], and one counter
  // that must be 0 before the first call (each call leaves it 0).
  float* probs = nullptr;
  float* lane_sums = nullptr;
  unsigned* counter = nullptr;
};

// Runs the attention (and the score update when a.scores is set) on `stream` without waiting.
// Device pointers throughout. Throws Error for a bad shape (before any device work) or a failed
// launch.
void decode_attention(const DecodeAttention& a, void* stream = nullptr);

}  // namespace momentkv::kernels::cuda
