#include "daemon/telemetry/stats_query.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

namespace momentkv::telemetry {

std::optional<int64_t> parse_duration_ms(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  const int64_t n = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  int64_t scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else if (unit == "d") {
    scale = 86'400'000;
  } else {
    return std::nullopt;
  }
  if (n > std::numeric_limits<int64_t>::max() / scale) return std::nullopt;
  return n * scale;
}

double percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(q * static_cast<double>(values.size()));
  const size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return values[std::min(i, values.size() - 1)];
}

namespace {

using Key = std::tuple<std::string, std::string, double, int32_t>;  // model, policy, α, budget

Statement windowed(Database& db, const std::string& sql, const StatsWindow& w) {
  Statement s(db, sql);
  s.bind(1, w.since_ms).bind(2, w.until_ms);
  return s;
}

}  // namespace

StatsReport query_stats(Database& db, const StatsWindow& window) {
  StatsReport report;
  report.window = window;
  struct Acc {
    StatsGroup g;
    std::vector<double> tps, ttft, kv;
    int64_t altered = 0;
    double kl = 0, agreement = 0;
  };
  std::map<Key, Acc> groups;
  auto group = [&](const std::string& model, const std::string& policy, double alpha,
                   int32_t budget) -> Acc& {
    Acc& a = groups[Key{model, policy, alpha, budget}];
    a.g.model = model;
    a.g.policy = policy;
    a.g.alpha = alpha;
    a.g.decode_budget = budget;
    return a;
  };
  Statement rq =
      windowed(db,
               "SELECT model, policy, alpha, decode_budget, finish_reason, "
               "prompt_tokens, generated_tokens, evicted, decode_tokens_per_s, "
               "ttft_ms, context_altered, peak_kv_bytes FROM requests WHERE time_ms >= ?1 AND "
               "time_ms < ?2",
               window);
  while (rq.step()) {
    Acc& a = group(rq.column_text(0), rq.column_text(1), rq.column_double(2),
                   static_cast<int32_t>(rq.column_int(3)));
    const std::string finish = rq.column_text(4);
    ++a.g.requests;
    ++report.requests;
    if (finish == "error") ++a.g.errors;
    if (finish == "cancelled") ++a.g.cancelled;
    const int64_t generated = rq.column_int(6);
    a.g.prompt_tokens += rq.column_int(5);
    a.g.generated_tokens += generated;
    a.g.evicted += rq.column_int(7);
    // Speed is meaningful only for generations of more than one token.
    if (generated > 1 && rq.column_double(8) > 0) a.tps.push_back(rq.column_double(8));
    if (!rq.column_null(9)) a.ttft.push_back(rq.column_double(9));
    a.altered += rq.column_int(10);
    if (rq.column_int(11) > 0) a.kv.push_back(static_cast<double>(rq.column_int(11)));
  }
  Statement pq = windowed(db,
                          "SELECT model, policy, alpha, decode_budget, kl_mean, top1_agreement "
                          "FROM fidelity_probes WHERE request_config = 1 AND time_ms >= ?1 AND "
                          "time_ms < ?2",
                          window);
  while (pq.step()) {
    Acc& a = group(pq.column_text(0), pq.column_text(1), pq.column_double(2),
                   static_cast<int32_t>(pq.column_int(3)));
    ++a.g.probes;
    a.kl += pq.column_double(4);
    a.agreement += pq.column_double(5);
  }
  for (auto& [key, a] : groups) {
    StatsGroup g = a.g;
    g.tokens_per_s_p50 = percentile(a.tps, 0.50);
    g.tokens_per_s_p95 = percentile(a.tps, 0.95);
    g.ttft_ms_p50 = percentile(a.ttft, 0.50);
    g.ttft_ms_p95 = percentile(a.ttft, 0.95);
    g.peak_kv_bytes_p95 = percentile(a.kv, 0.95);
    g.peak_kv_bytes_max = a.kv.empty() ? 0.0 : a.kv.back();  // sorted by percentile()
    g.eviction_rate = g.generated_tokens > 0
                          ? static_cast<double>(g.evicted) / static_cast<double>(g.generated_tokens)
                          : 0.0;
    g.context_altered_share =
        g.requests > 0 ? static_cast<double>(a.altered) / static_cast<double>(g.requests) : 0.0;
    if (g.probes > 0) {
      g.probe_kl_mean = a.kl / static_cast<double>(g.probes);
      g.probe_agreement_mean = a.agreement / static_cast<double>(g.probes);
    }
    report.groups.push_back(g);
  }
  Statement ev =
      windowed(db, "SELECT COUNT(*) FROM events WHERE time_ms >= ?1 AND time_ms < ?2", window);
  if (ev.step()) report.events = ev.column_int(0);
  return report;
}

std::string stats_json(const StatsReport& report) {
  nlohmann::json groups = nlohmann::json::array();
  for (const StatsGroup& g : report.groups) {
    groups.push_back({{"model", g.model},
                      {"policy", g.policy},
                      {"alpha", g.alpha},
                      {"decode_budget", g.decode_budget},
                      {"requests", g.requests},
                      {"errors", g.errors},
                      {"cancelled", g.cancelled},
                      {"prompt_tokens", g.prompt_tokens},
                      {"generated_tokens", g.generated_tokens},
                      {"evicted", g.evicted},
                      {"tokens_per_s_p50", g.tokens_per_s_p50},
                      {"tokens_per_s_p95", g.tokens_per_s_p95},
                      {"ttft_ms_p50", g.ttft_ms_p50},
                      {"ttft_ms_p95", g.ttft_ms_p95},
                      {"peak_kv_bytes_p95", g.peak_kv_bytes_p95},
                      {"peak_kv_bytes_max", g.peak_kv_bytes_max},
                      {"eviction_rate", g.eviction_rate},
                      {"context_altered_share", g.context_altered_share},
                      {"probes", g.probes},
                      {"probe_kl_mean", g.probe_kl_mean},
                      {"probe_agreement_mean", g.probe_agreement_mean}});
  }
  nlohmann::json j = {{"object", "stats"},
                      {"since_ms", report.window.since_ms},
                      {"until_ms", report.window.until_ms},
                      {"requests", report.requests},
                      {"events", report.events},
                      {"groups", groups}};
  return j.dump();
}

StatsReport stats_from_json(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("groups")) {
    throw Error("not a stats report: " + text.substr(0, 200));
  }
  StatsReport r;
  r.window.since_ms = j.value("since_ms", int64_t{0});
  r.window.until_ms = j.value("until_ms", std::numeric_limits<int64_t>::max());
  r.requests = j.value("requests", int64_t{0});
  r.events = j.value("events", int64_t{0});
  for (const auto& g : j["groups"]) {
    StatsGroup s;
    s.model = g.value("model", "");
    s.policy = g.value("policy", "");
    s.alpha = g.value("alpha", 0.0);
    s.decode_budget = g.value("decode_budget", 0);
    s.requests = g.value("requests", int64_t{0});
    s.errors = g.value("errors", int64_t{0});
    s.cancelled = g.value("cancelled", int64_t{0});
    s.prompt_tokens = g.value("prompt_tokens", int64_t{0});
    s.generated_tokens = g.value("generated_tokens", int64_t{0});
    s.evicted = g.value("evicted", int64_t{0});
    s.tokens_per_s_p50 = g.value("tokens_per_s_p50", 0.0);
    s.tokens_per_s_p95 = g.value("tokens_per_s_p95", 0.0);
    s.ttft_ms_p50 = g.value("ttft_ms_p50", 0.0);
    s.ttft_ms_p95 = g.value("ttft_ms_p95", 0.0);
    s.peak_kv_bytes_p95 = g.value("peak_kv_bytes_p95", 0.0);
    s.peak_kv_bytes_max = g.value("peak_kv_bytes_max", 0.0);
    s.eviction_rate = g.value("eviction_rate", 0.0);
    s.context_altered_share = g.value("context_altered_share", 0.0);
    s.probes = g.value("probes", int64_t{0});
    s.probe_kl_mean = g.value("probe_kl_mean", 0.0);
    s.probe_agreement_mean = g.value("probe_agreement_mean", 0.0);
    r.groups.push_back(std::move(s));
  }
  return r;
}

std::string stats_table(const StatsReport& report) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line,
                "%-20s %-9s %5s %6s %7s %9s %8s %8s %9s %9s %9s %7s %7s %6s %7s %8s\n", "model",
                "policy", "alpha", "budget", "reqs", "gen_tok", "tok/s50", "tok/s95", "ttft50ms",
                "ttft95ms", "kv95MiB", "evict", "altered", "probes", "agree", "kl");
  out += line;
  for (const StatsGroup& g : report.groups) {
    const std::string model = g.model.size() > 20 ? g.model.substr(0, 17) + "..." : g.model;
    char agree[16] = "-", kl[16] = "-";
    if (g.probes > 0) {
      std::snprintf(agree, sizeof agree, "%.3f", g.probe_agreement_mean);
      std::snprintf(kl, sizeof kl, "%.4f", g.probe_kl_mean);
    }
    std::snprintf(line, sizeof line,
                  "%-20s %-9s %5.2f %6d %7lld %9lld %8.1f %8.1f %9.1f %9.1f %9.2f %6.1f%% %6.1f%% "
                  "%6lld %7s %8s\n",
                  model.c_str(), g.policy.c_str(), g.alpha, g.decode_budget,
                  static_cast<long long>(g.requests), static_cast<long long>(g.generated_tokens),
                  g.tokens_per_s_p50, g.tokens_per_s_p95, g.ttft_ms_p50, g.ttft_ms_p95,
                  g.peak_kv_bytes_p95 / (1024.0 * 1024.0), 100.0 * g.eviction_rate,
                  100.0 * g.context_altered_share, static_cast<long long>(g.probes), agree, kl);
    out += line;
  }
  if (report.groups.empty()) out += "(no requests in this window)\n";
  out += std::to_string(report.requests) + " requests, " + std::to_string(report.events) +
         " events in the window\n";
  return out;
}

std::vector<ProbeRow> read_probes(Database& db, const StatsWindow& window,
                                  const std::string& model) {
  std::vector<ProbeRow> rows;
  Statement s(db,
              "SELECT model, policy, scope, alpha, decode_budget, tokens, kl_mean, "
              "top1_agreement, time_ms FROM fidelity_probes WHERE time_ms >= ?1 AND time_ms < ?2 "
              "AND (?3 = '' OR model = ?3) ORDER BY id");
  s.bind(1, window.since_ms).bind(2, window.until_ms).bind(3, model);
  while (s.step()) {
    ProbeRow r;
    r.model = s.column_text(0);
    r.policy = s.column_text(1);
    r.scope = s.column_text(2);
    r.alpha = s.column_double(3);
    r.decode_budget = static_cast<int32_t>(s.column_int(4));
    r.tokens = static_cast<int32_t>(s.column_int(5));
    r.kl_mean = s.column_double(6);
    r.top1_agreement = s.column_double(7);
    r.time_ms = s.column_int(8);
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<int32_t> read_generated_tokens(Database& db, const StatsWindow& window,
                                           const std::string& model) {
  std::vector<int32_t> out;
  Statement s(db,
              "SELECT generated_tokens FROM requests WHERE time_ms >= ?1 AND time_ms < ?2 AND "
              "finish_reason != 'error' AND (?3 = '' OR model = ?3) ORDER BY id");
  s.bind(1, window.since_ms).bind(2, window.until_ms).bind(3, model);
  while (s.step()) out.push_back(static_cast<int32_t>(s.column_int(0)));
  return out;
}

}  // namespace momentkv::telemetry
