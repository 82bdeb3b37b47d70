// Fidelity probes in the daemon (issue 6, DESIGN.md §6): a sampled share of the finished requests
// whose cache was compressed is kept; when the worker is idle the probe replays its prompt and
// output teacher-forced through a full cache and a few candidate configurations (the request's
// own, and other budgets and alphas for `momentkv tune`), one forward pass per step, and writes
// one fidelity_probes row per candidate. Its engines' memory is reserved against the budget
// before they exist; any new request preempts the probe at once and frees them.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/engine/backend.h"
#include "core/engine/engine.h"
#include "core/engine/generation_result.h"
#include "core/engine/memory_budget.h"
#include "core/eval/fidelity_probe.h"
#include "daemon/telemetry/telemetry.h"

namespace momentkv::daemon {

struct ProbeOptions {
  double rate = 0.0;             // share of compressed requests probed
  int32_t max_tokens = 256;      // output tokens replayed at most
  double max_ms = 60'000;        // compute time after which a probe is abandoned
  std::vector<int32_t> budgets;  // candidate decode budgets; empty: B/4, B/2, B, 2B
  std::vector<double> alphas;    // candidate alphas; empty: the request's
  uint64_t seed = 0;             // sampling; 0: random
  size_t max_waiting = 8;        // requests kept for a probe; the oldest goes first
};

struct ProbeCounters {
  std::atomic<int64_t> completed{0};
  std::atomic<int64_t> preempted{0};  // stopped by new work, restarted later
  std::atomic<int64_t> aborted{0};    // failed or over max_ms
  std::atomic<int64_t> skipped{0};    // no memory for it, or replaced by a newer one
};

// What a probe needs from a finished request.
struct ProbeSubject {
  std::shared_ptr<const Model> model;
  std::string model_name, model_hash, request_id;
  EngineOptions engine;  // as the request ran (kv included)
  std::vector<int32_t> prompt, output;
};

class ProbeRunner {
 public:
  ProbeRunner(Backend& backend, MemoryBudget& budget, ProbeOptions options, int n_threads,
              telemetry::Telemetry* telemetry);
  ~ProbeRunner();

  // Whether a finished request is probed: compressed, at least two tokens, and drawn at `rate`
  // (asked before its tokens are copied into a ProbeSubject).
  bool wants(bool context_altered, size_t output_tokens);
  // Keeps a request wants() chose (when max_waiting already wait, the oldest of them is dropped
  // and counted as skipped).
  void offer(ProbeSubject subject);
  bool has_work() const { return !waiting_.empty() || probe_ != nullptr; }
  // One forward pass of the probe (starting it first: reserve, build). Only when idle.
  void step();
  // Work arrived: stop the running probe and free its memory; it starts over when idle again.
  void preempt();
  // Drops everything (shutdown).
  void stop();
  const ProbeCounters& counters() const { return counters_; }
  // The candidate configurations for a request that ran with `kv`.
  static std::vector<KvConfig> candidates(const KvConfig& kv, const ProbeOptions& options);

 private:
  void release();
  void finish();

  Backend& backend_;
  MemoryBudget& budget_;
  ProbeOptions options_;
  int n_threads_;
  telemetry::Telemetry* telemetry_;
  std::mt19937_64 rng_;
  std::deque<ProbeSubject> waiting_;
  std::unique_ptr<ProbeSubject> subject_;  // of the probe running
  std::unique_ptr<eval::FidelityProbe> probe_;
  std::vector<KvConfig> candidates_;
  uint64_t reserved_ = 0;
  ProbeCounters counters_;
};

}  // namespace momentkv::daemon
