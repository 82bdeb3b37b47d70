// RMSNorm on the GPU (ops::rms_norm's operation, row by row).
#pragma once

#include <cstdint>

namespace momentkv::kernels::cuda {

// y[r][i] = x[r][i] / sqrt(mean_i(x[r][i]^2) + eps) * w[i] for r < n_rows, i < n: device
// pointers, y may alias x. Runs on `stream` without waiting; throws Error for a bad shape or a
// failed launch.
void rms_norm(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y,
              void* stream = nullptr);

}  // namespace momentkv::kernels::cuda
