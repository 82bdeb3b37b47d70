// Device-side decoding of GGUF weight rows, 32 elements at a time, for every kernel that reads
// weights (matvec.cu, get_rows.cu). Layouts: kernels/cpu/quants.h and kquant_blocks.h; values as
// the scalar dequantizers (kernels/cpu/scalar/) compute them. CUDA header: for .cu files only.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "core/tensor/ggml_type.h"
#include "kernels/cpu/kquant_blocks.h"
#include "kernels/cpu/quants.h"

namespace momentkv::kernels::cuda {

// The weight types the decoders here read.
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

// Each type's decoder: chunk(row, c, left, v) writes elements 32c .. 32c + 31 of a row into
// v[0 .. 32) and returns how many there are: 32, or `left` (the elements from 32c to the row's end)
// when an F32/F16 row ends inside the chunk. A chunk is a Q4_0/Q8_0 block, a 32-element
// sub-block of a Q4_K/Q6_K super-block, or 32 F32/F16 values.
struct F32Row {
  __device__ static int chunk(const uint8_t* row, int64_t c, int64_t left, float v[32]) {
    const float* w = reinterpret_cast<const float*>(row) + 32 * c;
    const int m = left < 32 ? static_cast<int>(left) : 32;
    for (int i = 0; i < m; ++i) v[i] = w[i];
    return m;
  }
};

struct F16Row {
  __device__ static int chunk(const uint8_t* row, int64_t c, int64_t left, float v[32]) {
    const uint16_t* w = reinterpret_cast<const uint16_t*>(row) + 32 * c;
    const int m = left < 32 ? static_cast<int>(left) : 32;
    for (int i = 0; i < m; ++i) v[i] = half_value(w[i]);
    return m;
  }
};

struct Q4_0Row {  // element i < 16: low nibble of qs[i]; i >= 16: high nibble of qs[i - 16]
  __device__ static int chunk(const uint8_t* row, int64_t c, int64_t, float v[32]) {
    const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(row)[c];
    const float d = half_value(b.d);
    for (int i = 0; i < 16; ++i) {
      v[i] = d * static_cast<float>((b.qs[i] & 15) - 8);
      v[i + 16] = d * static_cast<float>((b.qs[i] >> 4) - 8);
    }
    return 32;
  }
};

struct Q8_0Row {
  __device__ static int chunk(const uint8_t* row, int64_t c, int64_t, float v[32]) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[c];
    const float d = half_value(b.d);
    for (int i = 0; i < 32; ++i) v[i] = d * static_cast<float>(b.qs[i]);
    return 32;
  }
};

struct Q4KRow {  // sub-block j of a super-block: (d * sc_j) * q - dmin * m_j
  __device__ static int chunk(const uint8_t* row, int64_t c, int64_t, float v[32]) {
    const BlockQ4K& b = reinterpret_cast<const BlockQ4K*>(row)[c / 8];
    const int j = static_cast<int>(c % 8);
    int sc = 0, m = 0;
    unpack_scale_min(b.scales, j, sc, m);
    const float a = half_value(b.d) * static_cast<float>(sc);
    const float off = half_value(b.dmin) * static_cast<float>(m);
    const uint8_t* q = b.qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    // Rounded product, then difference (no fma contraction), as the reference computes it.
    for (int l = 0; l < 32; ++l) {
      v[l] = __fsub_rn(__fmul_rn(a, static_cast<float>((q[l] >> shift) & 15)), off);
    }
    return 32;
  }
};

struct Q6KRow {  // elements 32r .. 32r + 31 of a super-block: (d * scale_(i / 16)) * (q - 32)
  __device__ static int chunk(const uint8_t* row, int64_t c, int64_t, float v[32]) {
    const BlockQ6K& b = reinterpret_cast<const BlockQ6K*>(row)[c / 8];
    const int r = static_cast<int>(c % 8);
    const int h = r / 4, k = r % 4;
    const uint8_t* ql = b.ql + 64 * h + (k % 2 == 0 ? 0 : 32);
    const uint8_t* qh = b.qh + 32 * h;
    const float d = half_value(b.d);
    const float scale[2] = {d * static_cast<float>(b.scales[2 * r]),
                            d * static_cast<float>(b.scales[2 * r + 1])};
    for (int l = 0; l < 32; ++l) {
      const int nibble = k < 2 ? (ql[l] & 15) : (ql[l] >> 4);
      const int q = (nibble | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
      v[l] = scale[l / 16] * static_cast<float>(q);
    }
    return 32;
  }
};

// Calls launch(Row{}) with the decoder of type t (host code: each kernel's launcher is a generic
// lambda that instantiates its kernel for that decoder). Returns false, launching nothing, for a
// type without a decoder.
template <class Launch>
bool with_row_decoder(GgmlType t, Launch&& launch) {
  switch (t) {
    case GgmlType::F32:
      launch(F32Row{});
      return true;
    case GgmlType::F16:
      launch(F16Row{});
      return true;
    case GgmlType::Q4_0:
      launch(Q4_0Row{});
      return true;
    case GgmlType::Q8_0:
      launch(Q8_0Row{});
      return true;
    case GgmlType::Q4_K:
      launch(Q4KRow{});
      return true;
    case GgmlType::Q6_K:
      launch(Q6KRow{});
      return true;
    default:
      return false;
  }
}

}  // namespace momentkv::kernels::cuda
