// Embedding lookup (get_rows.h). Shapes: W [n_out][n_in] in GGUF blocks, ids [n_ids],
// out [n_ids][n_in] f32. One thread per 32-element chunk of an output row (blockIdx.y the id),
// decoded by blocks.cuh as the scalar dequantizer decodes it.
#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"
#include "kernels/cuda/blocks.cuh"
#include "kernels/cuda/get_rows.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <class Row>
__global__ void get_rows_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int64_t n_out,
                                int64_t n_in, const int32_t* __restrict__ ids,
                                float* __restrict__ out) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (32 * c >= n_in) return;
  const int32_t id = ids[blockIdx.y];
  float* dst = out + static_cast<int64_t>(blockIdx.y) * n_in + 32 * c;
  float v[32];
  int m = 0;
  if (id >= 0 && id < n_out) {
    m = Row::chunk(w + static_cast<uint64_t>(id) * row_bytes, c, n_in - 32 * c, v);
  } else {  // NaN: the caller broke the precondition
    m = n_in - 32 * c < 32 ? static_cast<int>(n_in - 32 * c) : 32;
    for (int i = 0; i < m; ++i) v[i] = __int_as_float(0x7fc00000);
  }
  for (int i = 0; i < m; ++i) dst[i] = v[i];
}

template <class Row>
void launch(const void* w, uint64_t row_bytes, int64_t n_out, int64_t n_in, const int32_t* ids,
            int64_t n_ids, float* out, cudaStream_t stream) {
  const int64_t n_chunks = (n_in + 31) / 32;
  const dim3 grid(static_cast<unsigned>((n_chunks + kThreads - 1) / kThreads),
                  static_cast<unsigned>(n_ids));
  get_rows_kernel<Row><<<grid, kThreads, 0, stream>>>(static_cast<const uint8_t*>(w), row_bytes,
                                                      n_out, n_in, ids, out);
}

}  // namespace

bool get_rows_supports(GgmlType t) {
  return device_reads(t);
}

void get_rows(GgmlType t, const void* w, int64_t n_out, int64_t n_in, const int32_t* ids,
              int64_t n_ids, float* out, void* stream) {
  check(get_rows_supports(t), "no CUDA get_rows for " + type_name(t) + " weights");
  check(n_out > 0 && n_in > 0 && n_ids >= 0 && n_ids <= 65535,
        "CUDA get_rows: bad shape " + std::to_string(n_ids) + " ids of " + std::to_string(n_out) +
            " x " + std::to_string(n_in));
  const auto rb = row_bytes(t, static_cast<uint64_t>(n_in));
  check(rb.has_value(), "CUDA get_rows: a row of " + std::to_string(n_in) +
                            " elements is not a whole number of " + type_name(t) + " blocks");
  if (n_ids == 0) return;
  auto* s = static_cast<cudaStream_t>(stream);
  with_row_decoder(
      t, [&](auto row) { launch<decltype(row)>(w, *rb, n_out, n_in, ids, n_ids, out, s); });
  check_cuda(cudaGetLastError(), "CUDA get_rows launch (" + type_name(t) + ")");
}

}  // namespace momentkv::kernels::cuda
