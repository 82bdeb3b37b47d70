#include "daemon/service.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "daemon/telemetry/stats_query.h"

namespace momentkv::daemon {

using nlohmann::json;

Service::Service(Scheduler& scheduler, const MemoryBudget& budget, ApiLimits limits,
                 ChatFormat chat_format, const telemetry::Telemetry* telemetry)
    : scheduler_(scheduler),
      budget_(budget),
      limits_(limits),
      chat_format_(chat_format),
      telemetry_(telemetry) {}

Service::~Service() {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (stats_running_.load() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

namespace {

// The value of `key` in a query string ("a=1&b=2"), or empty.
std::string query_param(const std::string& target, const std::string& key) {
  const size_t q = target.find('?');
  if (q == std::string::npos) return {};
  size_t i = q + 1;
  while (i < target.size()) {
    size_t end = target.find('&', i);
    if (end == std::string::npos) end = target.size();
    const std::string pair = target.substr(i, end - i);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    i = end + 1;
  }
  return {};
}

json health_json(const telemetry::TelemetryHealth& h) {
  return {{"state", telemetry::to_string(h.state)},
          {"reason", h.reason},
          {"path", h.path},
          {"queue_depth", h.queue_depth},
          {"queue_capacity", h.queue_capacity},
          {"written", h.written},
          {"dropped_queue_full", h.dropped_queue},
          {"dropped_write_failed", h.dropped_failed},
          {"quarantines", h.quarantines}};
}

}  // namespace

void Service::stats(const ipc::HttpRequest& request, std::shared_ptr<ipc::ResponseWriter> writer) {
  auto error = [&](int status, const std::string& code, const std::string& message) {
    writer->send(status, "application/json", error_json({status, code, message}));
  };
  const telemetry::TelemetryHealth health =
      telemetry_ ? telemetry_->health() : telemetry::TelemetryHealth{};
  if (!telemetry_ || health.state == telemetry::TelemetryState::kOff) {
    return error(503, "telemetry_off",
                 "telemetry is off" + (telemetry_ ? ": " + health.reason : std::string()));
  }
  telemetry::StatsWindow window;
  const int64_t now = telemetry::unix_ms();
  const std::string since = query_param(request.target, "since");
  if (!since.empty()) {
    const auto ms = telemetry::parse_duration_ms(since);
    if (!ms) return error(400, "invalid_request", "since=" + since + " is not a duration like 24h");
    window.since_ms = now - *ms;
  } else {
    window.since_ms = now - 24LL * 3'600'000;  // the last day
  }
  if (stats_running_.load() >= 2) {
    return error(503, "busy", "two stats queries are already running; retry later");
  }
  ++stats_running_;
  std::thread([this, writer, window, health] {
    try {
      telemetry::Database db(health.path, telemetry::Database::Mode::kReadOnly);
      db.busy_timeout(2000);
      json j = json::parse(telemetry::stats_json(telemetry::query_stats(db, window)));
      j["telemetry"] = health_json(health);
      writer->send(200, "application/json", j.dump());
    } catch (const std::exception& e) {
      writer->send(503, "application/json", error_json({503, "telemetry_unavailable", e.what()}));
    }
    --stats_running_;
  }).detach();
}

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
    if (path == "/v1/stats") {
      if (request.method != "GET") return error(405, "method_not_allowed", "use GET");
      return stats(request, std::move(writer));
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
  metric("momentkv_requests_admitted_total", "counter",
         "Requests whose worst case was reserved against the memory budget.",
         line("momentkv_requests_admitted_total", "", static_cast<double>(s.requests_admitted)));
  metric("momentkv_requests_queued_total", "counter",
         "Requests that waited in the queue for memory.",
         line("momentkv_requests_queued_total", "", static_cast<double>(s.requests_queued)));
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
  metric("momentkv_config_generation", "gauge",
         "The configuration in use: 1 at start, +1 for every reload applied.",
         line("momentkv_config_generation", "", static_cast<double>(config_generation_.load())));
  metric("momentkv_config_reload_failures_total", "counter",
         "Reloads refused (invalid configuration); the previous one was kept.",
         line("momentkv_config_reload_failures_total", "",
              static_cast<double>(config_reload_failures_.load())));
  if (telemetry_) {
    const telemetry::TelemetryHealth h = telemetry_->health();
    std::string state;
    for (auto st : {telemetry::TelemetryState::kOff, telemetry::TelemetryState::kOk,
                    telemetry::TelemetryState::kDegraded}) {
      state += line("momentkv_telemetry_state",
                    std::string("state=\"") + telemetry::to_string(st) + "\"",
                    h.state == st ? 1.0 : 0.0);
    }
    metric("momentkv_telemetry_state", "gauge", "Telemetry state (1 for the current one).", state);
    metric("momentkv_telemetry_queue_depth", "gauge", "Records waiting for the telemetry writer.",
           line("momentkv_telemetry_queue_depth", "", static_cast<double>(h.queue_depth)));
    metric("momentkv_telemetry_records_written_total", "counter", "Records committed to SQLite.",
           line("momentkv_telemetry_records_written_total", "", static_cast<double>(h.written)));
    metric("momentkv_telemetry_records_dropped_total", "counter",
           "Records not written: queue full, or the database refused them.",
           line("momentkv_telemetry_records_dropped_total", "reason=\"queue_full\"",
                static_cast<double>(h.dropped_queue)) +
               line("momentkv_telemetry_records_dropped_total", "reason=\"write_failed\"",
                    static_cast<double>(h.dropped_failed)));
    metric("momentkv_telemetry_quarantines_total", "counter",
           "Corrupt databases moved aside and replaced.",
           line("momentkv_telemetry_quarantines_total", "", static_cast<double>(h.quarantines)));
    const auto& p = scheduler_.probe_counters();
    metric("momentkv_fidelity_probes_total", "counter", "Fidelity probes by outcome.",
           line("momentkv_fidelity_probes_total", "outcome=\"completed\"",
                static_cast<double>(p.completed)) +
               line("momentkv_fidelity_probes_total", "outcome=\"preempted\"",
                    static_cast<double>(p.preempted)) +
               line("momentkv_fidelity_probes_total", "outcome=\"aborted\"",
                    static_cast<double>(p.aborted)) +
               line("momentkv_fidelity_probes_total", "outcome=\"skipped\"",
                    static_cast<double>(p.skipped)));
  }
  out.append(s.ttft.render("momentkv_time_to_first_token_seconds",
                           "From request submission to the first generated token."));
  out.append(s.inter_token.render("momentkv_inter_token_seconds",
                                  "Between consecutive tokens of one generation."));
  return out;
}

}  // namespace momentkv::daemon
