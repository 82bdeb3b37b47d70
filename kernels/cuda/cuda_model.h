// A model on the GPU, shared by the sequences (CudaEngine) that run on it: the device and one
// stream, the weights, the cuBLASLt GEMM and the activation buffers of one forward pass of up to
// n_batch tokens, all in one arena sized up front. Sequences run their passes on its stream one
// at a time (the tools and the daemon's scheduler drive one pass at a time), so the activations
// are shared; each sequence keeps only its KV cache in an arena of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/model/model.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_model.h"
#include "kernels/cuda/gemm.h"

namespace momentkv::kernels::cuda {

// One forward pass's device buffers, [n_batch] rows each.
struct ForwardBuffers {
  float *x = nullptr, *xn = nullptr, *q = nullptr, *k = nullptr, *v = nullptr;
  float *attn = nullptr, *tmp = nullptr, *gate = nullptr, *up = nullptr, *logits = nullptr;
  float* cs = nullptr;  // RoPE angles [n_batch][n_rot]
  int32_t *tokens = nullptr, *pos = nullptr, *next = nullptr;
};

class CudaModel {
 public:
  // Why `model` cannot run on the CUDA kernels (a weight type without one, heads too large for
  // the attention kernel), or nothing.
  static std::optional<std::string> unsupported(const Model& model);
  // Device bytes a CudaModel of `model` for passes of up to n_batch tokens takes.
  static uint64_t device_bytes_needed(const Model& model, int32_t n_batch);
  // Copies the weights to device `device` and reserves the rest. Throws Error when there is no
  // such device, a weight type has no CUDA kernel, or the arena does not fit the device.
  CudaModel(const Model& model, int32_t n_batch, int device = 0);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  const Model& model() const;
  int32_t n_batch() const;
  int device_index() const;
  const DeviceInfo& info() const;
  const DeviceModel& weights() const;
  Gemm& gemm();
  const ForwardBuffers& buffers() const;
  void* stream() const;  // a cudaStream_t
  uint64_t device_bytes() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace momentkv::kernels::cuda
