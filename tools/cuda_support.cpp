#include "tools/cuda_support.h"

#include <cstdio>

#include "core/util/error.h"

#if MOMENTKV_HAVE_CUDA
#include "kernels/cuda/cuda_engine.h"
#include "kernels/cuda/device.h"
#endif

namespace momentkv::tools {

#if MOMENTKV_HAVE_CUDA

bool cuda_built() {
  return true;
}

std::unique_ptr<Sequence> make_cuda_engine(const Model& model, const EngineOptions& options) {
  return std::make_unique<kernels::cuda::CudaEngine>(model, options);
}

std::string cuda_device_description() {
  check(kernels::cuda::device_count() > 0,
        "no CUDA device: the CUDA backend needs an NVIDIA GPU and its driver");
  const kernels::cuda::DeviceInfo d = kernels::cuda::device_info(0);
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s, sm_%d%d, %d SMs, %.1f GiB%s", d.name.c_str(), d.sm_major,
                d.sm_minor, d.n_sm, static_cast<double>(d.total_bytes) / (1 << 30),
                d.integrated ? ", integrated (shares the system's DRAM)" : "");
  return buf;
}

uint64_t cuda_engine_bytes(const Model& model, const EngineOptions& options) {
  return kernels::cuda::CudaEngine::device_bytes_needed(model, options);
}

double cuda_copy_bandwidth_gb_per_s() {
  return kernels::cuda::measure_copy_bandwidth(uint64_t{256} << 20) / 1e9;
}

#else

namespace {
[[noreturn]] void no_cuda() {
  throw Error(
      "this momentkv was built without CUDA (MOMENTKV_CUDA=OFF, or no nvcc when it was "
      "configured): the cuda backend is not available; use the cpu backend or rebuild with "
      "-DMOMENTKV_CUDA=ON");
}
}  // namespace

bool cuda_built() {
  return false;
}
std::unique_ptr<Sequence> make_cuda_engine(const Model&, const EngineOptions&) {
  no_cuda();
}
std::string cuda_device_description() {
  no_cuda();
}
uint64_t cuda_engine_bytes(const Model&, const EngineOptions&) {
  no_cuda();
}
double cuda_copy_bandwidth_gb_per_s() {
  no_cuda();
}

#endif

}  // namespace momentkv::tools
