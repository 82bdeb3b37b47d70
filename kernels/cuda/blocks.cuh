// Device-side decoding of one weight element of a GGUF row, for the kernels that read weights
// element by element (get_rows); the mat-vec decodes whole 32-weight chunks itself (matvec.cu).
// Layouts: kernels/cpu/quants.h and kquant_blocks.h; values as the scalar reference
// (kernels/cpu/scalar/) computes them. CUDA header: for .cu files only.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "core/tensor/ggml_type.h"
#include "kernels/cpu/kquant_blocks.h"
#include "kernels/cpu/quants.h"

namespace momentkv::kernels::cuda {

// The weight types the device kernels read (the decoders here and matvec.cu's chunks).
inline bool device_reads(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::Q4_0:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

__device__ inline float half_value(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

// Element i of a row of each type.
struct F32Row {
  __device__ static float value(const uint8_t* row, int64_t i) {
    return reinterpret_cast<const float*>(row)[i];
  }
};

struct F16Row {
  __device__ static float value(const uint8_t* row, int64_t i) {
    return half_value(reinterpret_cast<const uint16_t*>(row)[i]);
  }
};

struct Q4_0Row {
  __device__ static float value(const uint8_t* row, int64_t i) {
    const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(row)[i / 32];
    const int j = static_cast<int>(i % 32);
    const int q = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
    return half_value(b.d) * static_cast<float>(q - 8);
  }
};

struct Q8_0Row {
  __device__ static float value(const uint8_t* row, int64_t i) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[i / 32];
    return half_value(b.d) * static_cast<float>(b.qs[i % 32]);
  }
};

struct Q4KRow {
  __device__ static float value(const uint8_t* row, int64_t i) {
    const BlockQ4K& b = reinterpret_cast<const BlockQ4K*>(row)[i / kQkBlock];
    const int e = static_cast<int>(i % kQkBlock), j = e / 32, l = e % 32;
    int sc = 0, m = 0;
    unpack_scale_min(b.scales, j, sc, m);
    const int q = (b.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
    return half_value(b.d) * static_cast<float>(sc) * static_cast<float>(q) -
           half_value(b.dmin) * static_cast<float>(m);
  }
};

struct Q6KRow {
  __device__ static float value(const uint8_t* row, int64_t i) {
    const BlockQ6K& b = reinterpret_cast<const BlockQ6K*>(row)[i / kQkBlock];
    const int e = static_cast<int>(i % kQkBlock);
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b.ql[64 * h + (k % 2 == 0 ? 0 : 32) + l];
    const int nibble = k < 2 ? (lo & 15) : (lo >> 4);
    const int q = (nibble | (((b.qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
    return half_value(b.d) * static_cast<float>(b.scales[e / 16]) * static_cast<float>(q);
  }
};

}  // namespace momentkv::kernels::cuda
