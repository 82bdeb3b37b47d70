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
  float* scores = nullptr;       // scratch [group][n]
  float* rows = nullptr;         // scratch [kBlock][head_dim]
  float* q_pairs = nullptr;      // scratch [group][2 * head_dim] (the AVX-512 path)
  float* head_max = nullptr;     // scratch [group][16] (AVX-512, NEON)
  static constexpr int32_t kBlock = 16;
};

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
