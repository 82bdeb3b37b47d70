// Runs a Model on a Backend: batched prompt processing (matrix-matrix) and one-token decode,
// keeping the sequence's KV cache.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/engine/backend.h"
#include "core/engine/forward_scratch.h"
#include "core/engine/sequence.h"
#include "core/kv/kv_cache.h"
#include "core/kv/kv_config.h"
#include "core/model/model.h"
#include "core/model/ops.h"

namespace momentkv {

struct EngineOptions {
  // Positions allowed: 0 = the model's trained context. Past it RoPE keeps using the true
  // position, which models were not trained on; the caller must opt in with a larger n_ctx.
  int32_t n_ctx = 0;
  // Prompt tokens the KV cache reserves. 0: n_ctx when kv.decode_budget is 0 (one plain cache
  // of n_ctx tokens shared by prompt and generation), else n_ctx - kv.decode_budget.
  int32_t max_prompt = 0;
  int32_t n_batch = 64;  // prompt tokens per forward pass
  MatmulPrecision precision = MatmulPrecision::kFast;
  KvConfig kv = plain_kv();
  // Record, on every decode step, each layer's attention (mean over all query heads) on every
  // resident position, before any eviction (evaluation diagnostics; costs a copy per layer).
  bool probe_attention = false;
  // The CUDA engine runs each decode step as one CUDA graph (kernels/cuda/step_graph.h) rather
  // than launching its kernels one by one. No effect on the CPU engine.
  bool cuda_graph = true;

  // A cache that never evicts, in f32 (the reference configuration).
  static KvConfig plain_kv() {
    KvConfig c;
    c.policy = "full";
    c.decode_budget = 0;
    c.type = KvType::kF32;
    return c;
  }
};

// The context size and prompt reservation options resolve to for `config` (0s filled in).
int32_t resolved_n_ctx(const ModelConfig& config, const EngineOptions& options);
int32_t resolved_max_prompt(const ModelConfig& config, const EngineOptions& options);
// options.kv with the prefill chunk the engine uses (its batch).
KvConfig resolved_kv(const EngineOptions& options);

class Engine final : public Sequence {
 public:
  Engine(const Model& model, Backend& backend, EngineOptions options);

  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false,
                              Region region = Region::kPrefill) override;
  bool can_eval(int32_t n, Region region) const override;

  int32_t n_past() const override { return n_past_; }
  int32_t n_ctx() const override { return n_ctx_; }
  int32_t max_prompt() const override { return max_prompt_; }
  int32_t n_vocab() const override { return model_.config().n_vocab; }
  void reset() override;
  CompressionSummary compression() const override { return CompressionSummary::from(kv_); }
  const Model& model() const { return model_; }
  const KvCache& kv() const { return kv_; }
  KvCache& kv() { return kv_; }
  // With EngineOptions::probe_attention: the last decode step's attention of `layer`, one entry
  // per resident position (pos[i], prob[i]); empty otherwise.
  struct AttentionProbe {
    std::vector<int32_t> pos;
    std::vector<float> prob;
  };
  const AttentionProbe& attention_probe(int32_t layer) const {
    return probes_[static_cast<size_t>(layer)];
  }
  // Checks the KV cache invariants after every forward pass (tests).
  void set_check_invariants(bool on) { check_invariants_ = on; }
  // Bytes of scratch buffers and KV cache this engine holds.
  uint64_t state_bytes() const;

 private:
  friend class BatchDecoder;
  // Rows [first, first + n) of a forward pass belong to one engine.
  struct Segment {
    Engine* engine;
    int32_t first, n;
    Region region;
  };
  // One pass over the weights for the rows of every segment (same model, backend and precision):
  // the matrix products run on all rows at once; RoPE, the KV cache, attention and eviction are
  // each segment's own. Logits go to `logits` for every row (all_rows) or for the last row of each
  // segment, in order; none when it is null.
  static void forward_segments(const Model& model, Backend& backend, MatmulPrecision precision,
                               ForwardScratch& s, const int32_t* tokens,
                               std::span<const Segment> segments, bool all_rows, float* logits);
  void forward(const int32_t* tokens, int32_t n, bool all_logits, float* logits, Region region);
  void record_probe(int32_t layer, int32_t n_queries);

  const Model& model_;
  Backend& backend_;
  EngineOptions options_;
  ops::Rope rope_;
  int32_t n_ctx_;
  int32_t max_prompt_;
  KvCache kv_;
  int32_t n_past_ = 0;
  bool check_invariants_ = false;
  ForwardScratch scratch_;  // sized for n_batch tokens
  std::vector<float> logits_;
  std::vector<AttentionProbe> probes_;  // [n_layer] when probing
};

}  // namespace momentkv
