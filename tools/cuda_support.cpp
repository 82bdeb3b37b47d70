#include "tools/cuda_support.h"

#include <cstdio>

#include "core/util/error.h"

#if MOMENTKV_HAVE_CUDA
#include "kernels/cuda/cuda_engine.h"
#include "kernels/cuda/cuda_model.h"
#include "kernels/cuda/device.h"
#endif

namespace momentkv::tools {

#if MOMENTKV_HAVE_CUDA

namespace {

class Device final : public CudaDevice {
 public:
  Device(const Model& model, int32_t n_batch) : model_(model, n_batch) {}

  std::unique_ptr<Sequence> make_sequence(const EngineOptions& options) override {
    return std::make_unique<kernels::cuda::CudaEngine>(model_, options);
  }

  std::string description() const override {
    const kernels::cuda::DeviceInfo& d = model_.info();
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s, sm_%d%d, %d SMs, %.1f GiB%s", d.name.c_str(), d.sm_major,
                  d.sm_minor, d.n_sm, static_cast<double>(d.total_bytes) / (1 << 30),
                  d.integrated ? ", integrated (shares the system's DRAM)" : "");
    return buf;
  }

  std::string decode_graphs(const Sequence& sequence) const override {
    const auto* engine = dynamic_cast<const kernels::cuda::CudaEngine*>(&sequence);
    return engine ? engine->decode_graphs() : "not a CUDA sequence";
  }

  double copy_bandwidth_gb_per_s() override {
    return kernels::cuda::measure_copy_bandwidth(uint64_t{256} << 20) / 1e9;
  }

 private:
  kernels::cuda::CudaModel model_;
};

}  // namespace

bool cuda_built() {
  return true;
}

std::unique_ptr<CudaDevice> CudaDevice::open(const Model& model, int32_t n_batch) {
  return std::make_unique<Device>(model, n_batch);
}

uint64_t CudaDevice::model_bytes(const Model& model, int32_t n_batch) {
  return kernels::cuda::CudaModel::device_bytes_needed(model, n_batch);
}

uint64_t CudaDevice::sequence_bytes(const Model& model, const EngineOptions& options) {
  return kernels::cuda::CudaEngine::device_bytes_needed(model, options);
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
std::unique_ptr<CudaDevice> CudaDevice::open(const Model&, int32_t) {
  no_cuda();
}
uint64_t CudaDevice::model_bytes(const Model&, int32_t) {
  no_cuda();
}
uint64_t CudaDevice::sequence_bytes(const Model&, const EngineOptions&) {
  no_cuda();
}

#endif

}  // namespace momentkv::tools
