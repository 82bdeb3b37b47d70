// Memory as a budget, not a hope: what a generation needs (weights + KV + scratch + what the
// process already holds) is computed up front and reserved against `memory.budget`; a generation
// that was admitted can then never run out of memory mid-way.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "core/engine/engine.h"

namespace momentkv {

// The worst case of one engine, in bytes.
struct MemoryPlan {
  uint64_t weights = 0;  // tensor bytes of the mapped model (counted whole, touched or not)
  uint64_t kv = 0;       // K and V rows reserved for prompt + decode region
  uint64_t scratch = 0;  // activations, logits, KV bookkeeping, per-thread buffers
  uint64_t base = 0;     // what the process holds besides these (code, tokenizer, heap)
  uint64_t total() const { return weights + kv + scratch + base; }
  // "1.2 MiB weights + 48 KiB KV + ... = N bytes"
  std::string describe() const;
};

// Plans an engine for `model` with `options` on `n_threads` threads; `base` is the process's
// resident memory outside weights, KV and scratch (e.g. current_rss_bytes() after loading).
MemoryPlan plan_memory(const Model& model, const EngineOptions& options, int n_threads,
                       uint64_t base);

// A byte budget shared by concurrent generations. Thread-safe.
class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t budget_bytes) : budget_(budget_bytes) {}
  // Reserves `bytes` if they fit; otherwise returns an error that states the bytes needed and
  // available.
  std::optional<std::string> try_reserve(uint64_t bytes, const std::string& what);
  void release(uint64_t bytes);
  // Changes the budget (a reload). Lowering it below what is reserved is allowed: nothing is
  // taken back, and nothing more is reserved until enough has been released.
  void set_budget(uint64_t budget_bytes);
  uint64_t budget() const;
  uint64_t used() const;
  // Bytes that may still be reserved (0 while a lowered budget is over-committed).
  uint64_t available() const;

 private:
  uint64_t budget_;  // guarded by mu_
  mutable std::mutex mu_;
  uint64_t used_ = 0;
};

// "512 MiB" style rendering.
std::string format_bytes(uint64_t bytes);
// Parses "512MiB", "2G", "1.5GB", "1000000" into bytes; nullopt when malformed.
std::optional<uint64_t> parse_bytes(const std::string& text);

}  // namespace momentkv
