// momentkvd: the long-running daemon. New-style: no fork, logs to stderr (with sd-daemon priority
// prefixes journald understands), Type=notify (READY=1 only once the model is loaded, the memory
// reserved and the socket listening), socket activation, SIGTERM drains, SIGHUP reloads the
// configuration (an invalid one is logged and the old kept). Exit 78 (EX_CONFIG) for a bad
// configuration or model at start.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>

#include "core/engine/memory_budget.h"
#include "core/gguf/gguf_fingerprint.h"
#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"
#include "core/util/process_memory.h"
#include "core/util/system_memory.h"
#include "daemon/daemon_config.h"
#include "daemon/scheduler.h"
#include "daemon/sd_notify.h"
#include "daemon/service.h"
#include "daemon/telemetry/telemetry.h"
#include "ipc/http_server.h"
#include "kernels/cpu/cpu_backend.h"
#if MOMENTKV_HAVE_CUDA
#include "kernels/cuda/cuda_engine.h"
#include "kernels/cuda/cuda_model.h"
#endif

namespace {

using namespace momentkv;
using namespace momentkv::daemon;

constexpr int kExitConfig = 78;  // EX_CONFIG

void log(int priority, const std::string& msg) {
  std::fprintf(stderr, "<%d>momentkvd: %s\n", priority, msg.c_str());
  std::fflush(stderr);
}
void info(const std::string& m) {
  log(6, m);
}
void warn(const std::string& m) {
  log(4, m);
}
int fail(const std::string& m) {
  log(3, m);
  sd_notify("STATUS=failed: " + m);
  return kExitConfig;
}

struct Args {
  std::string config, check_config, model, socket, policy, telemetry_db;
  std::optional<uint64_t> memory_budget;
  std::optional<int> threads;
};

const char* kUsage =
    "usage: momentkvd [--config FILE] [--model GGUF] [--socket PATH] [--memory-budget SIZE]\n"
    "                 [--policy NAME] [--threads N] [--telemetry-db PATH|off]\n"
    "       momentkvd --check-config FILE\n";

std::optional<Args> parse_args(int argc, char** argv, std::string& error) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      error = "option '" + k + "' needs a value";
      return std::nullopt;
    }
    const std::string v = argv[++i];
    if (k == "--config")
      a.config = v;
    else if (k == "--check-config")
      a.check_config = v;
    else if (k == "--model")
      a.model = v;
    else if (k == "--socket")
      a.socket = v;
    else if (k == "--policy")
      a.policy = v;
    else if (k == "--telemetry-db")
      a.telemetry_db = v;
    else if (k == "--memory-budget") {
      a.memory_budget = parse_bytes(v);
      if (!a.memory_budget) {
        error = "--memory-budget expects a size like 512MiB, got '" + v + "'";
        return std::nullopt;
      }
    } else if (k == "--threads") {
      char* end = nullptr;
      const long t = std::strtol(v.c_str(), &end, 10);
      if (*end || t < 1 || t > 1024) {
        error = "--threads expects 1..1024, got '" + v + "'";
        return std::nullopt;
      }
      a.threads = static_cast<int>(t);
    } else {
      error = "unknown option '" + k + "'";
      return std::nullopt;
    }
  }
  return a;
}

DaemonConfig load_config(const Args& a) {
  DaemonConfig c =
      a.config.empty() ? parse_daemon_config("", "defaults") : load_daemon_config(a.config);
  if (!a.model.empty()) c.model_path = a.model;
  if (!a.socket.empty()) c.socket_path = a.socket;
  if (a.memory_budget) c.memory_budget = *a.memory_budget;
  if (a.threads) c.threads = *a.threads;
  if (a.telemetry_db == "off") {
    c.telemetry.enabled = false;
  } else if (!a.telemetry_db.empty()) {
    c.telemetry.path = a.telemetry_db;
  }
  if (!a.policy.empty()) {
    c.kv.policy = a.policy;
    if (auto err = c.kv.validate()) throw ConfigError("--policy: " + *err);
  }
  return c;
}

// Loads a model and its tokenizer for serving; throws on a bad file.
Scheduler::Served load_served(const std::string& path) {
  Scheduler::Served s;
  std::shared_ptr<Model> model = Model::load(path);
  s.tokenizer = Tokenizer::create(model->file());
  s.name = model->config().name.empty() ? path : model->config().name;
  s.hash = gguf_fingerprint(model->file());
  s.model = std::move(model);
  return s;
}

telemetry::TelemetryOptions telemetry_options(const TelemetryConfig& t) {
  telemetry::TelemetryOptions o;
  o.enabled = t.enabled;
  o.path = t.resolved_path();
  o.queue_capacity = static_cast<size_t>(t.queue_length);
  o.store.max_age_ms = static_cast<int64_t>(t.max_age_days) * 86'400'000;
  o.store.max_bytes = t.max_size;
  return o;
}

ProbeOptions probe_options(const TelemetryConfig& t) {
  ProbeOptions p;
  p.rate = t.enabled ? t.probe_rate : 0.0;
  p.max_tokens = t.probe_max_tokens;
  p.budgets = t.probe_budgets;
  p.alphas = t.probe_alphas;
  return p;
}

std::string telemetry_status(const telemetry::Telemetry& t) {
  const auto h = t.health();
  std::string s = std::string("telemetry ") + telemetry::to_string(h.state);
  if (h.state == telemetry::TelemetryState::kOk) s += " (" + h.path + ")";
  if (!h.reason.empty()) s += ": " + h.reason;
  return s;
}

ChatFormat chat_format_for(const Model& model, const std::string& configured) {
  if (configured != "auto") return parse_chat_format(configured);
  const auto tmpl = model.file().get_string("tokenizer.chat_template").value_or("");
  return detect_chat_format(tmpl, ChatFormat::kPlain);
}

// A listening socket passed by systemd (LISTEN_PID/LISTEN_FDS), or -1.
int activated_socket() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  if (!pid || !fds || std::atol(pid) != static_cast<long>(getpid()) || std::atoi(fds) < 1)
    return -1;
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return 3;  // SD_LISTEN_FDS_START
}

#if MOMENTKV_HAVE_CUDA
// backend = "cuda": every generation is a CudaEngine on the one CudaModel made at start-up.
class CudaSequences final : public SequenceMaker {
 public:
  explicit CudaSequences(kernels::cuda::CudaModel& model) : model_(model) {}
  std::optional<std::string> unsupported(const Model& model,
                                         const EngineOptions& options) const override {
    if (&model != &model_.model()) {
      return "backend = \"cuda\" serves the model loaded at start-up; restart to serve another";
    }
    if (auto why = kernels::cuda::CudaEngine::unsupported(model, options)) {
      return "backend = \"cuda\": " + *why;
    }
    return std::nullopt;
  }
  uint64_t bytes(const Model& model, const EngineOptions& options) const override {
    return kernels::cuda::CudaEngine::device_bytes_needed(model, options);
  }
  std::unique_ptr<Sequence> make(const Model&, const EngineOptions& options) override {
    return std::make_unique<kernels::cuda::CudaEngine>(model_, options);
  }

 private:
  kernels::cuda::CudaModel& model_;
};
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string arg_error;
  const auto args = parse_args(argc, argv, arg_error);
  if (!args) {
    std::fprintf(stderr, "momentkvd: %s\n%s", arg_error.c_str(), kUsage);
    return 2;
  }
  if (!args->check_config.empty()) {
    try {
      load_daemon_config(args->check_config);
      std::printf("%s: ok\n", args->check_config.c_str());
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "momentkvd: %s\n", e.what());
      return kExitConfig;
    }
  }
  // Signals are taken synchronously by the main thread; every thread started later inherits the
  // mask. A client that vanishes must not kill the daemon with SIGPIPE.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // The budget counts reservations, so memory a finished generation frees must leave the
  // process. glibc raises its mmap threshold after the first large free (up to 32 MiB), after
  // which KV arenas come from the heap and stay resident when freed: under a steady stream of
  // generations RSS then climbed 30 % past the budget (MB-2). A fixed threshold keeps every
  // allocation of 128 KiB or more in its own mapping, returned to the kernel when freed.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  DaemonConfig cfg;
  try {
    cfg = load_config(*args);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  if (cfg.model_path.empty()) return fail("no model: set model.path in the config or pass --model");
  {
    // A budget the machine cannot give is refused now, not found out by the OOM killer later:
    // it must fit MemAvailable (on Jetson the GPU draws from the same DRAM) and the cgroup's
    // memory.max (systemd's MemoryMax=) minus headroom.
    const SystemMemory sys = read_system_memory();
    info("memory: " + describe(sys) + "; budget " +
         (cfg.memory_budget ? format_bytes(cfg.memory_budget) : std::string("none")));
    if (auto err = check_memory_budget(cfg.memory_budget, sys, current_rss_bytes())) {
      return fail(*err);
    }
  }

#if !MOMENTKV_HAVE_CUDA
  if (cfg.backend == "cuda") {
    return fail(
        "backend = \"cuda\": this momentkvd was built without CUDA (MOMENTKV_CUDA=OFF, or no "
        "nvcc when it was configured)");
  }
#endif
  sd_notify("STATUS=loading " + cfg.model_path);
  Scheduler::Served served;
  try {
    served = load_served(cfg.model_path);
  } catch (const std::exception& e) {
    return fail("cannot load model " + cfg.model_path + ": " + e.what());
  }
  const Model* model = served.model.get();
  kernels::CpuBackend backend(cfg.threads);
  const auto budget_for = [](uint64_t configured) {
    return configured ? configured : std::numeric_limits<uint64_t>::max() / 4;  // none: unlimited
  };
  MemoryBudget budget(budget_for(cfg.memory_budget));
  const uint64_t base = model->weight_bytes() + current_rss_bytes();
  if (auto err = budget.try_reserve(base, "the model's weights and the process")) {
    return fail("memory budget too small: " + *err);
  }

#if MOMENTKV_HAVE_CUDA
  // backend = "cuda": the weights, GEMM buffers and activations on the GPU, counted against the
  // budget (on Jetson the GPU's memory is the system's DRAM); each generation then reserves its
  // KV cache's device bytes.
  std::unique_ptr<kernels::cuda::CudaModel> cuda_model;
  std::unique_ptr<CudaSequences> cuda_sequences;
  if (cfg.backend == "cuda") {
    const uint64_t bytes = kernels::cuda::CudaModel::device_bytes_needed(*model, cfg.batch);
    if (auto err = budget.try_reserve(bytes, "the model on the GPU")) {
      return fail("memory budget too small: " + *err);
    }
    try {
      cuda_model = std::make_unique<kernels::cuda::CudaModel>(*model, cfg.batch);
    } catch (const std::exception& e) {
      return fail(std::string("backend = \"cuda\": ") + e.what());
    }
    cuda_sequences = std::make_unique<CudaSequences>(*cuda_model);
    const kernels::cuda::DeviceInfo& d = cuda_model->info();
    info("backend cuda: " + d.name + " (sm_" + std::to_string(d.sm_major) +
         std::to_string(d.sm_minor) + (d.integrated ? ", integrated" : "") + "), " +
         format_bytes(bytes) + " on the device for the model");
  }
#endif

  // Telemetry opens before READY (SD-3): a corrupt file is quarantined now, a missing or read-only
  // directory turns it off; serving goes on either way.
  telemetry::Telemetry recorder(telemetry_options(cfg.telemetry));
  if (recorder.health().state != telemetry::TelemetryState::kOff) {
    // Its queue (records of at most ~2 KiB) and SQLite's page caches count against the budget.
    const uint64_t bytes = recorder.options().queue_capacity * 2048 + (8ull << 20);
    if (auto err = budget.try_reserve(bytes, "the telemetry queue and SQLite caches")) {
      return fail("memory budget too small: " + *err);
    }
  }
  {
    const std::string status = telemetry_status(recorder);
    if (recorder.health().state == telemetry::TelemetryState::kOk) {
      info(status);
    } else {
      warn(status);
    }
  }

  SchedulerOptions so;
  so.engine.n_ctx = cfg.context;
  so.engine.n_batch = cfg.batch;
  so.engine.precision = cfg.exact ? MatmulPrecision::kExact : MatmulPrecision::kFast;
  so.kv = cfg.kv;
  so.limits.max_tokens = cfg.max_tokens;
  so.limits.default_max_tokens = cfg.default_max_tokens;
  so.limits.max_prompt_bytes = cfg.max_body_bytes;
  so.queue_length = cfg.queue_length;
  so.decode_batch = cfg.decode_batch;
  so.n_threads = backend.n_threads();
  so.telemetry = &recorder;
  so.layer_stats_rate = cfg.telemetry.layer_stats_rate;
  so.probe = probe_options(cfg.telemetry);
#if MOMENTKV_HAVE_CUDA
  so.sequences = cuda_sequences.get();
#endif
  if (const char* stall = std::getenv("MOMENTKV_DEBUG_STALL_MS")) {
    // A test hook, read only here: no request or signal can stall a running daemon.
    char* end = nullptr;
    const long ms = std::strtol(stall, &end, 10);
    if (*end || ms < 0 || ms > 600'000) {
      return fail(std::string("MOMENTKV_DEBUG_STALL_MS expects 0..600000 ms, got '") + stall + "'");
    }
    so.debug_stall = std::chrono::milliseconds(ms);
    if (ms > 0) {
      warn(std::string("MOMENTKV_DEBUG_STALL_MS: the worker will stall ") + std::to_string(ms) +
           " ms in the first request (a test hook)");
    }
  }
  const std::string model_name = served.name;
  const ChatFormat chat = chat_format_for(*model, cfg.chat_template);
  Scheduler scheduler(served, backend, budget, so);
  Service service(scheduler, budget, so.limits, chat, &recorder);

  ipc::ServerOptions io;
  io.socket_path = cfg.socket_path;
  io.listen_fd = activated_socket();
  io.socket_mode = cfg.socket_mode;
  for (auto u : cfg.allowed_uids) io.allowed_uids.push_back(static_cast<uid_t>(u));
  for (auto g : cfg.allowed_gids) io.allowed_gids.push_back(static_cast<gid_t>(g));
  io.limits.max_body_bytes = cfg.max_body_bytes;
  io.limits.max_connections = cfg.max_connections;
  io.limits.idle_timeout = std::chrono::milliseconds(cfg.idle_timeout_ms);
  io.limits.max_output_buffer = cfg.output_buffer_bytes;
  io.limits.write_timeout = std::chrono::milliseconds(cfg.write_timeout_ms);
  std::unique_ptr<ipc::HttpServer> server;
  try {
    server = std::make_unique<ipc::HttpServer>(
        io, [&service](ipc::HttpRequest r, std::shared_ptr<ipc::ResponseWriter> w) {
          service.handle(std::move(r), std::move(w));
        });
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  scheduler.start();
  service.set_ready(true);  // the model is loaded and the worker runs: requests may come
  server->start();
  const auto serving_status = [&](const std::string& name) {
    return "serving " + name + " on " +
           (io.listen_fd >= 0 ? "an activated socket" : cfg.socket_path) + ", policy " +
           cfg.kv.policy + ", memory budget " +
           (cfg.memory_budget ? format_bytes(budget.budget()) : "unlimited") + ", " +
           telemetry_status(recorder);
  };
  std::string served_name = model_name;
  std::string ready_status = serving_status(served_name);
  info("ready: " + ready_status + " (chat template " + chat_format_name(chat) + ")");
  sd_notify("READY=1\nSTATUS=" + ready_status);
  recorder.submit(telemetry::EventRecord{
      telemetry::unix_ms(), "start",
      "momentkvd serving " + model_name + " (" + served.hash + ") policy " + cfg.kv.policy +
          " alpha " + std::to_string(cfg.kv.alpha) + " decode_budget " +
          std::to_string(cfg.kv.decode_budget) + " memory budget " +
          (cfg.memory_budget ? format_bytes(cfg.memory_budget) : std::string("none"))});

  // Watchdog: WATCHDOG=1 goes out from this loop (never from a timer thread), at least every
  // quarter interval, while the worker is healthy: parked with nothing to do, or its heartbeat
  // moved within the last interval. A worker stuck in one step longer than that (while a
  // request waits on it) gets no pings, and systemd's WatchdogSec= restarts the service.
  const char* wd = std::getenv("WATCHDOG_USEC");
  const long long watchdog_us = wd ? std::atoll(wd) : 0;
  const long long tick_ns =
      watchdog_us > 0 ? std::min(250'000'000ll, watchdog_us * 1000 / 4) : 250'000'000ll;
  uint64_t last_beat = scheduler.heartbeat();
  auto last_progress = std::chrono::steady_clock::now();
  bool stalled = false;
  while (true) {
    timespec timeout{0, static_cast<long>(tick_ns)};
    siginfo_t si{};
    const int sig = sigtimedwait(&signals, &si, &timeout);
    if (watchdog_us > 0) {
      const uint64_t beat = scheduler.heartbeat();
      const auto now = std::chrono::steady_clock::now();
      if (beat != last_beat || scheduler.parked()) {
        last_beat = beat;
        last_progress = now;
      }
      const auto quiet = now - last_progress;
      if (quiet < std::chrono::microseconds(watchdog_us)) {
        sd_notify(stalled ? "WATCHDOG=1\nSTATUS=" + ready_status : std::string("WATCHDOG=1"));
        if (stalled) info("the worker makes progress again; watchdog pings resume");
        stalled = false;
      } else if (!stalled) {
        stalled = true;
        const std::string why =
            std::string("the worker made no progress for ") +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(quiet).count()) +
            " ms with work waiting; watchdog pings withheld";
        warn(why);
        sd_notify("STATUS=stalled: " + why);
      }
    }
    if (sig == SIGTERM || sig == SIGINT) {
      info("stopping: no new connections; generations may finish for " +
           std::to_string(cfg.shutdown_deadline_ms) + " ms");
      // New connections are refused before STOPPING=1 goes out: a client that saw the daemon
      // stopping never gets a connection that is then dropped.
      server->stop_accepting();
      sd_notify("STOPPING=1\nSTATUS=stopping");
      scheduler.shutdown(std::chrono::milliseconds(cfg.shutdown_deadline_ms));
      // Let the last events reach their clients: busy connections close once their response
      // is written (stop_accepting set them to close).
      const auto flush_until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (server->connections() > 0 && std::chrono::steady_clock::now() < flush_until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      server->stop();
      recorder.submit(telemetry::EventRecord{telemetry::unix_ms(), "stop", "SIGTERM"});
      info("stopped");
      return 0;
    }
    if (sig == SIGHUP) {
      sd_notify("RELOADING=1\nSTATUS=reloading configuration");
      const uint64_t old_budget = budget.budget();
      bool budget_changed = false;
      std::string reload_error;
      try {
        DaemonConfig next = load_config(*args);
        if (next.memory_budget != cfg.memory_budget) {
          // Raising it must fit the machine as at start; lowering it takes nothing back from
          // running generations: nothing new is admitted until they have released enough.
          if (auto err = check_memory_budget(next.memory_budget, read_system_memory(),
                                             current_rss_bytes())) {
            throw ConfigError(*err);
          }
          if (auto err = scheduler.set_memory_budget(budget_for(next.memory_budget))) {
            throw ConfigError(*err);
          }
          budget_changed = true;
          const std::string change =
              "memory budget " +
              (cfg.memory_budget ? format_bytes(cfg.memory_budget) : std::string("none")) + " -> " +
              (next.memory_budget ? format_bytes(next.memory_budget) : std::string("none")) + " (" +
              format_bytes(budget.used()) + " reserved now)";
          info("reload: " + change);
          recorder.submit(telemetry::EventRecord{telemetry::unix_ms(), "reload", change});
        }
        if (next.backend != cfg.backend) {
          throw ConfigError("model.backend \"" + cfg.backend + "\" -> \"" + next.backend +
                            "\" needs a restart");
        }
        if (next.model_path != cfg.model_path && cfg.backend == "cuda") {
          throw ConfigError("switching models needs a restart with backend = \"cuda\"");
        }
        if (next.model_path != cfg.model_path) {
          // Load the new model beside the old one (the socket stays open, requests keep
          // queueing), reserve its weights, then let the scheduler switch once the running
          // generations end.
          Scheduler::Served fresh = load_served(next.model_path);
          const uint64_t new_weights = fresh.model->weight_bytes();
          if (auto err = budget.try_reserve(new_weights, "the new model's weights")) {
            throw ConfigError("cannot switch to " + next.model_path + ": " + *err);
          }
          const uint64_t old_weights = scheduler.served().model->weight_bytes();
          service.set_chat_format(chat_format_for(*fresh.model, next.chat_template));
          info("reload: switching to " + next.model_path + " once running generations end");
          served_name = fresh.name;
          recorder.submit(
              telemetry::EventRecord{telemetry::unix_ms(), "model",
                                     "switching to " + next.model_path + " (" + fresh.hash + ")"});
          scheduler.replace_model(std::move(fresh), old_weights);
          cfg.model_path = next.model_path;
        }
        scheduler.set_default_kv(next.kv);
        const std::string change = "policy " + cfg.kv.policy + " -> " + next.kv.policy +
                                   ", alpha " + std::to_string(cfg.kv.alpha) + " -> " +
                                   std::to_string(next.kv.alpha) + ", decode_budget " +
                                   std::to_string(cfg.kv.decode_budget) + " -> " +
                                   std::to_string(next.kv.decode_budget);
        cfg.kv = next.kv;
        cfg.memory_budget = next.memory_budget;
        ready_status = serving_status(served_name);
        info("reloaded configuration: " + change);
        recorder.submit(telemetry::EventRecord{telemetry::unix_ms(), "reload", change});
        service.config_reloaded(true);
      } catch (const std::exception& e) {
        service.config_reloaded(false);
        // The old budget back (it held the same weights, so it fits again).
        if (budget_changed) scheduler.set_memory_budget(old_budget);
        warn(std::string("reload failed, keeping the old configuration: ") + e.what());
        recorder.submit(telemetry::EventRecord{telemetry::unix_ms(), "error",
                                               std::string("reload failed: ") + e.what()});
        reload_error = e.what();
      }
      // READY=1 either way (the old configuration serves on after a failure), with the error
      // where `systemctl status` shows it (SD-5b).
      sd_notify("READY=1\nSTATUS=" + (reload_error.empty()
                                          ? ready_status
                                          : "reload failed, kept the old configuration: " +
                                                reload_error + "; " + ready_status));
    }
  }
}
