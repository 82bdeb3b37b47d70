// Telemetry subcommands: `stats` (aggregates from the running daemon, or straight from a
// telemetry database when none runs) and `tune` (the smallest decode budget and the alpha that
// meet a fidelity target on this device's recorded workload; optionally written into the config).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "daemon/config_editor.h"
#include "daemon/daemon_config.h"
#include "daemon/telemetry/records.h"
#include "daemon/telemetry/stats_query.h"
#include "daemon/telemetry/tuner.h"
#include "ipc/unix_http_client.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace momentkv::tools {

using nlohmann::json;

namespace {

constexpr const char* kDefaultConfig = "/etc/momentkv/momentkvd.toml";

// The telemetry database: --db, else the one the config names (--config, else the installed
// config when readable), else the default path.
std::string database_path(const std::string& db, const std::string& config) {
  if (!db.empty()) return db;
  const std::string file =
      !config.empty() ? config : (access(kDefaultConfig, R_OK) == 0 ? kDefaultConfig : "");
  if (!file.empty()) return load_daemon_config(file).telemetry.resolved_path();
  return TelemetryConfig{}.resolved_path();
}

telemetry::StatsWindow window_since(const std::string& since) {
  const auto ms = telemetry::parse_duration_ms(since);
  if (!ms)
    throw UsageError("--since expects a duration such as 30m, 24h or 7d, got '" + since + "'");
  telemetry::StatsWindow w;
  w.since_ms = telemetry::unix_ms() - *ms;
  return w;
}

std::unique_ptr<telemetry::Database> open_database(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    throw Error("no telemetry database at " + path + " (pass --db PATH or --config FILE)");
  }
  auto db = std::make_unique<telemetry::Database>(path, telemetry::Database::Mode::kReadOnly);
  db->busy_timeout(5000);
  return db;
}

}  // namespace

int cmd_stats(int argc, char** argv) {
  ArgParser p("stats",
              "Requests, speed and what compression did, per model / policy / alpha / budget, "
              "over a time window: from the running daemon, or from a telemetry database.");
  std::string socket = ipc::default_socket_path(), db, config, since = "24h";
  bool as_json = false;
  p.add({"--socket"}, "PATH", "the daemon's socket (default $MOMENTKV_SOCKET or /run/momentkv/)",
        [&](const std::string& v) { socket = v; });
  p.add({"--db"}, "PATH", "read this telemetry database directly (no daemon needed)",
        [&](const std::string& v) { db = v; });
  p.add({"--config"}, "FILE", "the daemon's config, to find its database when it is not running",
        [&](const std::string& v) { config = v; });
  p.add({"--since"}, "DURATION", "window: 30m, 24h (default), 7d, ...",
        [&](const std::string& v) { since = v; });
  p.add_switch({"--json"}, "print JSON (the /v1/stats object) instead of a table",
               [&] { as_json = true; });
  if (!p.parse(argc, argv)) return 0;
  const telemetry::StatsWindow window = window_since(since);

  if (db.empty()) {
    // The daemon first: it knows its database and reports the telemetry health with it.
    try {
      const auto r = ipc::unix_http(socket, "GET", "/v1/stats?since=" + since, "");
      if (r.status == 200) {
        if (as_json) {
          std::printf("%s\n", r.body.c_str());
          return 0;
        }
        const json j = json::parse(r.body, nullptr, false);
        if (!j.is_discarded() && j.contains("telemetry")) {
          const auto& t = j["telemetry"];
          std::printf("telemetry %s (%s), %lld records written, %lld dropped\n",
                      t.value("state", "?").c_str(), t.value("path", "?").c_str(),
                      static_cast<long long>(t.value("written", int64_t{0})),
                      static_cast<long long>(t.value("dropped_queue_full", int64_t{0}) +
                                             t.value("dropped_write_failed", int64_t{0})));
        }
        std::fputs(telemetry::stats_table(telemetry::stats_from_json(r.body)).c_str(), stdout);
        return 0;
      }
      std::fprintf(stderr, "momentkv stats: the daemon answered %d: %s\n", r.status,
                   r.body.c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "momentkv stats: no daemon at %s (%s); reading the database\n",
                   socket.c_str(), e.what());
    }
  }
  const std::string path = database_path(db, config);
  auto database = open_database(path);
  const auto report = telemetry::query_stats(*database, window);
  if (as_json) {
    std::printf("%s\n", telemetry::stats_json(report).c_str());
  } else {
    std::printf("database %s\n", path.c_str());
    std::fputs(telemetry::stats_table(report).c_str(), stdout);
  }
  return 0;
}

int cmd_tune(int argc, char** argv) {
  ArgParser p("tune",
              "Recommend the smallest decode budget (and the alpha) that meets a fidelity target "
              "on the recorded workload, from the daemon's fidelity probes.");
  std::string db, config, since = "30d", model, write;
  telemetry::TuneTarget target;
  bool as_json = false;
  p.add({"--target-agreement"}, "A", "lower confidence bound on top-1 agreement to reach (0..1)",
        [&](const std::string& v) {
          target.agreement = ArgParser::to_double("--target-agreement", v);
          if (*target.agreement <= 0 || *target.agreement > 1) {
            throw UsageError("--target-agreement must be in (0, 1]");
          }
        });
  p.add({"--target-kl"}, "KL", "upper confidence bound on mean KL (nats) to stay under",
        [&](const std::string& v) {
          target.kl = ArgParser::to_double("--target-kl", v);
          if (*target.kl <= 0) throw UsageError("--target-kl must be > 0");
        });
  p.add({"--db"}, "PATH", "the telemetry database (default: the one the config names)",
        [&](const std::string& v) { db = v; });
  p.add({"--config"}, "FILE", "the daemon's config (default /etc/momentkv/momentkvd.toml)",
        [&](const std::string& v) { config = v; });
  p.add({"--since"}, "DURATION", "probes and requests of this window (default 30d)",
        [&](const std::string& v) { since = v; });
  p.add({"--model"}, "NAME", "the model to tune for (default: the one probed last)",
        [&](const std::string& v) { model = v; });
  p.add({"--min-probes"}, "N", "probes a configuration needs to qualify (default 5)",
        [&](const std::string& v) {
          target.min_probes =
              static_cast<int32_t>(ArgParser::to_int("--min-probes", v, 2, 1 << 20));
        });
  p.add({"--confidence"}, "C", "one-sided confidence of the bounds (default 0.95)",
        [&](const std::string& v) {
          target.confidence = ArgParser::to_double("--confidence", v);
          if (target.confidence <= 0.5 || target.confidence >= 1) {
            throw UsageError("--confidence must be in (0.5, 1)");
          }
        });
  p.add({"--write"}, "FILE",
        "set [kv] decode_budget and alpha in this config file (comments kept); then "
        "`systemctl reload momentkvd`",
        [&](const std::string& v) { write = v; });
  p.add_switch({"--json"}, "print JSON", [&] { as_json = true; });
  if (!p.parse(argc, argv)) return 0;
  if (!target.agreement && !target.kl) {
    throw UsageError("give --target-agreement A and/or --target-kl KL");
  }
  const telemetry::StatsWindow window = window_since(since);
  const std::string path = database_path(db, config);
  auto database = open_database(path);
  auto probes = telemetry::read_probes(*database, window, model);
  if (model.empty() && !probes.empty()) {
    // The model probed last; its rows only.
    model = probes.back().model;
    std::erase_if(probes, [&](const telemetry::ProbeRow& r) { return r.model != model; });
  }
  const auto generated = telemetry::read_generated_tokens(*database, window, model);
  const auto rec = telemetry::recommend(probes, generated, target);

  if (as_json) {
    json table = json::array();
    for (const auto& c : rec.table) {
      table.push_back({{"policy", c.policy},
                       {"scope", c.scope},
                       {"alpha", c.alpha},
                       {"decode_budget", c.decode_budget},
                       {"probes", c.n_probes},
                       {"agreement_mean", c.agreement_mean},
                       {"agreement_lower", c.agreement_lower},
                       {"kl_mean", c.kl_mean},
                       {"kl_upper", std::isfinite(c.kl_upper) ? json(c.kl_upper) : json(nullptr)},
                       {"meets", c.meets}});
    }
    json out = {{"database", path},
                {"model", model},
                {"found", rec.found},
                {"explanation", rec.explanation},
                {"requests", rec.requests},
                {"generated_p50", rec.generated_p50},
                {"generated_p95", rec.generated_p95},
                {"candidates", table}};
    if (rec.found) {
      out["recommendation"] = {{"policy", rec.chosen.policy},
                               {"scope", rec.chosen.scope},
                               {"alpha", rec.chosen.alpha},
                               {"decode_budget", rec.chosen.decode_budget},
                               {"share_over_budget", rec.share_over_budget}};
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf(
        "database %s, model %s: %zu probes, %lld requests (generated tokens p50 %.0f, "
        "p95 %.0f)\n",
        path.c_str(), model.empty() ? "-" : model.c_str(), probes.size(),
        static_cast<long long>(rec.requests), rec.generated_p50, rec.generated_p95);
    std::printf("%-8s %-8s %6s %7s %6s %10s %10s %9s %9s %5s\n", "policy", "scope", "alpha",
                "budget", "probes", "agree_mean", "agree_low", "kl_mean", "kl_high", "meets");
    for (const auto& c : rec.table) {
      std::printf("%-8s %-8s %6.3f %7d %6d %10.4f %10.4f %9.5f %9.5f %5s\n", c.policy.c_str(),
                  c.scope.c_str(), c.alpha, c.decode_budget, c.n_probes, c.agreement_mean,
                  c.agreement_lower, c.kl_mean, std::isfinite(c.kl_upper) ? c.kl_upper : -1.0,
                  c.meets ? "yes" : "no");
    }
    std::printf("%s\n", rec.explanation.c_str());
  }
  if (!rec.found) return 1;
  if (!write.empty()) {
    char alpha[32];
    std::snprintf(alpha, sizeof alpha, "%.6g", rec.chosen.alpha);
    std::string alpha_literal = alpha;
    if (alpha_literal.find_first_of(".e") == std::string::npos) alpha_literal += ".0";
    write_config_values(write, "kv",
                        {{"policy", "\"" + rec.chosen.policy + "\""},
                         {"decode_budget", std::to_string(rec.chosen.decode_budget)},
                         {"alpha", alpha_literal}});
    std::fprintf(stderr,
                 "wrote [kv] policy = \"%s\", decode_budget = %d, alpha = %s into %s; apply with "
                 "`systemctl reload momentkvd`\n",
                 rec.chosen.policy.c_str(), rec.chosen.decode_budget, alpha_literal.c_str(),
                 write.c_str());
  }
  return 0;
}

}  // namespace momentkv::tools
