#include "tools/load_generator.h"

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "core/engine/memory_budget.h"
#include "core/util/error.h"
#include "ipc/unix_http_client.h"

namespace momentkv::tools {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

const std::vector<std::string> kPrompts = {
    "Once upon a time",
    "Tom had a red ball.",
    "The cat sat on the",
    "Lily and her mom went to the park. They saw a big dog and",
    "One day, a little bird",
    "Ben liked to run fast. One morning he found a shiny stone under a tree, and he",
    "Sue found a big box.",
    "The sun was hot and the children wanted to play in the water, so",
};

// What one client loop saw; merged at the end.
struct LoopStats {
  int64_t requests = 0, completed = 0, disconnected = 0, tokens = 0, refused = 0, failed = 0;
  std::map<std::string, int64_t> errors;
  std::vector<double> ttft, gaps, refusal;
  Clock::time_point last_end{};
};

std::string error_kind(const StreamResult& r) {
  switch (r.end) {
    case StreamEnd::kRefused:
      return std::string("HTTP ") + std::to_string(r.status) +
             (r.error_code.empty() ? std::string() : std::string(" ") + r.error_code);
    case StreamEnd::kStreamError:
      return "stream error " + r.error_code;
    case StreamEnd::kConnectFailed:
      return "connect " + r.error_code;
    default:
      return to_string(r.end);
  }
}

void client_loop(const LoadOptions& o, int index, Clock::time_point end,
                 const std::atomic<bool>* stop, LoopStats& st) {
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index) + 1);
  const std::vector<std::string>& prompts = o.prompts.empty() ? kPrompts : o.prompts;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  while (Clock::now() < end && !(stop && stop->load())) {
    const bool is_long = unit(rng) < o.long_share;
    const int max_tokens = std::max(1, is_long ? o.long_tokens : o.short_tokens);
    StreamOptions so;
    so.read_timeout_ms = o.read_timeout_ms;
    if (unit(rng) < o.disconnect_share) {
      so.disconnect_after = std::uniform_int_distribution<int>(0, max_tokens - 1)(rng);
    }
    const std::string& prompt =
        prompts[std::uniform_int_distribution<size_t>(0, prompts.size() - 1)(rng)];
    const json body = {{"prompt", prompt},
                       {"max_tokens", max_tokens},
                       {"stream", true},
                       {"temperature", o.temperature},
                       {"seed", static_cast<int64_t>(rng() >> 33)}};
    const StreamResult r = stream_completion(o.socket, body.dump(), so);
    ++st.requests;
    st.last_end = Clock::now();
    if (r.ttft_ms >= 0) st.ttft.push_back(r.ttft_ms);
    st.gaps.insert(st.gaps.end(), r.gaps_ms.begin(), r.gaps_ms.end());
    bool pause = false;
    switch (r.end) {
      case StreamEnd::kCompleted:
        ++st.completed;
        st.tokens += r.completion_tokens >= 0 ? r.completion_tokens : r.token_events;
        break;
      case StreamEnd::kDisconnected:
        ++st.disconnected;
        st.tokens += r.token_events;
        break;
      default:
        st.tokens += r.token_events;
        ++st.errors[error_kind(r)];
        if (r.end == StreamEnd::kRefused) st.refusal.push_back(r.response_ms);
        if (r.end == StreamEnd::kRefused && r.status == 503) {
          ++st.refused;
        } else {
          ++st.failed;
        }
        pause = r.end == StreamEnd::kRefused || r.end == StreamEnd::kConnectFailed;
        break;
    }
    if (pause && o.refusal_pause_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(o.refusal_pause_ms));
    }
  }
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

int64_t counter(const std::string& text, const std::string& name) {
  const auto v = metric_value(text, name);
  return v ? static_cast<int64_t>(*v) : -1;
}

json percentiles_json(const Percentiles& p) {
  return {{"n", p.n}, {"p50", p.p50}, {"p99", p.p99}, {"max", p.max}};
}

std::string bytes_or_unknown(uint64_t b) {
  return b ? format_bytes(b) : std::string("unknown");
}

}  // namespace

Percentiles Percentiles::of(std::vector<double> v) {
  Percentiles p;
  p.n = static_cast<int64_t>(v.size());
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    const auto i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  p.max = v.back();
  return p;
}

std::optional<double> metric_value(const std::string& text, const std::string& name) {
  size_t pos = 0;
  while ((pos = text.find(name, pos)) != std::string::npos) {
    const bool line_start = pos == 0 || text[pos - 1] == '\n';
    const size_t after = pos + name.size();
    if (line_start && after < text.size() && text[after] == ' ') {
      return std::strtod(text.c_str() + after + 1, nullptr);
    }
    pos = after;
  }
  return std::nullopt;
}

std::string fetch_metrics(const std::string& socket) {
  try {
    const auto r = ipc::unix_http(socket, "GET", "/metrics", "");
    return r.status == 200 ? r.body : std::string();
  } catch (const std::exception&) {
    return {};
  }
}

std::optional<ProcMemory> read_proc_memory(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  if (!f) return std::nullopt;
  ProcMemory m;
  bool any = false;
  std::string line;
  while (std::getline(f, line)) {
    // "VmRSS:	   12345 kB"
    uint64_t* into = line.rfind("VmRSS:", 0) == 0   ? &m.rss
                     : line.rfind("VmHWM:", 0) == 0 ? &m.hwm
                                                    : nullptr;
    if (!into) continue;
    *into = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    any = true;
  }
  if (!any) return std::nullopt;
  return m;
}

int count_open_fds(pid_t pid) {
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  int n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

LoadReport run_load(const LoadOptions& o, const std::atomic<bool>* stop) {
  check(!o.socket.empty(), "run_load: no socket");
  LoadReport rep;
  rep.options = o;
  rep.pid = o.pid;
  rep.pid_source = "--pid";
  if (rep.pid <= 0) {
    rep.pid = socket_peer_pid(o.socket);
    rep.pid_source = "SO_PEERCRED";
  }
  const std::string before = fetch_metrics(o.socket);

  // Sampler: the daemon's RSS every 100 ms, its gauges every 300 ms.
  std::atomic<bool> sampling{true};
  std::mutex sample_mu;
  uint64_t rss_peak = 0, used_peak = 0;
  int64_t queue_peak = -1, active_peak = -1;
  std::thread sampler([&] {
    for (int tick = 0; sampling.load(); ++tick) {
      uint64_t rss = 0;
      if (rep.pid > 0) {
        if (auto m = read_proc_memory(rep.pid)) rss = m->rss;
      }
      std::string metrics;
      if (tick % 3 == 0) metrics = fetch_metrics(o.socket);
      {
        std::lock_guard<std::mutex> lock(sample_mu);
        rss_peak = std::max(rss_peak, rss);
        if (!metrics.empty()) {
          used_peak = std::max(used_peak, static_cast<uint64_t>(std::max<int64_t>(
                                              0, counter(metrics, "momentkv_memory_used_bytes"))));
          queue_peak = std::max(queue_peak, counter(metrics, "momentkv_queue_length"));
          active_peak = std::max(active_peak, counter(metrics, "momentkv_active_generations"));
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(std::max(0.0, o.duration_s)));
  std::vector<LoopStats> loops(static_cast<size_t>(std::max(1, o.concurrency)));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < loops.size(); ++i) {
    threads.emplace_back([&, i] { client_loop(o, static_cast<int>(i), end, stop, loops[i]); });
  }
  for (auto& t : threads) t.join();
  sampling = false;
  sampler.join();

  std::vector<double> ttft, gaps, refusal;
  Clock::time_point last = start;
  for (const LoopStats& l : loops) {
    rep.requests += l.requests;
    rep.completed += l.completed;
    rep.disconnected += l.disconnected;
    rep.tokens += l.tokens;
    rep.refused += l.refused;
    rep.failed += l.failed;
    for (const auto& [k, n] : l.errors) rep.errors[k] += n;
    ttft.insert(ttft.end(), l.ttft.begin(), l.ttft.end());
    gaps.insert(gaps.end(), l.gaps.begin(), l.gaps.end());
    refusal.insert(refusal.end(), l.refusal.begin(), l.refusal.end());
    last = std::max(last, l.last_end);
  }
  rep.wall_s = std::chrono::duration<double>(last - start).count();
  rep.tokens_per_s = rep.wall_s > 0 ? static_cast<double>(rep.tokens) / rep.wall_s : 0;
  rep.ttft_ms = Percentiles::of(std::move(ttft));
  rep.inter_token_ms = Percentiles::of(std::move(gaps));
  rep.refusal_ms = Percentiles::of(std::move(refusal));

  rep.rss_peak_run = rss_peak;
  rep.memory_used_peak = used_peak;
  rep.queue_peak = queue_peak;
  rep.active_peak = active_peak;
  if (rep.pid > 0) {
    if (auto m = read_proc_memory(rep.pid)) {
      rep.rss_end = m->rss;
      // The kernel updates VmHWM lazily (it can lag a VmRSS sampled a moment before).
      rep.peak_rss = std::max({m->hwm, m->rss, rss_peak});
    }
  }
  const std::string after = fetch_metrics(o.socket);
  if (!after.empty()) {
    const auto budget = metric_value(after, "momentkv_memory_budget_bytes");
    // An unlimited budget is exported as a huge number: report none.
    if (budget && *budget > 0 && *budget < 1e18) rep.memory_budget = static_cast<uint64_t>(*budget);
    auto delta = [&](const std::string& name) -> int64_t {
      const int64_t a = counter(before, name), b = counter(after, name);
      return a >= 0 && b >= 0 ? b - a : -1;
    };
    rep.admitted = delta("momentkv_requests_admitted_total");
    rep.queued = delta("momentkv_requests_queued_total");
    rep.rejected = delta("momentkv_requests_total{outcome=\"rejected\"}");
  }
  return rep;
}

std::string LoadReport::text() const {
  const LoadOptions& o = options;
  std::string s;
  s +=
      fmt("momentkv load: %.1f s, %d clients, %d/%d tokens (%.0f %% long), %.0f %% hang-ups, "
          "seed %llu\n",
          o.duration_s, o.concurrency, o.short_tokens, o.long_tokens, 100 * o.long_share,
          100 * o.disconnect_share, static_cast<unsigned long long>(o.seed));
  s += fmt("%-32s %lld in %.1f s\n", "requests", static_cast<long long>(requests), wall_s);
  s += fmt("  %-30s %lld\n", "completed", static_cast<long long>(completed));
  s += fmt("  %-30s %lld\n", "disconnected on purpose", static_cast<long long>(disconnected));
  s += fmt("  %-30s %lld (%lld busy refusals, %lld failures)\n", "errors",
           static_cast<long long>(refused + failed), static_cast<long long>(refused),
           static_cast<long long>(failed));
  for (const auto& [kind, n] : errors) {
    s += fmt("    %-28s %lld\n", kind.c_str(), static_cast<long long>(n));
  }
  auto lat = [&](const char* name, const Percentiles& p) {
    if (p.n == 0) {
      s += fmt("%-32s -\n", name);
    } else {
      s += fmt("%-32s p50 %.2f  p99 %.2f  max %.2f  (n %lld)\n", name, p.p50, p.p99, p.max,
               static_cast<long long>(p.n));
    }
  };
  lat("time to first token, ms", ttft_ms);
  lat("inter-token, ms", inter_token_ms);
  lat("refusal, ms", refusal_ms);
  s += fmt("%-32s %lld (%.1f tokens/s)\n", "tokens received", static_cast<long long>(tokens),
           tokens_per_s);
  if (pid > 0) {
    s += fmt("daemon pid %d (%s)\n", static_cast<int>(pid), pid_source.c_str());
  } else {
    s += "daemon pid unknown (give --pid)\n";
  }
  std::string budget = memory_budget ? format_bytes(memory_budget) : std::string("none/unknown");
  if (memory_budget && peak_rss) {
    budget += fmt(" (peak RSS %.1f %% of it)",
                  100.0 * static_cast<double>(peak_rss) / static_cast<double>(memory_budget));
  }
  s += fmt("  %-30s %s\n", "memory budget", budget.c_str());
  s += fmt("  %-30s %s\n", "peak RSS", bytes_or_unknown(peak_rss).c_str());
  s += fmt("  %-30s %s / %s\n", "RSS: run peak / end", bytes_or_unknown(rss_peak_run).c_str(),
           bytes_or_unknown(rss_end).c_str());
  s += fmt("  %-30s %s\n", "budget reserved, peak", bytes_or_unknown(memory_used_peak).c_str());
  if (admitted >= 0) {
    s += fmt("  %-30s %lld / %lld / %lld\n", "admitted / queued / rejected",
             static_cast<long long>(admitted), static_cast<long long>(queued),
             static_cast<long long>(rejected));
  }
  if (queue_peak >= 0) {
    s += fmt("  %-30s %lld / %lld\n", "peak queue / active", static_cast<long long>(queue_peak),
             static_cast<long long>(active_peak));
  }
  return s;
}

json LoadReport::to_json() const {
  const LoadOptions& o = options;
  json errs = json::object();
  for (const auto& [k, n] : errors) errs[k] = n;
  return {{"options",
           {{"socket", o.socket},
            {"duration_s", o.duration_s},
            {"concurrency", o.concurrency},
            {"short_tokens", o.short_tokens},
            {"long_tokens", o.long_tokens},
            {"long_share", o.long_share},
            {"disconnect_share", o.disconnect_share},
            {"seed", o.seed},
            {"temperature", o.temperature}}},
          {"wall_s", wall_s},
          {"requests", requests},
          {"completed", completed},
          {"disconnected", disconnected},
          {"refused", refused},
          {"failed", failed},
          {"errors", errs},
          {"ttft_ms", percentiles_json(ttft_ms)},
          {"inter_token_ms", percentiles_json(inter_token_ms)},
          {"refusal_ms", percentiles_json(refusal_ms)},
          {"tokens", tokens},
          {"tokens_per_s", tokens_per_s},
          {"daemon",
           {{"pid", pid},
            {"pid_source", pid_source},
            {"peak_rss_bytes", peak_rss},
            {"rss_end_bytes", rss_end},
            {"rss_peak_run_bytes", rss_peak_run},
            {"memory_budget_bytes", memory_budget},
            {"memory_used_peak_bytes", memory_used_peak},
            {"admitted", admitted},
            {"queued", queued},
            {"rejected", rejected},
            {"queue_peak", queue_peak},
            {"active_peak", active_peak}}}};
}

}  // namespace momentkv::tools
