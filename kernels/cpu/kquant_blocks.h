// Block layouts of the K-quants (../shared/docs/FORMATS.md), shared by the scalar, AVX2 and NEON
// kernels. Every block covers kQkBlock = 256 elements.
#pragma once

#include <cstdint>
#include <cstring>

// The CUDA kernels (kernels/cuda) decode the same blocks on the device with the same functions.
#ifdef __CUDACC__
#define MOMENTKV_HOST_DEVICE __host__ __device__
#else
#define MOMENTKV_HOST_DEVICE
#endif

namespace momentkv::kernels {

inline constexpr int kQkBlock = 256;

struct BlockQ4K {
  uint16_t d;          // f16 super-block scale
  uint16_t dmin;       // f16 super-block min scale
  uint8_t scales[12];  // 8 packed 6-bit (scale, min) pairs
  uint8_t qs[128];     // 4-bit quants, two per byte
};
static_assert(sizeof(BlockQ4K) == 144);

struct BlockQ5K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];  // fifth bits
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ5K) == 176);

struct BlockQ6K {
  uint8_t ql[128];    // low 4 bits
  uint8_t qh[64];     // high 2 bits
  int8_t scales[16];  // 8-bit scales of 16-element groups
  uint16_t d;
};
static_assert(sizeof(BlockQ6K) == 210);

// Activations for the integer dot products.
struct BlockQ8K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];  // sums of qs over groups of 16
};
static_assert(sizeof(BlockQ8K) == 292);

// The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of a Q4_K/Q5_K block.
MOMENTKV_HOST_DEVICE inline void unpack_scale_min(const uint8_t* scales, int j, int& sc, int& m) {
  if (j < 4) {
    sc = scales[j] & 63;
    m = scales[j + 4] & 63;
  } else {
    sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
    m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// The eight 6-bit scales and mins of a Q4_K/Q5_K block, as bytes sc[0..7] and m[0..7], unpacked
// with word operations (the SIMD kernels' form of unpack_scale_min). Bytes 0-3 hold sc[0..3]
// (bits 0-5) and the top bits of sc[4..7]; bytes 4-7 likewise for the mins; bytes 8-11 hold the
// low nibbles of sc[4..7] and m[4..7].
struct ScalesMins {
  uint8_t sc[8];
  uint8_t m[8];
};

inline ScalesMins unpack_scales_mins(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, sizeof w);
  const uint32_t k6 = 0x3f3f3f3fu;
  const uint32_t k4 = 0x0f0f0f0fu;
  const uint32_t k_top = 0x30303030u;  // (b >> 6) << 4 == (b >> 2) & 0x30
  const uint32_t out[4] = {w[0] & k6, (w[2] & k4) | ((w[0] >> 2) & k_top), w[1] & k6,
                           ((w[2] >> 4) & k4) | ((w[1] >> 2) & k_top)};
  ScalesMins r;
  std::memcpy(r.sc, out, 8);
  std::memcpy(r.m, out + 2, 8);
  return r;
}

}  // namespace momentkv::kernels
