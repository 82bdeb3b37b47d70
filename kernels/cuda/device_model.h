// A model's weights copied to the GPU once, into the caller's device arena, in their GGUF
// layouts (quantized blocks stay as they are; norms and biases are f32).
#pragma once

#include <cstdint>
#include <vector>

#include "core/model/model.h"
#include "core/tensor/ggml_type.h"
#include "kernels/cuda/device.h"

namespace momentkv::kernels::cuda {

struct DeviceWeight {
  GgmlType type = GgmlType::F32;
  int64_t n_in = 0, n_out = 0;
  const void* data = nullptr;  // device: n_out rows of row_bytes(type, n_in)
};

struct DeviceLayer {
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // null without qkv_bias
  DeviceWeight wq, wk, wv, wo, w_gate, w_up, w_down;
};

class DeviceModel {
 public:
  // Bytes of arena the model's weights take (aligned pieces included).
  static uint64_t bytes_needed(const Model& model);
  // Copies every weight of `model` into `arena` (synchronously). Throws Error on a CUDA error
  // or when the arena is too small.
  DeviceModel(const Model& model, DeviceArena& arena);

  const DeviceWeight& token_embd() const { return token_embd_; }
  const DeviceWeight& output() const { return output_; }
  const float* output_norm() const { return output_norm_; }
  const DeviceLayer& layer(int32_t i) const { return layers_[static_cast<size_t>(i)]; }

 private:
  DeviceWeight token_embd_, output_;
  const float* output_norm_ = nullptr;
  std::vector<DeviceLayer> layers_;
};

}  // namespace momentkv::kernels::cuda
