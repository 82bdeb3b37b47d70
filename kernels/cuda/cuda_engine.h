// The CUDA engine: one sequence's state on the GPU, run by a CudaModel (cuda_model.h: the device,
// the weights, the GEMM and the activations, shared by every sequence of that model). The
// sequence's own arena holds its f16 KV cache (KvStorage's layout), the cache's bookkeeping
// (position, birth step and score per slot) and attention scratch. A decode step runs every layer
// — mat-vecs, RoPE, the KV write, attention with the Moment-KV score update fused in, and the
// eviction (selection and compaction) — without a host round trip, and ends with the logits row
// copied back, or only the greedy token (argmax on the device); its kernels are launched as one
// CUDA graph (step_graph.h) unless EngineOptions::cuda_graph is off. Prompt chunks go through
// cuBLASLt (gemm.h). The CPU Engine is its oracle (DESIGN.md §10).
//
// It runs the `full` and `moment` policies (either scope, every moment option) with an f16 cache;
// the other policies, snapkv prompt compression and attention probes are the CPU engine's
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
#include "kernels/cuda/cuda_model.h"
#include "kernels/cuda/device.h"

namespace momentkv::kernels::cuda {

class CudaEngine final : public Sequence {
 public:
  // Why `options` cannot run on the CUDA engine, or nothing when they can.
  static std::optional<std::string> unsupported(const Model& model, const EngineOptions& options);
  // Device bytes the sequence's own arena takes (KV cache, bookkeeping, attention scratch; the
  // CudaModel's bytes are not included).
  static uint64_t device_bytes_needed(const Model& model, const EngineOptions& options);

  // A sequence on `model` (which must outlive it); prompt passes take at most model.n_batch()
  // tokens. Throws Error when the options are unsupported or the arena does not fit the device.
  CudaEngine(CudaModel& model, EngineOptions options);
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

  // Slots in use per lane, and prompt tokens fed since reset() (the prompt's slots in decode
  // scope; unified scope may have evicted some of them). Tests compare with the CPU cache.
  int32_t n_used() const;
  int32_t n_prefill() const;
  // The positions lane (layer, kv_head) holds, slot by slot (copied from the device).
  std::vector<int32_t> positions(int32_t layer, int32_t kv_head) const;
  // Bytes of this sequence's own arena.
  uint64_t device_bytes() const;
  // How decode steps run: "graphs (S steps, U updated in place)", "launch by launch (off)", or
  // "launch by launch (a graph failed: ...)" (EngineOptions::cuda_graph, step_graph.h).
  std::string decode_graphs() const;
  const DeviceInfo& device() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace momentkv::kernels::cuda
