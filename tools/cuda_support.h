// The CUDA engine as the tools reach it (`--backend cuda`). In a build without CUDA every
// function here throws Error saying so: asking for CUDA there is a clear error, not a fallback.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/engine/engine.h"
#include "core/engine/sequence.h"
#include "core/model/model.h"

namespace momentkv::tools {

// Whether this build has the CUDA engine (MOMENTKV_CUDA found nvcc).
bool cuda_built();

// One model on GPU 0 (its weights, GEMM and activations), and the sequences made from it.
class CudaDevice {
 public:
  // Copies `model` to GPU 0 for prompt passes of up to n_batch tokens. Throws Error when the
  // build has no CUDA, there is no device, the model has weights the kernels cannot read, or the
  // device lacks the memory.
  static std::unique_ptr<CudaDevice> open(const Model& model, int32_t n_batch);
  // Device bytes open() takes, and each sequence of `options` on top.
  static uint64_t model_bytes(const Model& model, int32_t n_batch);
  static uint64_t sequence_bytes(const Model& model, const EngineOptions& options);

  virtual ~CudaDevice() = default;
  // A sequence on this device (it must not outlive the CudaDevice). Throws Error for options
  // that need the CPU engine, or when the device lacks the memory.
  virtual std::unique_ptr<Sequence> make_sequence(const EngineOptions& options) = 0;
  // "NAME, sm_XY, N SMs, G GiB[, integrated ...]".
  virtual std::string description() const = 0;
  // How a sequence made here runs its decode steps (CudaEngine::decode_graphs).
  virtual std::string decode_graphs(const Sequence& sequence) const = 0;
  // Device-to-device copy bandwidth in GB/s (1e9 bytes, read + write).
  virtual double copy_bandwidth_gb_per_s() = 0;
};

}  // namespace momentkv::tools
