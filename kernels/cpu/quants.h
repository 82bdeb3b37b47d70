// Kernels for the float types (F32, F16, BF16) and the 32-element block types (Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0): dequantize, dot products and quantize, one namespace per instruction set. The
// scalar set is the oracle; AVX2/FMA/F16C and NEON sets are tested against it. Block layouts are
// in ../shared/docs/FORMATS.md and mirrored by the structs below.
//
// Conventions for every function here:
// - n counts elements and is a multiple of the type's block size (1 for floats, 32 otherwise).
// - dot_f32_T(w, x, n) = sum_i value(w, i) * x[i], activations x in f32 (the exact path).
// - dot_q8_0_T(w, xq, n) = the same sum with x quantized to Q8_0 blocks by quantize_q8_0 (the fast
//   path): an integer dot per block scaled by d_w * d_x.
// - quantize_T follows ggml's reference rounding (see each comment), so files written by ggml and
//   by momentkv agree.
#pragma once

#include <cstdint>

namespace momentkv::kernels {

// Block layouts (little-endian, unaligned; d/m are IEEE halves stored as raw bits).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];  // element i<16: low nibble of qs[i]; i>=16: high nibble of qs[i-16]
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // u32 little-endian: bit i = fifth bit of element i
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);

// Declarations shared by every instruction set (the fast ones implement exactly these).
#define MOMENTKV_QUANT_FAST_DECLS                                     \
  /* dst[0..n) = values of the n elements at src. */                  \
  void dequantize_f16(const void* src, float* dst, int64_t n);        \
  void dequantize_q4_0(const void* src, float* dst, int64_t n);       \
  void dequantize_q8_0(const void* src, float* dst, int64_t n);       \
  /* sum_i w[i] * x[i], activations in f32. */                        \
  float dot_f32_f32(const void* w, const float* x, int64_t n);        \
  float dot_f32_f16(const void* w, const float* x, int64_t n);        \
  float dot_f32_q4_0(const void* w, const float* x, int64_t n);       \
  float dot_f32_q8_0(const void* w, const float* x, int64_t n);       \
  /* Activation quantizer: Q8_0, d = amax / 127, q = round(x / d). */ \
  void quantize_q8_0(const float* src, void* dst, int64_t n);         \
  /* sum_i w[i] * x[i] with x in Q8_0 blocks (from quantize_q8_0). */ \
  float dot_q8_0_q4_0(const void* w, const void* xq, int64_t n);      \
  float dot_q8_0_q8_0(const void* w, const void* xq, int64_t n);

namespace scalar {
MOMENTKV_QUANT_FAST_DECLS
void dequantize_f32(const void* src, float* dst, int64_t n);
void dequantize_bf16(const void* src, float* dst, int64_t n);
void dequantize_q4_1(const void* src, float* dst, int64_t n);
void dequantize_q5_0(const void* src, float* dst, int64_t n);
void dequantize_q5_1(const void* src, float* dst, int64_t n);
float dot_f32_bf16(const void* w, const float* x, int64_t n);
float dot_f32_q4_1(const void* w, const float* x, int64_t n);
float dot_f32_q5_0(const void* w, const float* x, int64_t n);
float dot_f32_q5_1(const void* w, const float* x, int64_t n);
float dot_q8_0_q4_1(const void* w, const void* xq, int64_t n);
float dot_q8_0_q5_0(const void* w, const void* xq, int64_t n);
float dot_q8_0_q5_1(const void* w, const void* xq, int64_t n);
// Weight quantizers (ggml reference rounding):
// F32: copy. F16/BF16: round to nearest even (fp16.h).
void quantize_f32(const float* src, void* dst, int64_t n);
void quantize_f16(const float* src, void* dst, int64_t n);
void quantize_bf16(const float* src, void* dst, int64_t n);
// Q4_0: v = the element of largest |x| (signed), d = v / -8, q = min(15, trunc(x / d + 8.5)).
void quantize_q4_0(const float* src, void* dst, int64_t n);
// Q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5)).
void quantize_q4_1(const float* src, void* dst, int64_t n);
// Q5_0: v as Q4_0, d = v / -16, q = min(31, trunc(x / d + 16.5)).
void quantize_q5_0(const float* src, void* dst, int64_t n);
// Q5_1: d = (max - min) / 31, m = min, q = min(31, trunc((x - min) / d + 0.5)).
void quantize_q5_1(const float* src, void* dst, int64_t n);
// y[i] += a * value(row, i) for i < n (attention's weighted sum of V rows).
void accumulate_f32(const void* row, float a, float* y, int64_t n);
void accumulate_f16(const void* row, float a, float* y, int64_t n);
}  // namespace scalar

namespace avx2 {
MOMENTKV_QUANT_FAST_DECLS
void dequantize_bf16(const void* src, float* dst, int64_t n);
void dequantize_q4_1(const void* src, float* dst, int64_t n);
void dequantize_q5_0(const void* src, float* dst, int64_t n);
void dequantize_q5_1(const void* src, float* dst, int64_t n);
float dot_f32_bf16(const void* w, const float* x, int64_t n);
float dot_f32_q4_1(const void* w, const float* x, int64_t n);
float dot_f32_q5_0(const void* w, const float* x, int64_t n);
float dot_f32_q5_1(const void* w, const float* x, int64_t n);
float dot_q8_0_q4_1(const void* w, const void* xq, int64_t n);
float dot_q8_0_q5_0(const void* w, const void* xq, int64_t n);
float dot_q8_0_q5_1(const void* w, const void* xq, int64_t n);
// out[k] = dot_q8_0_T(w, xq + k * xq_stride bytes, n) for k < 4 (x4) or k < 2 (x2),
// bit-identical to dot_q8_0_T; each weight block is unpacked once for the activation rows
// (prefill, batched decode).
void dot_q8_0_q4_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out);
void dot_q8_0_q4_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out);
void dot_q8_0_q8_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out);
void dot_q8_0_q8_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out);
// y[i] = fma(a, value(row, i), y[i]) for i < n.
void accumulate_f32(const void* row, float a, float* y, int64_t n);
void accumulate_f16(const void* row, float a, float* y, int64_t n);
}  // namespace avx2

// The integer-dot tables' functions (AVX-VNNI, AVX-512 VNNI): an activation layout of their own
// (act_row_bytes_q8_0 bytes per row, quantize_q8_0), and Q4_0/Q5_0/Q8_0 dots for one, two and four
// activation rows.
#define MOMENTKV_VNNI_DECLS                                                                       \
  uint64_t act_row_bytes_q8_0(int64_t n);                                                         \
  void quantize_q8_0(const float* src, void* dst, int64_t n);                                     \
  float dot_q8_0_q4_0(const void* w, const void* xq, int64_t n);                                  \
  float dot_q8_0_q5_0(const void* w, const void* xq, int64_t n);                                  \
  float dot_q8_0_q8_0(const void* w, const void* xq, int64_t n);                                  \
  void dot_q8_0_q4_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8_0_q5_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8_0_q8_0_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8_0_q4_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8_0_q5_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8_0_q8_0_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out);

// AVX-VNNI (avxvnni/quants.cpp): Q4_0, Q5_0 and Q8_0 weights against Q8_0 activations written by
// this namespace's quantize_q8_0, which appends per-row sums and scales to the Q8_0 blocks
// (act_row_bytes_q8_0(n) bytes per row; the blocks equal avx2::quantize_q8_0's).
namespace avxvnni {
MOMENTKV_VNNI_DECLS
}  // namespace avxvnni

// AVX-512 VNNI (avx512/quants.cpp): the same three weight types against Q8_0 activations written
// by its own quantize_q8_0 (Q8_0 blocks, then per four blocks their quants, corrections and
// scales laid out for 512-bit dots; act_row_bytes_q8_0 bytes per row).
namespace avx512 {
MOMENTKV_VNNI_DECLS
}  // namespace avx512

namespace neon {
MOMENTKV_QUANT_FAST_DECLS
// y[i] = fma(a, value(row, i), y[i]) for i < n.
void accumulate_f32(const void* row, float a, float* y, int64_t n);
void accumulate_f16(const void* row, float a, float* y, int64_t n);
}  // namespace neon

#undef MOMENTKV_QUANT_FAST_DECLS
#undef MOMENTKV_VNNI_DECLS

}  // namespace momentkv::kernels
