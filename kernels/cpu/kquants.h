// K-quant kernels (Q4_K, Q5_K, Q6_K weights; Q8_K activations): 256-element super-blocks, layouts
// in ../shared/docs/FORMATS.md. One set of functions per instruction set; the scalar set is the
// oracle. n is always a multiple of 256.
#pragma once

#include <cstdint>

namespace momentkv::kernels {

#define MOMENTKV_KQUANT_DECLS                                               \
  void dequantize_q4_k(const void* src, float* dst, int64_t n);             \
  void dequantize_q5_k(const void* src, float* dst, int64_t n);             \
  void dequantize_q6_k(const void* src, float* dst, int64_t n);             \
  float dot_f32_q4_k(const void* w, const float* x, int64_t n);             \
  float dot_f32_q5_k(const void* w, const float* x, int64_t n);             \
  float dot_f32_q6_k(const void* w, const float* x, int64_t n);             \
  /* Q8_K activation block: f32 d; i8 qs[256]; i16 bsums[16] (292 bytes) */ \
  void quantize_q8_k(const float* src, void* dst, int64_t n);               \
  float dot_q8k_q4_k(const void* w, const void* xq, int64_t n);             \
  float dot_q8k_q5_k(const void* w, const void* xq, int64_t n);             \
  float dot_q8k_q6_k(const void* w, const void* xq, int64_t n);

namespace scalar {
MOMENTKV_KQUANT_DECLS
// Reference quantizers (weights): search scales/mins per sub-block to minimise squared error.
void quantize_q4_k(const float* src, void* dst, int64_t n);
void quantize_q5_k(const float* src, void* dst, int64_t n);
void quantize_q6_k(const float* src, void* dst, int64_t n);
}  // namespace scalar

// out[k] = dot_q8k_T(w, xq + k * xq_stride bytes, n) for k < 4 (x4) or k < 2 (x2), bit-identical
// to dot_q8k_T; each weight super-block is unpacked once for the activation rows (prefill,
// batched decode).
#define MOMENTKV_KQUANT_ROWS_DECLS                                                               \
  void dot_q8k_q4_k_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8k_q4_k_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8k_q5_k_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8k_q5_k_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8k_q6_k_x2(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out); \
  void dot_q8k_q6_k_x4(const void* w, const void* xq, int64_t xq_stride, int64_t n, float* out);

namespace avx2 {
MOMENTKV_KQUANT_DECLS
MOMENTKV_KQUANT_ROWS_DECLS
}  // namespace avx2

// AVX-VNNI (avxvnni/kquants.cpp) and AVX-512 VNNI (avx512/kquants.cpp): the Q4_K, Q5_K and Q6_K
// dots of avx2 with vpdpwssd, the same bits (avx2/kquant_dots.h); Q8_K activations from
// avx2::quantize_q8_k. The other K-quant kernels are avx2's.
namespace avxvnni {
float dot_q8k_q4_k(const void* w, const void* xq, int64_t n);
float dot_q8k_q5_k(const void* w, const void* xq, int64_t n);
float dot_q8k_q6_k(const void* w, const void* xq, int64_t n);
MOMENTKV_KQUANT_ROWS_DECLS
}  // namespace avxvnni
namespace avx512 {
float dot_q8k_q4_k(const void* w, const void* xq, int64_t n);
float dot_q8k_q5_k(const void* w, const void* xq, int64_t n);
float dot_q8k_q6_k(const void* w, const void* xq, int64_t n);
MOMENTKV_KQUANT_ROWS_DECLS
}  // namespace avx512

namespace neon {
MOMENTKV_KQUANT_DECLS
}  // namespace neon

#undef MOMENTKV_KQUANT_DECLS
#undef MOMENTKV_KQUANT_ROWS_DECLS

}  // namespace momentkv::kernels
