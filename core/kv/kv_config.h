// What the KV cache of one generation does: policy, budgets, element type and policy options.
// Names match the config file and the `momentkv run` flags.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/kv/kv_type.h"

namespace momentkv {

// Which tokens a decode-time policy may evict: only generated ones (the prompt's cache is frozen),
// or any (the whole cache at the same total size, as the H2O/TOVA/StreamingLLM papers do).
enum class KvScope { kDecode, kUnified };
// One score and one eviction per layer (all KV heads keep or drop a token together), or per
// layer and KV head.
enum class Granularity { kLayer, kKvHead };

const char* kv_scope_name(KvScope s);
const char* granularity_name(Granularity g);

struct KvConfig {
  std::string policy = "full";  // full | moment | h2o | tova | streaming | scope
  KvScope scope = KvScope::kDecode;
  KvType type = KvType::kF16;
  int32_t decode_budget = 512;  // B_d: resident generated tokens per lane (0 = unlimited for full)
  // moment
  float alpha = 0.9f;
  int32_t grace = 0;       // minimum residency in decode steps before a token may be evicted
  bool normalize = false;  // compare bias-corrected scores I / ((1 - alpha^age) / (1 - alpha))
  Granularity granularity = Granularity::kLayer;
  // h2o / scope: protected recent window in tokens (-1: policy default, half the budget);
  // streaming: attention sinks kept at the start of the sequence (unified scope).
  int32_t recent = -1;
  int32_t sinks = 4;
  // snapkv prefill compression: a prompt longer than this many tokens is compressed to it
  // (0 = never). Observation window and pooling kernel as in the SnapKV paper.
  int32_t prefill_budget = 0;
  int32_t snapkv_window = 32;
  int32_t snapkv_kernel = 5;
  // Prompt tokens processed per forward pass (the engine's batch): with prefill compression the
  // prompt region holds prefill_budget + prefill_chunk slots.
  int32_t prefill_chunk = 64;

  // "paper" mode for moment: grace 0, no normalization, layer granularity.
  bool paper_mode() const { return grace == 0 && !normalize && granularity == Granularity::kLayer; }
  // An error message naming the field and value when the configuration is invalid.
  std::optional<std::string> validate() const;
  // True when the policy evicts (everything but `full`).
  bool evicts() const { return policy != "full"; }
  // Whether a prompt of n tokens is compressed.
  bool compresses_prompt(int32_t n) const { return prefill_budget > 0 && n > prefill_budget; }
  // The recent window the policy uses after defaults.
  int32_t effective_recent() const;
};

}  // namespace momentkv
