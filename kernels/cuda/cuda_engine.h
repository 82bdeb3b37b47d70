// The CUDA engine: one sequence's forward pass with everything on the GPU (DESIGN.md §10). The
// weights, the KV cache (f16, KvStorage's layout), its bookkeeping (position, birth step and
// score per slot) and every activation live in one device arena sized up front; a decode step
// runs every layer — mat-vecs, RoPE, the KV write, attention with the Moment-KV score update
// fused in, and the eviction (selection and compaction) — without a host round trip, and ends
// with the logits row copied back, or only the greedy token (argmax on the device). Prompt
// chunks go through cuBLASLt (gemm.h). The CPU Engine is its oracle.
//
// It runs the `full` and `moment` policies in decode scope with an f16 cache; the other
// policies, unified scope, snapkv prompt compression and attention probes are the CPU engine's
// (unsupported() says which option is the obstacle).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "core/engine/sequence.h"
#include "core/model/model.h"
#include "kernels/cuda/device.h"

namespace momentkv::kernels::cuda {

class CudaEngine final : public Sequence {
 public:
  // Why `options` cannot run on the CUDA engine, or nothing when they can.
  static std::optional<std::string> unsupported(const Model& model, const EngineOptions& options);
  // Device bytes the engine takes for `model` and `options`: weights, KV cache, bookkeeping,
  // activations and the GEMM's buffers.
  static uint64_t device_bytes_needed(const Model& model, const EngineOptions& options);

  // Copies the weights to device `device` and reserves everything. Throws Error when there is no
  // such device, the options are unsupported, or the arena does not fit the device's memory.
  CudaEngine(const Model& model, EngineOptions options, int device = 0);
  ~CudaEngine() override;
  CudaEngine(const CudaEngine&) = delete;
  CudaEngine& operator=(const CudaEngine&) = delete;

  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false,
                              Region region = Region::kPrefill) override;
  bool can_eval(int32_t n, Region region) const override;
  void reset() override;
  int32_t n_past() const override;
  int32_t n_ctx() const override;
  int32_t max_prompt() const override;
  int32_t n_vocab() const override;
  CompressionSummary compression() const override;

  // The greedy next token, chosen on the device (only its id crosses to the host).
  int32_t eval_greedy(std::span<const int32_t> tokens, Region region = Region::kPrefill) override;

  // Slots in use per lane, and of them the prompt's (tests compare with the CPU cache).
  int32_t n_used() const;
  int32_t n_prefill() const;
  // The positions lane (layer, kv_head) holds, slot by slot (copied from the device).
  std::vector<int32_t> positions(int32_t layer, int32_t kv_head) const;
  uint64_t device_bytes() const;
  const DeviceInfo& device() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace momentkv::kernels::cuda
