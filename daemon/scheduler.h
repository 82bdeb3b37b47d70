// The inference worker: one thread owns the model's compute; requests wait in a bounded FIFO
// queue until their worst case (prompt KV + decode region + scratch) can be reserved against the
// memory budget, then run interleaved token by token so a long generation does not starve a
// short one. Asio threads only submit; they never run model code.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/engine/backend.h"
#include "core/engine/batch_decoder.h"
#include "core/engine/engine.h"
#include "core/engine/generation_session.h"
#include "core/engine/memory_budget.h"
#include "core/tokenizer/tokenizer.h"
#include "daemon/api.h"
#include "daemon/latency_histogram.h"
#include "daemon/probe_runner.h"
#include "daemon/telemetry/telemetry.h"
#include "ipc/http_types.h"

namespace momentkv::daemon {

// Where generations run when not on the CPU engine (the CUDA engine, daemon/main.cpp): makes a
// job's sequence and says what one costs. Such sequences are fed one at a time (the batch decoder
// is the CPU engine's) and give no per-layer telemetry.
class SequenceMaker {
 public:
  virtual ~SequenceMaker() = default;
  // Why a generation with these options cannot run here, or nothing.
  virtual std::optional<std::string> unsupported(const Model& model,
                                                 const EngineOptions& options) const = 0;
  // Bytes one sequence with these options reserves (counted against the memory budget).
  virtual uint64_t bytes(const Model& model, const EngineOptions& options) const = 0;
  virtual std::unique_ptr<Sequence> make(const Model& model, const EngineOptions& options) = 0;
};

struct SchedulerOptions {
  EngineOptions engine;  // precision, batch, context (kv set per request)
  KvConfig kv;           // the operator's default compression
  ApiLimits limits;
  int32_t queue_length = 16;  // requests waiting for memory
  int32_t decode_batch = 8;   // generations decoded together in one pass over the weights
  int n_threads = 1;
  telemetry::Telemetry* telemetry = nullptr;  // where finished requests are recorded (optional)
  double layer_stats_rate = 0.0;              // share of requests with per-layer statistics
  ProbeOptions probe;
  // Null: generations run on the CPU engine over the scheduler's backend.
  SequenceMaker* sequences = nullptr;
  // Test hook (MOMENTKV_DEBUG_STALL_MS, read once at start): the worker sleeps this long inside
  // the next request's first step, a real stall for the watchdog tests (SD-4). 0: off.
  std::chrono::milliseconds debug_stall{0};
};

// Counters for /metrics.
struct SchedulerStats {
  std::atomic<int64_t> requests_ok{0}, requests_error{0}, requests_cancelled{0},
      requests_rejected{0};
  // Requests whose worst case was reserved (they run), and requests that had to wait in the
  // queue for memory first (counted once, when they start waiting).
  std::atomic<int64_t> requests_admitted{0}, requests_queued{0};
  std::atomic<int64_t> prompt_tokens{0}, generated_tokens{0}, evicted_tokens{0};
  std::atomic<int64_t> queue{0}, active{0};
  std::atomic<uint64_t> kv_reserved_bytes{0};
  LatencyHistogram ttft;         // submit -> first token
  LatencyHistogram inter_token;  // between consecutive tokens of one generation
};

class Scheduler {
 public:
  // A model the scheduler serves, kept alive by every generation that uses it.
  struct Served {
    std::shared_ptr<const Model> model;
    std::shared_ptr<const Tokenizer> tokenizer;
    std::string name;
    std::string hash;  // gguf_fingerprint of the file
  };

  // `budget` must already hold the weights' and the process's reservation: what is available now
  // is what generations may share.
  Scheduler(Served served, Backend& backend, MemoryBudget& budget, SchedulerOptions options);
  ~Scheduler();

  // Validates, sizes and queues a request; returns an error when it can never fit, the queue is
  // full or the daemon is shutting down. The writer receives the response later.
  std::optional<ApiError> submit(CompletionRequest request, const std::string& prompt,
                                 std::shared_ptr<ipc::ResponseWriter> writer,
                                 ipc::PeerCredentials peer = {});
  void start();
  // Refuses new requests, lets running ones finish until `deadline`, then cancels what is left
  // with a terminal event; joins the worker.
  void shutdown(std::chrono::milliseconds deadline);
  // Replaces the default compression (SIGHUP); running requests keep theirs.
  void set_default_kv(const KvConfig& kv);
  // Switches to another model (SIGHUP with a new model.path) without dropping requests: running
  // generations finish on the old model, queued ones wait and then run on the new one. The
  // budget must already hold `next`'s weights; `old_weight_bytes` are released after the switch.
  void replace_model(Served next, uint64_t old_weight_bytes);
  // Changes the memory budget (SIGHUP). Running generations keep their reservations; nothing new
  // is admitted until what is reserved fits the new budget; waiting requests that can never fit
  // it are refused with budget_exceeded. Returns why not when `bytes` does not cover what the
  // weights, the process and the batch decoder hold (the budget is then unchanged).
  std::optional<std::string> set_memory_budget(uint64_t bytes);
  // The model served now.
  Served served() const;
  const SchedulerStats& stats() const { return stats_; }
  const ProbeCounters& probe_counters() const { return probes_.counters(); }
  // Monotonic count of worker loop iterations (the watchdog heartbeat).
  uint64_t heartbeat() const { return heartbeat_.load(); }
  // True while the worker sleeps with nothing to do (no progress is owed to the watchdog).
  bool parked() const { return parked_.load(); }

 private:
  struct Job;
  void run();
  // One unit of work: start and prefill, or sample the next token (which is fed afterwards by
  // feed_sampled()); true when the job is finished.
  bool advance(Job& job);
  // Feeds the tokens the active jobs sampled: together through the batch decoder (one pass over
  // the weights), a job of another model or a lone one by itself. Finishes jobs that fail.
  void feed_sampled();
  // Reserves the batch decoder's scratch for `model` against the budget (none when it does not
  // fit: generations are then fed one by one).
  void reserve_decoder(const Model& model);
  void finish(Job& job, const ApiError* error);
  // Sends the request's telemetry row; offers it for a fidelity probe.
  void record(Job& job, const ApiError* error);
  // Sizes a job for the model served now: engine options and bytes to reserve.
  std::optional<ApiError> size_job(Job& job);

  Served served_;                  // guarded by mu_
  std::optional<Served> pending_;  // a model switch waiting for running generations to end
  uint64_t pending_release_ = 0;
  Backend& backend_;
  MemoryBudget& budget_;
  SchedulerOptions options_;
  uint64_t job_capacity_ = 0;  // budget left for generations once the weights are counted
  bool resize_queue_ = false;  // the budget changed: re-check what waits against job_capacity_
  SchedulerStats stats_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;     // waiting for memory, FIFO
  std::deque<std::unique_ptr<Job>> admitted_;  // reserved at submit, not yet picked up
  std::list<std::unique_ptr<Job>> active_;     // worker thread only
  bool stopping_ = false;
  bool cancel_all_ = false;
  std::atomic<uint64_t> heartbeat_{0};
  std::atomic<bool> parked_{false};
  std::chrono::milliseconds debug_stall_{0};  // worker thread only; spent by the first stall
  uint64_t next_id_ = 1;
  ProbeRunner probes_;                     // worker thread only
  std::unique_ptr<BatchDecoder> decoder_;  // worker thread only (created for served_'s model)
  const Model* decoder_model_ = nullptr;   // the model decoder_bytes_ are reserved for
  uint64_t decoder_bytes_ = 0;
  std::mt19937_64 rng_;
  std::thread worker_;
};

}  // namespace momentkv::daemon
