// momentkvd's routes (DESIGN.md §7): /health, /v1/models, /v1/completions,
// /v1/chat/completions, /metrics. Turns HTTP requests into scheduler jobs; never runs model code
// and never blocks (it is called on the server's threads).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"
#include "daemon/chat_template.h"
#include "daemon/scheduler.h"
#include "ipc/http_types.h"

namespace momentkv::daemon {

class Service {
 public:
  Service(const Model& model, const Tokenizer& tokenizer, Scheduler& scheduler,
          const MemoryBudget& budget, ApiLimits limits, ChatFormat chat_format,
          std::string model_name);

  // The ipc::Handler.
  void handle(ipc::HttpRequest request, std::shared_ptr<ipc::ResponseWriter> writer);
  void set_ready(bool ready) { ready_ = ready; }
  ChatFormat chat_format() const { return chat_format_; }

 private:
  void completions(const ipc::HttpRequest& request, bool chat,
                   std::shared_ptr<ipc::ResponseWriter> writer);
  std::string metrics_text() const;

  const Model& model_;
  const Tokenizer& tokenizer_;
  Scheduler& scheduler_;
  const MemoryBudget& budget_;
  ApiLimits limits_;
  ChatFormat chat_format_;
  std::string model_name_;
  std::atomic<bool> ready_{false};
};

}  // namespace momentkv::daemon
