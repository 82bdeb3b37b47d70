// Quantized mat-vec for decode (matvec.h). Shapes: W [n_out][n_in] in GGUF blocks, x [n_in],
// y [n_out], all f32 but W. Block grid: kWarps warps per block, one output row per warp; lane l
// sums chunks l, l + 32, ... of its row (32 weights each), then the warp adds its 32 partial
// sums with shuffles. Chunks are decoded by blocks.cuh as the scalar dequantizer decodes them;
// only the order of the additions differs from the reference dot.
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/blocks.cuh"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kWarps = 4;  // warps (output rows) per thread block

template <class Row>
__global__ void matvec_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int64_t n_in,
                              int64_t n_chunks, const float* __restrict__ x, float* __restrict__ y,
                              int64_t n_out) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= n_out) return;  // the whole warp: rows are per warp
  const int lane = static_cast<int>(threadIdx.x % 32);
  const uint8_t* r = w + static_cast<uint64_t>(row) * row_bytes;
  float sum = 0.0f;
  for (int64_t c = lane; c < n_chunks; c += 32) {
    float v[32];
    const int m = Row::chunk(r, c, n_in - 32 * c, v);
    const float* xc = x + 32 * c;
    for (int i = 0; i < m; ++i) sum += v[i] * xc[i];
  }
  sum = warp_sum(sum);
  if (lane == 0) y[row] = sum;
}

template <class Row>
void launch(const void* w, uint64_t row_bytes, int64_t n_out, int64_t n_in, const float* x,
            float* y, cudaStream_t stream) {
  const int64_t n_chunks = (n_in + 31) / 32;
  const auto blocks = static_cast<unsigned>((n_out + kWarps - 1) / kWarps);
  matvec_kernel<Row><<<blocks, 32 * kWarps, 0, stream>>>(static_cast<const uint8_t*>(w), row_bytes,
                                                         n_in, n_chunks, x, y, n_out);
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
  with_row_decoder(t, [&](auto row) { launch<decltype(row)>(w, rb, n_out, n_in, x, y, s); });
  check_cuda(cudaGetLastError(), std::string("CUDA mat-vec launch (") + type_name(t) + ")");
}

}  // namespace momentkv::kernels::cuda
