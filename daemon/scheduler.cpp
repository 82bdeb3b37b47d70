#include "daemon/scheduler.h"

#include <chrono>
#include <cstdio>
#include <thread>
#include <utility>

#include "core/util/error.h"
#include "daemon/telemetry/layer_records.h"

namespace momentkv::daemon {

using Clock = std::chrono::steady_clock;

struct Scheduler::Job {
  std::string id;
  std::string prompt;
  Served served;  // the model this job runs on (set when it is admitted)
  CompletionRequest request;
  GenerationRequest generation;
  EngineOptions engine_options;
  uint64_t reserve_bytes = 0;
  std::shared_ptr<ipc::ResponseWriter> writer;
  Clock::time_point submitted, started;
  std::unique_ptr<Sequence> sequence;
  Engine* engine = nullptr;  // the sequence when it runs on the CPU engine (batching, layer stats)
  std::unique_ptr<GenerationSession> session;
  double ttft_ms = -1;
  Clock::time_point last_token;
  ipc::PeerCredentials peer;
  bool streaming = false;
  bool reserved = false;
  bool finished = false;  // ended while its token was being fed
};

Scheduler::Scheduler(Served served, Backend& backend, MemoryBudget& budget,
                     SchedulerOptions options)
    : served_(std::move(served)),
      backend_(backend),
      budget_(budget),
      options_(std::move(options)),
      probes_(backend, budget, options_.probe, options_.n_threads, options_.telemetry),
      rng_(std::random_device{}()) {
  reserve_decoder(*served_.model);
  job_capacity_ = budget.available();
  debug_stall_ = options_.debug_stall;
}

Scheduler::Served Scheduler::served() const {
  std::lock_guard<std::mutex> lock(mu_);
  return served_;
}

void Scheduler::replace_model(Served next, uint64_t old_weight_bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = std::move(next);
    pending_release_ += old_weight_bytes;
  }
  cv_.notify_one();
}

std::optional<ApiError> Scheduler::size_job(Job& job) {
  // Caller holds mu_.
  job.served = served_;
  const auto n_prompt =
      static_cast<int32_t>(job.served.tokenizer->encode(job.prompt, true, true).size());
  if (n_prompt == 0) return ApiError{400, "invalid_request", "the prompt is empty"};
  EngineOptions eo = options_.engine;
  eo.kv = job.engine_options.kv;
  eo.max_prompt = n_prompt;
  const int32_t n_ctx = eo.n_ctx > 0 ? eo.n_ctx : job.served.model->config().n_ctx_train;
  if (n_prompt >= n_ctx) {
    return ApiError{400, "context_exceeded",
                    "the prompt has " + std::to_string(n_prompt) + " tokens; the context is " +
                        std::to_string(n_ctx)};
  }
  if (options_.sequences) {
    if (auto why = options_.sequences->unsupported(*job.served.model, eo)) {
      return ApiError{400, "invalid_request", *why};
    }
    job.reserve_bytes = options_.sequences->bytes(*job.served.model, eo);
  } else {
    const MemoryPlan plan = plan_memory(*job.served.model, eo, options_.n_threads, 0);
    job.reserve_bytes = plan.kv + plan.scratch;
  }
  job.engine_options = eo;
  if (job.reserve_bytes > job_capacity_) {
    return ApiError{400, "budget_exceeded",
                    "this request needs " + format_bytes(job.reserve_bytes) +
                        " of KV cache and scratch; the memory budget leaves " +
                        format_bytes(job_capacity_) + " for generations after the weights"};
  }
  return std::nullopt;
}

Scheduler::~Scheduler() {
  shutdown(std::chrono::milliseconds(0));
  if (decoder_bytes_) budget_.release(decoder_bytes_);
}

void Scheduler::start() {
  worker_ = std::thread([this] { run(); });
}

void Scheduler::set_default_kv(const KvConfig& kv) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.kv = kv;
}

std::optional<std::string> Scheduler::set_memory_budget(uint64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // What is not for generations (weights, the process, telemetry, the batch decoder) stays
    // reserved whatever the budget; generations share the rest.
    const uint64_t old_budget = budget_.budget();
    const uint64_t fixed = old_budget > job_capacity_ ? old_budget - job_capacity_ : 0;
    if (bytes <= fixed) {
      return "a memory budget of " + format_bytes(bytes) +
             " leaves nothing for generations: " + format_bytes(fixed) +
             " are held by the model's weights and the process";
    }
    budget_.set_budget(bytes);
    job_capacity_ = bytes - fixed;
    resize_queue_ = true;
  }
  cv_.notify_one();
  return std::nullopt;
}

std::optional<ApiError> Scheduler::submit(CompletionRequest request, const std::string& prompt,
                                          std::shared_ptr<ipc::ResponseWriter> writer,
                                          ipc::PeerCredentials peer) {
  auto job = std::make_unique<Job>();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return ApiError{503, "shutting_down", "the daemon is shutting down"};
  auto kv = apply_overrides(options_.kv, request, options_.limits);
  if (auto* err = std::get_if<ApiError>(&kv)) return *err;
  job->prompt = prompt;
  job->generation.prompt = prompt;
  job->generation.sampling = request.sampling;
  job->engine_options.kv = std::get<KvConfig>(kv);
  if (job->engine_options.kv.policy == "full") {
    // A full cache must hold the whole generation.
    job->engine_options.kv.decode_budget = std::max(1, request.sampling.max_tokens);
  }
  job->request = std::move(request);
  job->writer = std::move(writer);
  job->peer = peer;
  job->submitted = Clock::now();
  job->id = (job->request.chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_++);
  if (auto err = size_job(*job)) {
    ++stats_.requests_rejected;
    record(*job, &*err);  // refused requests are evidence for the budget too
    return err;
  }
  // Admitted at once when nobody waits ahead of it, no model switch is pending and its worst case
  // fits now; else it waits (queue_length counts only requests waiting for memory).
  if (queue_.empty() && !pending_ &&
      !budget_.try_reserve(job->reserve_bytes, "request " + job->id)) {
    job->reserved = true;
    stats_.kv_reserved_bytes += job->reserve_bytes;
    ++stats_.requests_admitted;
    admitted_.push_back(std::move(job));
    cv_.notify_one();
    return std::nullopt;
  }
  if (static_cast<int32_t>(queue_.size()) >= options_.queue_length) {
    ++stats_.requests_rejected;
    const ApiError err{503, "queue_full",
                       "the request queue is full (" + std::to_string(options_.queue_length) +
                           " waiting); retry later"};
    record(*job, &err);
    return err;
  }
  queue_.push_back(std::move(job));
  stats_.queue = static_cast<int64_t>(queue_.size());
  ++stats_.requests_queued;
  cv_.notify_one();
  return std::nullopt;
}

namespace {
// One log line per finished request: who asked (SO_PEERCRED), what it cost, what compression did.
void log_request(const std::string& id, const ipc::PeerCredentials& peer, const std::string& what) {
  std::fprintf(stderr, "<6>momentkvd: %s uid=%u gid=%u pid=%d: %s\n", id.c_str(),
               static_cast<unsigned>(peer.uid), static_cast<unsigned>(peer.gid),
               static_cast<int>(peer.pid), what.c_str());
}
}  // namespace

void Scheduler::record(Job& job, const ApiError* error) {
  // Called on the worker thread, or under mu_ from submit() for a refused request (no engine
  // then: rng_ and probes_, which belong to the worker, are not touched).
  const auto now = Clock::now();
  const auto ms = [](Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  telemetry::RequestRecord rec;
  rec.time_ms = telemetry::unix_ms();
  rec.request_id = job.id;
  rec.client_uid = static_cast<int64_t>(job.peer.uid);
  rec.client_gid = static_cast<int64_t>(job.peer.gid);
  rec.client_pid = job.peer.pid > 0 ? static_cast<int64_t>(job.peer.pid) : -1;
  rec.endpoint = job.request.chat ? "chat" : "completions";
  rec.model = job.served.name;
  rec.model_hash = job.served.hash;
  const KvConfig& kv = job.engine_options.kv;
  rec.policy = kv.policy;
  rec.scope = kv_scope_name(kv.scope);
  rec.alpha = telemetry::round_alpha(kv.alpha);
  rec.decode_budget = kv.decode_budget;
  rec.prefill_budget = kv.prefill_budget;
  rec.queue_ms = job.started == Clock::time_point{} ? ms(now - job.submitted)
                                                    : ms(job.started - job.submitted);
  rec.ttft_ms = job.ttft_ms;
  rec.total_ms = ms(now - job.submitted);
  if (job.session) {
    const GenerationResult& r = job.session->result();
    rec.prompt_tokens = static_cast<int32_t>(r.prompt_ids.size());
    rec.generated_tokens = static_cast<int32_t>(r.ids.size());
    rec.decode_tokens_per_s = r.timings.decode_tokens_per_s();
    rec.finish_reason = r.finish_reason.empty() ? "cancelled" : r.finish_reason;
  } else {
    rec.finish_reason = "cancelled";
  }
  if (error) {
    rec.finish_reason = "error";
    rec.error = error->code + ": " + error->message;
  }
  if (job.sequence) {
    const CompressionSummary c = job.sequence->compression();
    rec.evicted = c.evicted;
    rec.prompt_evicted = c.prompt_evicted;
    rec.peak_kv_bytes = static_cast<int64_t>(c.kv_bytes_peak);
    rec.reserved_kv_bytes = static_cast<int64_t>(c.kv_bytes_reserved);
    rec.context_altered = c.context_altered;
    if (job.engine && options_.layer_stats_rate > 0 &&
        std::uniform_real_distribution<double>(0, 1)(rng_) < options_.layer_stats_rate) {
      rec.layers = telemetry::layer_records(job.engine->kv());
    }
  }
  if (!error && job.session && rec.finish_reason != "cancelled" &&
      probes_.wants(rec.context_altered, job.session->result().ids.size())) {
    const GenerationResult& r = job.session->result();
    probes_.offer(ProbeSubject{job.served.model, job.served.name, job.served.hash, job.id,
                               job.engine_options, r.prompt_ids, r.ids});
  }
  if (options_.telemetry) options_.telemetry->submit(std::move(rec));
}

void Scheduler::finish(Job& job, const ApiError* error) {
  if (job.reserved) {
    budget_.release(job.reserve_bytes);
    stats_.kv_reserved_bytes -= job.reserve_bytes;
    job.reserved = false;
  }
  if (error) {
    ++stats_.requests_error;
    log_request(job.id, job.peer, "error " + error->code + ": " + error->message);
    record(job, error);
    if (job.streaming) {
      job.writer->write_chunk("data: " + error_json(*error) + "\n\n");
      job.writer->end_stream();
    } else {
      job.writer->send(error->status, "application/json", error_json(*error));
    }
    return;
  }
  const GenerationResult& r = job.session->result();
  if (r.finish_reason == "cancelled") {
    ++stats_.requests_cancelled;
  } else {
    ++stats_.requests_ok;
  }
  stats_.prompt_tokens += r.timings.n_prompt;
  stats_.generated_tokens += r.timings.n_generated;
  stats_.evicted_tokens += r.compression.evicted;
  log_request(job.id, job.peer,
              std::to_string(r.timings.n_prompt) + " prompt + " +
                  std::to_string(r.timings.n_generated) + " generated tokens, finish " +
                  r.finish_reason + ", policy " + r.compression.policy + ", evicted " +
                  std::to_string(r.compression.evicted) +
                  (r.compression.context_altered ? " (context altered)" : ""));
  if (job.streaming) {
    job.writer->write_chunk(
        stream_final(job.id, job.served.name, job.request.chat, r, job.ttft_ms));
    job.writer->end_stream();
  } else {
    job.writer->send(200, "application/json",
                     completion_json(job.id, job.served.name, job.request.chat, r, job.ttft_ms));
  }
  record(job, nullptr);
}

bool Scheduler::advance(Job& job) {
  if (job.writer->cancelled()) {
    if (job.session) job.session->cancel();
    if (job.reserved) {
      budget_.release(job.reserve_bytes);
      stats_.kv_reserved_bytes -= job.reserve_bytes;
      job.reserved = false;
    }
    ++stats_.requests_cancelled;
    record(job, nullptr);
    return true;
  }
  try {
    if (!job.session) {
      if (debug_stall_.count() > 0) {
        const auto stall = std::exchange(debug_stall_, std::chrono::milliseconds(0));
        std::fprintf(stderr, "<4>momentkvd: debug stall: the worker sleeps %lld ms (request %s)\n",
                     static_cast<long long>(stall.count()), job.id.c_str());
        std::this_thread::sleep_for(stall);
      }
      job.started = Clock::now();
      if (options_.sequences) {
        job.sequence = options_.sequences->make(*job.served.model, job.engine_options);
      } else {
        auto engine = std::make_unique<Engine>(*job.served.model, backend_, job.engine_options);
        job.engine = engine.get();
        job.sequence = std::move(engine);
      }
      job.session =
          std::make_unique<GenerationSession>(*job.sequence, *job.served.tokenizer, job.generation);
      if (job.request.stream) {
        job.streaming = job.writer->begin_stream(200, "text/event-stream");
        if (!job.streaming) return advance(job);  // client gone
      }
      if (!job.session->done()) job.session->prefill();
    } else if (!job.session->done()) {
      const std::string text = job.session->sample();
      const auto now = Clock::now();
      if (job.ttft_ms < 0) {
        job.ttft_ms = std::chrono::duration<double, std::milli>(now - job.submitted).count();
        stats_.ttft.observe(job.ttft_ms);
      } else {
        stats_.inter_token.observe(
            std::chrono::duration<double, std::milli>(now - job.last_token).count());
      }
      job.last_token = now;
      if (job.streaming && !text.empty() &&
          !job.writer->write_chunk(stream_chunk(job.id, job.served.name, job.request.chat, text))) {
        job.session->cancel();
      }
    }
    if (job.session->done()) {
      const std::string tail = job.session->flush();
      if (job.streaming && !tail.empty()) {
        job.writer->write_chunk(stream_chunk(job.id, job.served.name, job.request.chat, tail));
      }
      finish(job, nullptr);
      return true;
    }
    return false;
  } catch (const std::exception& e) {
    const ApiError err{500, "generation_failed", e.what()};
    finish(job, &err);
    return true;
  }
}

void Scheduler::reserve_decoder(const Model& model) {
  if (decoder_bytes_) budget_.release(decoder_bytes_);
  decoder_.reset();
  decoder_bytes_ = 0;
  decoder_model_ = nullptr;
  if (options_.decode_batch < 2 || options_.sequences) return;
  const uint64_t bytes = BatchDecoder::bytes_needed(model, options_.decode_batch);
  if (budget_.try_reserve(bytes, "the batch decoder")) return;  // feed one by one
  decoder_bytes_ = bytes;
  decoder_model_ = &model;
}

void Scheduler::feed_sampled() {
  std::vector<Job*> waiting;
  for (auto& j : active_) {
    if (j->session && j->session->needs_feed()) waiting.push_back(j.get());
  }
  if (waiting.size() >= 2 && decoder_model_) {
    if (!decoder_) {
      decoder_ = std::make_unique<BatchDecoder>(*decoder_model_, backend_,
                                                options_.engine.precision, options_.decode_batch);
    }
    std::vector<Job*> batch;
    std::vector<Engine*> engines;
    std::vector<int32_t> tokens;
    const auto nv = static_cast<size_t>(decoder_model_->config().n_vocab);
    auto flush = [&] {
      if (batch.size() >= 2) {
        try {
          const auto logits = decoder_->decode(engines, tokens);
          for (size_t i = 0; i < batch.size(); ++i) {
            batch[i]->session->fed(logits.subspan(i * nv, nv));
          }
        } catch (const std::exception&) {
          // Nothing was fed: each goes alone below, where its own error is reported.
        }
      }
      batch.clear();
      engines.clear();
      tokens.clear();
    };
    for (Job* j : waiting) {
      if (j->served.model.get() != decoder_model_ || !j->engine) continue;
      batch.push_back(j);
      engines.push_back(j->engine);
      tokens.push_back(j->session->pending_token());
      if (static_cast<int32_t>(batch.size()) == options_.decode_batch) flush();
    }
    flush();
  }
  for (Job* j : waiting) {
    if (!j->session->needs_feed()) continue;
    try {
      j->session->feed();
    } catch (const std::exception& e) {
      const ApiError err{500, "generation_failed", e.what()};
      finish(*j, &err);
      j->finished = true;
    }
  }
  active_.remove_if([](const std::unique_ptr<Job>& j) { return j->finished; });
}

void Scheduler::run() {
  while (true) {
    bool idle = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        const bool work = !queue_.empty() || !admitted_.empty() || !active_.empty() || stopping_ ||
                          pending_.has_value() || probes_.has_work() || resize_queue_;
        parked_ = !work;  // evaluated under mu_ before each sleep and after each wake-up
        return work;
      });
      // Fidelity probes run only while nothing else waits; any work stops them at once.
      if (!queue_.empty() || !admitted_.empty() || !active_.empty() || stopping_ || pending_) {
        probes_.preempt();
      }
      while (!admitted_.empty()) {
        active_.push_back(std::move(admitted_.front()));
        admitted_.pop_front();
      }
      if (stopping_ && ((queue_.empty() && active_.empty()) || cancel_all_)) break;
      if (pending_ && active_.empty()) {
        // Every generation on the old model has ended: switch, then re-size the waiting ones.
        served_ = std::move(*pending_);
        pending_.reset();
        budget_.release(pending_release_);
        pending_release_ = 0;
        reserve_decoder(*served_.model);
        for (auto it = queue_.begin(); it != queue_.end();) {
          if (auto err = size_job(**it)) {
            finish(**it, &*err);
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
      }
      if (resize_queue_) {
        // A lowered budget: what waits and can never fit it is refused now, not at the head.
        resize_queue_ = false;
        for (auto it = queue_.begin(); it != queue_.end();) {
          if ((*it)->reserve_bytes > job_capacity_) {
            const ApiError e{400, "budget_exceeded",
                             "this request needs " + format_bytes((*it)->reserve_bytes) +
                                 " of KV cache and scratch; the memory budget now leaves " +
                                 format_bytes(job_capacity_) +
                                 " for generations after the weights"};
            finish(**it, &e);
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
      }
      // Admit in FIFO order while the head fits the budget (not while a switch waits).
      while (!queue_.empty() && !pending_) {
        Job& head = *queue_.front();
        if (auto err = budget_.try_reserve(head.reserve_bytes, "request " + head.id)) {
          if (stats_.kv_reserved_bytes.load() != 0) break;  // wait for running ones to finish
          // Nothing else holds memory and it still does not fit: it never will.
          auto job = std::move(queue_.front());
          queue_.pop_front();
          const ApiError e{400, "budget_exceeded", *err};
          finish(*job, &e);
          continue;
        }
        head.reserved = true;
        stats_.kv_reserved_bytes += head.reserve_bytes;
        ++stats_.requests_admitted;
        active_.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.queue = static_cast<int64_t>(queue_.size());
      stats_.active = static_cast<int64_t>(active_.size());
      idle = queue_.empty() && admitted_.empty() && active_.empty() && !stopping_ && !pending_;
    }
    ++heartbeat_;
    if (idle && probes_.has_work()) {
      probes_.step();  // idle: one forward pass of the probe
      continue;
    }
    // One unit of work per active generation, in turn; then the sampled tokens are fed together.
    for (auto it = active_.begin(); it != active_.end();) {
      if (advance(**it)) {
        it = active_.erase(it);
      } else {
        ++it;
      }
    }
    feed_sampled();
    stats_.active = static_cast<int64_t>(active_.size());
  }
  probes_.stop();
  // Shutdown: cancel what is left with a terminal event.
  const ApiError err{503, "shutting_down", "the daemon is shutting down"};
  for (auto& job : active_) {
    if (job->session) job->session->cancel();
    finish(*job, &err);
  }
  active_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& job : queue_) finish(*job, &err);
  queue_.clear();
  for (auto& job : admitted_) finish(*job, &err);
  admitted_.clear();
}

void Scheduler::shutdown(std::chrono::milliseconds deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (!worker_.joinable()) return;
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty() && admitted_.empty() && stats_.active.load() == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_all_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

}  // namespace momentkv::daemon
