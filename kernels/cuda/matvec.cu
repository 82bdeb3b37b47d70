// Quantized mat-vec for decode (matvec.h). Shapes: W [n_out][n_in] in GGUF blocks, x [n_in],
// y [n_out], all f32 but W. Block grid: kWarps warps per block, one output row per warp; lane l
// sums chunks l, l + 32, ... of its row (32 weights each), then the warp adds its 32 partial
// sums with shuffles. Chunk decoding follows the scalar reference (kernels/cpu/scalar/) element
// for element; only the order of the additions differs.
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/blocks.cuh"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kWarps = 4;  // warps (output rows) per thread block

// Each chunk type: dot(row, c, x, n) = sum over the chunk's weights (elements 32c .. 32c + 31 of
// the row, fewer when n < 32 for F32/F16) times x[0 .. 32).
struct F32Chunk {
  __device__ static float dot(const uint8_t* row, int64_t c, const float* x, int64_t n) {
    const float* w = reinterpret_cast<const float*>(row) + 32 * c;
    float s = 0.0f;
    const int m = n < 32 ? static_cast<int>(n) : 32;
    for (int i = 0; i < m; ++i) s += w[i] * x[i];
    return s;
  }
};

struct F16Chunk {
  __device__ static float dot(const uint8_t* row, int64_t c, const float* x, int64_t n) {
    const uint16_t* w = reinterpret_cast<const uint16_t*>(row) + 32 * c;
    float s = 0.0f;
    const int m = n < 32 ? static_cast<int>(n) : 32;
    for (int i = 0; i < m; ++i) s += half_value(w[i]) * x[i];
    return s;
  }
};

struct Q4_0Chunk {  // element i < 16: low nibble of qs[i]; i >= 16: high nibble of qs[i - 16]
  __device__ static float dot(const uint8_t* row, int64_t c, const float* x, int64_t) {
    const BlockQ4_0& b = reinterpret_cast<const BlockQ4_0*>(row)[c];
    float s = 0.0f;
    for (int i = 0; i < 16; ++i) {
      s += static_cast<float>((b.qs[i] & 15) - 8) * x[i];
      s += static_cast<float>((b.qs[i] >> 4) - 8) * x[i + 16];
    }
    return half_value(b.d) * s;
  }
};

struct Q8_0Chunk {
  __device__ static float dot(const uint8_t* row, int64_t c, const float* x, int64_t) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[c];
    float s = 0.0f;
    for (int i = 0; i < 32; ++i) s += static_cast<float>(b.qs[i]) * x[i];
    return half_value(b.d) * s;
  }
};

struct Q4KChunk {  // sub-block j of a super-block: d * sc_j * q - dmin * m_j
  __device__ static float dot(const uint8_t* row, int64_t c, const float* x, int64_t) {
    const BlockQ4K& b = reinterpret_cast<const BlockQ4K*>(row)[c / 8];
    const int j = static_cast<int>(c % 8);
    int sc = 0, m = 0;
    unpack_scale_min(b.scales, j, sc, m);
    const uint8_t* q = b.qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    float sqx = 0.0f, sx = 0.0f;
    for (int l = 0; l < 32; ++l) {
      sqx += static_cast<float>((q[l] >> shift) & 15) * x[l];
      sx += x[l];
    }
    return half_value(b.d) * static_cast<float>(sc) * sqx -
           half_value(b.dmin) * static_cast<float>(m) * sx;
  }
};

struct Q6KChunk {  // elements 32r .. 32r + 31 of a super-block: d * scale_(i / 16) * (q - 32)
  __device__ static float dot(const uint8_t* row, int64_t c, const float* x, int64_t) {
    const BlockQ6K& b = reinterpret_cast<const BlockQ6K*>(row)[c / 8];
    const int r = static_cast<int>(c % 8);
    const int h = r / 4, k = r % 4;
    const uint8_t* ql = b.ql + 64 * h + (k % 2 == 0 ? 0 : 32);
    const uint8_t* qh = b.qh + 32 * h;
    float s[2] = {0.0f, 0.0f};
    for (int l = 0; l < 32; ++l) {
      const int nibble = k < 2 ? (ql[l] & 15) : (ql[l] >> 4);
      const int q = (nibble | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
      s[l / 16] += static_cast<float>(q) * x[l];
    }
    return half_value(b.d) * (static_cast<float>(b.scales[2 * r]) * s[0] +
                              static_cast<float>(b.scales[2 * r + 1]) * s[1]);
  }
};

template <class Chunk>
__global__ void matvec_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int64_t n_in,
                              int64_t n_chunks, const float* __restrict__ x, float* __restrict__ y,
                              int64_t n_out) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= n_out) return;  // the whole warp: rows are per warp
  const int lane = static_cast<int>(threadIdx.x % 32);
  const uint8_t* r = w + static_cast<uint64_t>(row) * row_bytes;
  float sum = 0.0f;
  for (int64_t c = lane; c < n_chunks; c += 32) sum += Chunk::dot(r, c, x + 32 * c, n_in - 32 * c);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) y[row] = sum;
}

template <class Chunk>
void launch(const void* w, uint64_t row_bytes, int64_t n_out, int64_t n_in, const float* x,
            float* y, cudaStream_t stream) {
  const int64_t n_chunks = (n_in + 31) / 32;
  const auto blocks = static_cast<unsigned>((n_out + kWarps - 1) / kWarps);
  matvec_kernel<Chunk><<<blocks, 32 * kWarps, 0, stream>>>(static_cast<const uint8_t*>(w),
                                                           row_bytes, n_in, n_chunks, x, y, n_out);
}

}  // namespace

bool matvec_supports(GgmlType t) {
  return device_reads(t);
}

void matvec(GgmlType t, const void* w, int64_t n_out, int64_t n_in, const float* x, float* y,
            void* stream) {
  check(matvec_supports(t), "no CUDA mat-vec kernel for " + type_name(t) + " weights");
  check(n_out > 0 && n_in > 0 && n_out <= int64_t{1} << 36,
        "CUDA mat-vec: bad shape " + std::to_string(n_out) + " x " + std::to_string(n_in));
  const auto row_bytes_or = row_bytes(t, static_cast<uint64_t>(n_in));
  check(row_bytes_or.has_value(), "CUDA mat-vec: a row of " + std::to_string(n_in) +
                                      " elements is not a whole number of " + type_name(t) +
                                      " blocks");
  const uint64_t rb = *row_bytes_or;
  auto* s = static_cast<cudaStream_t>(stream);
  switch (t) {
    case GgmlType::F32:
      launch<F32Chunk>(w, rb, n_out, n_in, x, y, s);
      break;
    case GgmlType::F16:
      launch<F16Chunk>(w, rb, n_out, n_in, x, y, s);
      break;
    case GgmlType::Q4_0:
      launch<Q4_0Chunk>(w, rb, n_out, n_in, x, y, s);
      break;
    case GgmlType::Q8_0:
      launch<Q8_0Chunk>(w, rb, n_out, n_in, x, y, s);
      break;
    case GgmlType::Q4_K:
      launch<Q4KChunk>(w, rb, n_out, n_in, x, y, s);
      break;
    case GgmlType::Q6_K:
      launch<Q6KChunk>(w, rb, n_out, n_in, x, y, s);
      break;
    default:
      break;
  }
  check_cuda(cudaGetLastError(), std::string("CUDA mat-vec launch (") + type_name(t) + ")");
}

}  // namespace momentkv::kernels::cuda
