// momentkv load: drive a running momentkvd with concurrent streamed completions for a while and
// report what it did (tools/load_generator.h).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipc/unix_http_client.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/load_generator.h"

namespace momentkv::tools {

namespace {

// "90", "90s", "1500ms", "10m", "1h" -> seconds.
double parse_duration_s(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  const std::string unit = end ? end : "";
  double mult = 0;
  if (unit.empty() || unit == "s") {
    mult = 1;
  } else if (unit == "ms") {
    mult = 1e-3;
  } else if (unit == "m" || unit == "min") {
    mult = 60;
  } else if (unit == "h") {
    mult = 3600;
  }
  if (end == v.c_str() || mult == 0 || !(x > 0) || x * mult > 7 * 86400.0) {
    throw UsageError(flag + " expects a duration like 60s, 10m or 1500ms, got '" + v + "'");
  }
  return x * mult;
}

double to_share(const std::string& flag, const std::string& v) {
  const double x = ArgParser::to_double(flag, v);
  if (!(x >= 0 && x <= 1)) throw UsageError(flag + " expects a share in [0, 1], got '" + v + "'");
  return x;
}

}  // namespace

int cmd_load(int argc, char** argv) {
  ArgParser p("load",
              "Drive a running momentkvd with concurrent streamed completions (a mix of short and "
              "long generations, some hung up mid-stream) and report completions, errors by "
              "kind, TTFT and inter-token latency, tokens/s, and the daemon's peak RSS against "
              "its memory budget. Exit 1 when a request failed other than by a busy refusal.");
  LoadOptions o;
  o.socket = ipc::default_socket_path();
  bool as_json = false;
  p.add({"--socket"}, "PATH",
        "the daemon's socket (default $MOMENTKV_SOCKET or /run/momentkv/momentkvd.sock)",
        [&](const std::string& v) { o.socket = v; });
  p.add({"--duration"}, "TIME", "how long to send new requests (default 60s; e.g. 90s, 10m)",
        [&](const std::string& v) { o.duration_s = parse_duration_s("--duration", v); });
  p.add({"-c", "--concurrency"}, "N", "client loops, one request in flight each (default 8)",
        [&](const std::string& v) {
          o.concurrency = static_cast<int>(ArgParser::to_int("--concurrency", v, 1, 4096));
        });
  p.add({"--short-tokens"}, "N", "max_tokens of a short generation (default 16)",
        [&](const std::string& v) {
          o.short_tokens = static_cast<int>(ArgParser::to_int("--short-tokens", v, 1, 1 << 20));
        });
  p.add({"--long-tokens"}, "N", "max_tokens of a long generation (default 256)",
        [&](const std::string& v) {
          o.long_tokens = static_cast<int>(ArgParser::to_int("--long-tokens", v, 1, 1 << 20));
        });
  p.add({"--long-share"}, "X", "share of long generations, 0..1 (default 0.25)",
        [&](const std::string& v) { o.long_share = to_share("--long-share", v); });
  p.add({"--disconnect-share"}, "X",
        "share of requests hung up on at a random token, 0..1 (default 0.1)",
        [&](const std::string& v) { o.disconnect_share = to_share("--disconnect-share", v); });
  p.add({"--seed"}, "N", "seed of the request mix (default 1)", [&](const std::string& v) {
    o.seed = static_cast<uint64_t>(ArgParser::to_int("--seed", v, 0, INT64_MAX));
  });
  p.add({"--temp"}, "T", "temperature of every request (default 0.8)",
        [&](const std::string& v) { o.temperature = ArgParser::to_double("--temp", v); });
  p.add({"--pid"}, "PID",
        "the daemon's pid for its memory figures (default: the socket's peer, SO_PEERCRED; "
        "under socket activation that is systemd: give the pid)",
        [&](const std::string& v) {
          o.pid = static_cast<pid_t>(ArgParser::to_int("--pid", v, 1, INT32_MAX));
        });
  p.add({"--read-timeout"}, "TIME",
        "give up on a request when nothing arrives for this long (default 60s)",
        [&](const std::string& v) {
          o.read_timeout_ms = static_cast<int>(1000 * parse_duration_s("--read-timeout", v));
        });
  p.add({"--refusal-pause"}, "MS",
        "a client loop's pause after a refusal or a failed connect (default 20)",
        [&](const std::string& v) {
          o.refusal_pause_ms = static_cast<int>(ArgParser::to_int("--refusal-pause", v, 0, 60'000));
        });
  p.add_switch({"--json"}, "print the report as JSON", [&] { as_json = true; });
  if (!p.parse(argc, argv)) return 0;
  const LoadReport r = run_load(o);
  if (as_json) {
    std::printf("%s\n", r.to_json().dump(2).c_str());
  } else {
    std::fputs(r.text().c_str(), stdout);
  }
  return r.failed == 0 ? 0 : 1;
}

}  // namespace momentkv::tools
