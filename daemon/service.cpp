#include "daemon/service.h"

#include <nlohmann/json.hpp>

namespace momentkv::daemon {

using nlohmann::json;

Service::Service(Scheduler& scheduler, const MemoryBudget& budget, ApiLimits limits,
                 ChatFormat chat_format)
    : scheduler_(scheduler), budget_(budget), limits_(limits), chat_format_(chat_format) {}

void Service::handle(ipc::HttpRequest request, std::shared_ptr<ipc::ResponseWriter> writer) {
  const std::string path = request.target.substr(0, request.target.find('?'));
  auto error = [&](int status, const std::string& code, const std::string& message) {
    writer->send(status, "application/json", error_json({status, code, message}));
  };
  try {
    if (path == "/health") {
      if (request.method != "GET") return error(405, "method_not_allowed", "use GET");
      if (!ready_) {
        return writer->send(503, "application/json", R"({"status":"loading"})");
      }
      return writer->send(200, "application/json", R"({"status":"ok"})");
    }
    if (path == "/v1/models") {
      if (request.method != "GET") return error(405, "method_not_allowed", "use GET");
      const auto served = scheduler_.served();
      const auto& c = served.model->config();
      json m = {{"id", served.name},
                {"object", "model"},
                {"owned_by", "momentkv"},
                {"meta",
                 {{"arch", c.arch},
                  {"n_layer", c.n_layer},
                  {"n_embd", c.n_embd},
                  {"n_head", c.n_head},
                  {"n_head_kv", c.n_head_kv},
                  {"n_vocab", c.n_vocab},
                  {"n_ctx_train", c.n_ctx_train},
                  {"weight_bytes", served.model->weight_bytes()},
                  {"chat_template", chat_format_name(chat_format_)}}}};
      return writer->send(200, "application/json",
                          json{{"object", "list"}, {"data", json::array({m})}}.dump());
    }
    if (path == "/metrics") {
      if (request.method != "GET") return error(405, "method_not_allowed", "use GET");
      return writer->send(200, "text/plain; version=0.0.4", metrics_text());
    }
    if (path == "/v1/completions" || path == "/v1/chat/completions") {
      if (request.method != "POST") return error(405, "method_not_allowed", "use POST");
      if (!ready_) return error(503, "loading", "the model is still loading");
      return completions(request, path == "/v1/chat/completions", std::move(writer));
    }
    return error(404, "not_found", "no route " + path);
  } catch (const std::exception& e) {
    return error(500, "internal_error", e.what());
  }
}

void Service::completions(const ipc::HttpRequest& request, bool chat,
                          std::shared_ptr<ipc::ResponseWriter> writer) {
  auto parsed = parse_completion(request.body, chat, limits_);
  if (auto* err = std::get_if<ApiError>(&parsed)) {
    return writer->send(err->status, "application/json", error_json(*err));
  }
  CompletionRequest req = std::move(std::get<CompletionRequest>(parsed));
  const std::string prompt = chat ? render_chat(chat_format_, req.messages) : req.prompt;
  if (auto err = scheduler_.submit(std::move(req), prompt, writer, request.peer)) {
    writer->send(err->status, "application/json", error_json(*err));
  }
}

std::string Service::metrics_text() const {
  const auto& s = scheduler_.stats();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& body) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n").append(body);
  };
  auto line = [](const std::string& name, const std::string& labels, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return name + (labels.empty() ? "" : "{" + labels + "}") + " " + buf + "\n";
  };
  metric("momentkv_requests_total", "counter", "Requests by outcome.",
         line("momentkv_requests_total", "outcome=\"ok\"", static_cast<double>(s.requests_ok)) +
             line("momentkv_requests_total", "outcome=\"error\"",
                  static_cast<double>(s.requests_error)) +
             line("momentkv_requests_total", "outcome=\"cancelled\"",
                  static_cast<double>(s.requests_cancelled)) +
             line("momentkv_requests_total", "outcome=\"rejected\"",
                  static_cast<double>(s.requests_rejected)));
  metric("momentkv_prompt_tokens_total", "counter", "Prompt tokens processed.",
         line("momentkv_prompt_tokens_total", "", static_cast<double>(s.prompt_tokens)));
  metric("momentkv_generated_tokens_total", "counter", "Tokens generated.",
         line("momentkv_generated_tokens_total", "", static_cast<double>(s.generated_tokens)));
  metric("momentkv_evicted_tokens_total", "counter", "Generated tokens evicted by KV policies.",
         line("momentkv_evicted_tokens_total", "", static_cast<double>(s.evicted_tokens)));
  metric("momentkv_kv_reserved_bytes", "gauge",
         "KV cache and scratch bytes reserved by running generations.",
         line("momentkv_kv_reserved_bytes", "", static_cast<double>(s.kv_reserved_bytes)));
  metric("momentkv_memory_budget_bytes", "gauge", "The configured memory budget.",
         line("momentkv_memory_budget_bytes", "", static_cast<double>(budget_.budget())));
  metric("momentkv_memory_used_bytes", "gauge", "Bytes reserved: weights, process and generations.",
         line("momentkv_memory_used_bytes", "", static_cast<double>(budget_.used())));
  metric("momentkv_queue_length", "gauge", "Requests waiting for memory.",
         line("momentkv_queue_length", "", static_cast<double>(s.queue)));
  metric("momentkv_active_generations", "gauge", "Generations running.",
         line("momentkv_active_generations", "", static_cast<double>(s.active)));
  out.append(s.ttft.render("momentkv_time_to_first_token_seconds",
                           "From request submission to the first generated token."));
  out.append(s.inter_token.render("momentkv_inter_token_seconds",
                                  "Between consecutive tokens of one generation."));
  return out;
}

}  // namespace momentkv::daemon
