// Scalar reference kernels for F32/F16/BF16 and the 32-element block types (the test oracle).
// Every block type is handled by unpacking a block to 32 small integers q and an affine map
// value = d * q + m (m = 0 for the symmetric types); the rest is written once per operation.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/tensor/fp16.h"
#include "kernels/cpu/quants.h"

namespace momentkv::kernels::scalar {

namespace {

// One block as integers: value(i) = d * q[i] + m.
struct Unpacked {
  float d = 0.0f;
  float m = 0.0f;
  int q[32] = {};
};

uint32_t load_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, sizeof v);
  return v;
}

void unpack(const BlockQ4_0& b, Unpacked& u) {
  u.d = fp16_to_fp32(b.d);
  for (int i = 0; i < 16; ++i) {
    u.q[i] = (b.qs[i] & 15) - 8;
    u.q[i + 16] = (b.qs[i] >> 4) - 8;
  }
}

void unpack(const BlockQ4_1& b, Unpacked& u) {
  u.d = fp16_to_fp32(b.d);
  u.m = fp16_to_fp32(b.m);
  for (int i = 0; i < 16; ++i) {
    u.q[i] = b.qs[i] & 15;
    u.q[i + 16] = b.qs[i] >> 4;
  }
}

void unpack(const BlockQ5_0& b, Unpacked& u) {
  u.d = fp16_to_fp32(b.d);
  const uint32_t qh = load_qh(b.qh);
  for (int i = 0; i < 16; ++i) {
    u.q[i] = ((b.qs[i] & 15) | static_cast<int>(((qh >> i) & 1u) << 4)) - 16;
    u.q[i + 16] = ((b.qs[i] >> 4) | static_cast<int>(((qh >> (i + 16)) & 1u) << 4)) - 16;
  }
}

void unpack(const BlockQ5_1& b, Unpacked& u) {
  u.d = fp16_to_fp32(b.d);
  u.m = fp16_to_fp32(b.m);
  const uint32_t qh = load_qh(b.qh);
  for (int i = 0; i < 16; ++i) {
    u.q[i] = (b.qs[i] & 15) | static_cast<int>(((qh >> i) & 1u) << 4);
    u.q[i + 16] = (b.qs[i] >> 4) | static_cast<int>(((qh >> (i + 16)) & 1u) << 4);
  }
}

void unpack(const BlockQ8_0& b, Unpacked& u) {
  u.d = fp16_to_fp32(b.d);
  for (int i = 0; i < 32; ++i) u.q[i] = b.qs[i];
}

template <typename Block>
constexpr bool kHasMin = std::is_same_v<Block, BlockQ4_1> || std::is_same_v<Block, BlockQ5_1>;

template <typename Block>
void dequantize_blocks(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const Block*>(src);
  Unpacked u;
  for (int64_t b = 0; b < n / 32; ++b) {
    unpack(blocks[b], u);
    for (int i = 0; i < 32; ++i) dst[b * 32 + i] = u.d * static_cast<float>(u.q[i]) + u.m;
  }
}

template <typename Block>
float dot_f32_blocks(const void* w, const float* x, int64_t n) {
  const auto* blocks = static_cast<const Block*>(w);
  Unpacked u;
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    unpack(blocks[b], u);
    const float* xb = x + b * 32;
    float sum_qx = 0.0f;
    for (int i = 0; i < 32; ++i) sum_qx += static_cast<float>(u.q[i]) * xb[i];
    sum += u.d * sum_qx;
    if constexpr (kHasMin<Block>) {
      float sum_x = 0.0f;
      for (int i = 0; i < 32; ++i) sum_x += xb[i];
      sum += u.m * sum_x;
    }
  }
  return sum;
}

template <typename Block>
float dot_q8_0_blocks(const void* w, const void* xq, int64_t n) {
  const auto* blocks = static_cast<const Block*>(w);
  const auto* xb = static_cast<const BlockQ8_0*>(xq);
  Unpacked u;
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    unpack(blocks[b], u);
    const float dx = fp16_to_fp32(xb[b].d);
    int32_t sum_qq = 0;
    for (int i = 0; i < 32; ++i) sum_qq += u.q[i] * xb[b].qs[i];
    sum += u.d * dx * static_cast<float>(sum_qq);
    if constexpr (kHasMin<Block>) {
      int32_t sum_q = 0;
      for (int i = 0; i < 32; ++i) sum_q += xb[b].qs[i];
      sum += u.m * dx * static_cast<float>(sum_q);
    }
  }
  return sum;
}

// The element of largest magnitude, with its sign (ggml's choice for the symmetric 4/5-bit types).
float signed_absmax(const float* x) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < 32; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

void min_max(const float* x, float& min, float& max) {
  min = x[0];
  max = x[0];
  for (int i = 1; i < 32; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
  }
}

// Packs 32 values in 0..31 as Q5 low nibbles + the fifth bits.
void pack5(const int* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int i = 0; i < 16; ++i) {
    qs[i] = static_cast<uint8_t>((q[i] & 15) | ((q[i + 16] & 15) << 4));
    qh |= static_cast<uint32_t>((q[i] >> 4) & 1) << i;
    qh |= static_cast<uint32_t>((q[i + 16] >> 4) & 1) << (i + 16);
  }
  std::memcpy(qh_bytes, &qh, sizeof qh);
}

}  // namespace

// ---- float types ----

void dequantize_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_f16(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
}

void dequantize_bf16(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}

float dot_f32_f32(const void* w, const float* x, int64_t n) {
  const auto* f = static_cast<const float*>(w);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += f[i] * x[i];
  return sum;
}

float dot_f32_f16(const void* w, const float* x, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(w);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += fp16_to_fp32(h[i]) * x[i];
  return sum;
}

float dot_f32_bf16(const void* w, const float* x, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(w);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += bf16_to_fp32(h[i]) * x[i];
  return sum;
}

void accumulate_f32(const void* row, float a, float* y, int64_t n) {
  const auto* f = static_cast<const float*>(row);
  for (int64_t i = 0; i < n; ++i) y[i] += a * f[i];
}

void accumulate_f16(const void* row, float a, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(row);
  for (int64_t i = 0; i < n; ++i) y[i] += a * fp16_to_fp32(h[i]);
}

void quantize_f32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void quantize_f16(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

void quantize_bf16(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}

// ---- 32-element blocks ----

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ4_0>(src, dst, n);
}
void dequantize_q4_1(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ4_1>(src, dst, n);
}
void dequantize_q5_0(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ5_0>(src, dst, n);
}
void dequantize_q5_1(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ5_1>(src, dst, n);
}
void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ8_0>(src, dst, n);
}

float dot_f32_q4_0(const void* w, const float* x, int64_t n) {
  return dot_f32_blocks<BlockQ4_0>(w, x, n);
}
float dot_f32_q4_1(const void* w, const float* x, int64_t n) {
  return dot_f32_blocks<BlockQ4_1>(w, x, n);
}
float dot_f32_q5_0(const void* w, const float* x, int64_t n) {
  return dot_f32_blocks<BlockQ5_0>(w, x, n);
}
float dot_f32_q5_1(const void* w, const float* x, int64_t n) {
  return dot_f32_blocks<BlockQ5_1>(w, x, n);
}
float dot_f32_q8_0(const void* w, const float* x, int64_t n) {
  return dot_f32_blocks<BlockQ8_0>(w, x, n);
}

float dot_q8_0_q4_0(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_blocks<BlockQ4_0>(w, xq, n);
}
float dot_q8_0_q4_1(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_blocks<BlockQ4_1>(w, xq, n);
}
float dot_q8_0_q5_0(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_blocks<BlockQ5_0>(w, xq, n);
}
float dot_q8_0_q5_1(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_blocks<BlockQ5_1>(w, xq, n);
}
float dot_q8_0_q8_0(const void* w, const void* xq, int64_t n) {
  return dot_q8_0_blocks<BlockQ8_0>(w, xq, n);
}

void quantize_q8_0(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = fp32_to_fp16(d);
    for (int i = 0; i < 32; ++i) blocks[b].qs[i] = static_cast<int8_t>(std::round(x[i] * id));
  }
}

void quantize_q4_0(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ4_0*>(dst);
  int q[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    const float d = signed_absmax(x) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = fp32_to_fp16(d);
    for (int i = 0; i < 32; ++i) q[i] = std::min(15, static_cast<int>(x[i] * id + 8.5f));
    for (int i = 0; i < 16; ++i) blocks[b].qs[i] = static_cast<uint8_t>(q[i] | (q[i + 16] << 4));
  }
}

void quantize_q4_1(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ4_1*>(dst);
  int q[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    float min, max;
    min_max(x, min, max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = fp32_to_fp16(d);
    blocks[b].m = fp32_to_fp16(min);
    for (int i = 0; i < 32; ++i) q[i] = std::min(15, static_cast<int>((x[i] - min) * id + 0.5f));
    for (int i = 0; i < 16; ++i) blocks[b].qs[i] = static_cast<uint8_t>(q[i] | (q[i + 16] << 4));
  }
}

void quantize_q5_0(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ5_0*>(dst);
  int q[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    const float d = signed_absmax(x) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = fp32_to_fp16(d);
    for (int i = 0; i < 32; ++i) q[i] = std::min(31, static_cast<int>(x[i] * id + 16.5f));
    pack5(q, blocks[b].qs, blocks[b].qh);
  }
}

void quantize_q5_1(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ5_1*>(dst);
  int q[32];
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    float min, max;
    min_max(x, min, max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = fp32_to_fp16(d);
    blocks[b].m = fp32_to_fp16(min);
    for (int i = 0; i < 32; ++i) q[i] = std::min(31, static_cast<int>((x[i] - min) * id + 0.5f));
    pack5(q, blocks[b].qs, blocks[b].qh);
  }
}

}  // namespace momentkv::kernels::scalar
