// The grouped attention fast paths: the query heads that share one KV lane (GQA group) of one
// token over that lane, with f32 or f16 rows. K and V rows are converted to f32 once per block of
// slots for the whole group, not once per head, and the per-slot work runs without a call per
// row. Each kernel's arithmetic is that of the row kernels the per-head path calls with its
// instruction set (dot_f32 with four accumulators, accumulate's fma per element, softmax.h's exp
// and sum), so results are bit for bit the same: avx2 and avx512 those of the AVX2 row kernels,
// neon those of the NEON ones.
#pragma once

#include <cstddef>
#include <cstdint>

namespace momentkv::kernels {

struct GroupAttention {
  const float* q = nullptr;         // [group][head_dim]: the group's query heads (after RoPE)
  float* out = nullptr;             // [group][head_dim]
  int32_t group = 0, head_dim = 0;  // head_dim a multiple of 8
  float scale = 1.0f;
  const uint8_t* k = nullptr;  // the lane's first K row; row s at k + s * row_bytes
  const uint8_t* v = nullptr;  // the lane's first V row
  size_t row_bytes = 0;
  bool f16 = false;              // rows are f16 (else f32)
  const int32_t* pos = nullptr;  // [n] positions of the slots
  int32_t n = 0, q_pos = 0;      // slots; the query's position (later slots are masked)
  float* sum = nullptr;          // optional [n]: += each head's probabilities
  float* scores = nullptr;       // scratch [group][stride]
  size_t stride = 0;             // floats from one head's scores to the next: n or more
  float* rows = nullptr;         // scratch [kBlock][head_dim]
  float* q_pairs = nullptr;      // scratch [group][2 * head_dim] (the AVX-512 path)
  float* head_max = nullptr;     // scratch [group][16] (AVX-512, NEON)
  static constexpr int32_t kBlock = 16;
  static constexpr int32_t kPrefetchBlocks = 4;  // blocks ahead of the one being converted
};

// Asks the caches for rows [s, s + kBlock) of a lane's K or V rows (those before n).
inline void prefetch_block(const GroupAttention& a, const uint8_t* rows, int32_t s) {
  if (s >= a.n) return;
  const int32_t m = a.n - s < GroupAttention::kBlock ? a.n - s : GroupAttention::kBlock;
  const uint8_t* p = rows + static_cast<size_t>(s) * a.row_bytes;
  const size_t bytes = static_cast<size_t>(m) * a.row_bytes;
  for (size_t i = 0; i < bytes; i += 64) __builtin_prefetch(p + i, 0, 3);
}

// The kernels read K, then V, block after block, and convert each block before computing with
// it; on a long context the rows come from memory and the hardware prefetcher alone left the
// conversions waiting on them (grouped AVX-512 at 2,048 slots: 288 -> 200 us per layer with
// one thread). So a kernel asks for the block kPrefetchBlocks ahead of the one it converts
// (prefetch_ahead), and for the first blocks before it starts K and before it starts V
// (prefetch_first).
inline void prefetch_ahead(const GroupAttention& a, const uint8_t* rows, int32_t s0) {
  prefetch_block(a, rows, s0 + GroupAttention::kPrefetchBlocks * GroupAttention::kBlock);
}
inline void prefetch_first(const GroupAttention& a, const uint8_t* rows) {
  for (int32_t b = 0; b < GroupAttention::kPrefetchBlocks; ++b) {
    prefetch_block(a, rows, b * GroupAttention::kBlock);
  }
}

namespace avx2 {
void attend_group(const GroupAttention& a);
}  // namespace avx2

// The same with the NEON row kernels' arithmetic (neon/attention.cpp).
namespace neon {
void attend_group(const GroupAttention& a);
}  // namespace neon

// The same with 512-bit vectors (AVX-512 F/VL/BW/DQ), the same operations in the same order.
namespace avx512 {
void attend_group(const GroupAttention& a);
}  // namespace avx512

}  // namespace momentkv::kernels
