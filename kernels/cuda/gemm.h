// Prefill matrix products on the GPU through cuBLASLt: y = x · Wᵀ for a batch of activation rows.
// cuBLASLt has no GGUF block types, so each weight is dequantized to f16, a tile of rows at a
// time, into one tile buffer, and multiplied with the activations converted to f16, accumulating
// in f32 (what llama.cpp's CUDA prefill does with cuBLAS). The workspace and every shape's
// descriptors and heuristic choice are made once and kept. All memory comes from the caller's
// arena; nothing is allocated per call.
#pragma once

#include <cstdint>
#include <memory>

#include "core/tensor/ggml_type.h"
#include "kernels/cuda/device.h"

namespace momentkv::kernels::cuda {

class Gemm {
 public:
  // Bytes of arena a Gemm for rows of up to max_n_in elements and max_tokens rows takes.
  static uint64_t bytes_needed(int64_t max_n_in, int64_t max_tokens);
  // Takes its buffers from `arena`; throws Error when cuBLASLt cannot start.
  Gemm(DeviceArena& arena, int64_t max_n_in, int64_t max_tokens);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // y[n_tokens][n_out] = x[n_tokens][n_in] · W[n_out][n_in]ᵀ, W of type t in GGUF rows (device
  // pointers). Runs on `stream` without waiting; throws Error for a type it cannot read, a shape
  // over the limits given at construction, or a cuBLASLt failure.
  void matmul(GgmlType t, const void* w, int64_t n_out, int64_t n_in, const float* x,
              int64_t n_tokens, float* y, void* stream);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace momentkv::kernels::cuda
