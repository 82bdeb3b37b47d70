// KV-cache flags shared by the generating subcommands: --policy, --alpha, --decode-budget,
// --kv-type, --kv-scope, --grace, --normalize, --granularity, --recent, --sinks,
// --prefill-budget, --memory-budget.
#pragma once

#include <cstdint>
#include <optional>

#include "core/kv/kv_config.h"
#include "tools/args.h"

namespace momentkv::tools {

class KvOptions {
 public:
  // Registers the flags on `p`.
  void add_to(ArgParser& p);
  // The configuration for a generation of up to `max_tokens` tokens (-1: the rest of `n_ctx`
  // after `n_prompt`): `full` without --decode-budget gets exactly that many decode slots.
  KvConfig config(int32_t max_tokens, int32_t n_prompt, int32_t n_ctx) const;
  std::optional<uint64_t> memory_budget() const { return memory_budget_; }
  // Takes the [kv] and [memory] values of a config file as defaults.
  void apply_config(const KvConfig& kv, uint64_t memory_budget);

 private:
  KvConfig kv_;
  bool budget_given_ = false;
  std::optional<uint64_t> memory_budget_;
};

}  // namespace momentkv::tools
