// momentkvd's routes (DESIGN.md §7): /health, /v1/models, /v1/completions,
// /v1/chat/completions, /v1/stats, /metrics. Turns HTTP requests into scheduler jobs; never runs
// model code and never blocks (it is called on the server's threads): /v1/stats queries SQLite
// on a thread of its own.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"
#include "daemon/chat_template.h"
#include "daemon/scheduler.h"
#include "daemon/telemetry/telemetry.h"
#include "ipc/http_types.h"

namespace momentkv::daemon {

class Service {
 public:
  Service(Scheduler& scheduler, const MemoryBudget& budget, ApiLimits limits,
          ChatFormat chat_format, const telemetry::Telemetry* telemetry = nullptr);
  // Waits (bounded) for /v1/stats queries still running.
  ~Service();

  // The ipc::Handler.
  void handle(ipc::HttpRequest request, std::shared_ptr<ipc::ResponseWriter> writer);
  void set_ready(bool ready) { ready_ = ready; }
  // The chat template family in use (it changes with the model on a reload).
  void set_chat_format(ChatFormat f) { chat_format_ = f; }
  ChatFormat chat_format() const { return chat_format_; }
  // A SIGHUP reload was applied (ok) or refused, the old configuration kept (!ok). /metrics
  // reports the configuration generation: 1 at start, +1 for every applied reload.
  void config_reloaded(bool ok) { ++(ok ? config_generation_ : config_reload_failures_); }

 private:
  void completions(const ipc::HttpRequest& request, bool chat,
                   std::shared_ptr<ipc::ResponseWriter> writer);
  void stats(const ipc::HttpRequest& request, std::shared_ptr<ipc::ResponseWriter> writer);
  std::string metrics_text() const;

  Scheduler& scheduler_;
  const MemoryBudget& budget_;
  ApiLimits limits_;
  std::atomic<ChatFormat> chat_format_;
  std::atomic<bool> ready_{false};
  const telemetry::Telemetry* telemetry_;
  std::atomic<int> stats_running_{0};
  std::atomic<uint64_t> config_generation_{1};
  std::atomic<uint64_t> config_reload_failures_{0};
};

}  // namespace momentkv::daemon
