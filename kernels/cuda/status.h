// CUDA status codes to momentkv::Error, for the .cu files of kernels/cuda (includes the CUDA
// runtime header: not for plain C++ files).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/util/error.h"

namespace momentkv::kernels::cuda {

// Throws Error("what: CUDA error name (description)") unless `status` is cudaSuccess.
inline void check_cuda(cudaError_t status, const std::string& what,
                       SourceLocation loc = SourceLocation::current()) {
  if (status == cudaSuccess) return;
  throw Error(what + ": CUDA " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")",
              loc);
}

}  // namespace momentkv::kernels::cuda
