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

// The CUDA engine for `model` on device 0. Throws Error when the build has no CUDA, there is no
// device, the options need the CPU engine, or the device lacks the memory.
std::unique_ptr<Sequence> make_cuda_engine(const Model& model, const EngineOptions& options);

// "NAME, sm_XY, N SMs, G GiB[, integrated]" of device 0.
std::string cuda_device_description();
// Device bytes the CUDA engine takes for `model` and `options`.
uint64_t cuda_engine_bytes(const Model& model, const EngineOptions& options);
// Device-to-device copy bandwidth of device 0 in GB/s (1e9 bytes, read + write).
double cuda_copy_bandwidth_gb_per_s();

}  // namespace momentkv::tools
