// Client subcommands that talk to momentkvd over its socket: generate (streams), health, metrics.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <limits>

#include "ipc/unix_http_client.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace momentkv::tools {

using ipc::default_socket_path;
using ipc::unix_http;
using nlohmann::json;

namespace {

// Sends `req` (streamed or not) and prints the generated text as it arrives; `text` gets all of
// it and `last` the final event (with compression and timings) or the error. Returns the status.
int stream_request(const std::string& socket, const json& req, bool chat, std::string& text,
                   json& last) {
  const bool stream = req.value("stream", false);
  std::string pending;
  auto on_data = [&](const std::string& data) {
    if (!stream) return;
    pending.append(data);
    size_t end;
    while ((end = pending.find("\n\n")) != std::string::npos) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      const json j = json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) {
        last = j;
        continue;
      }
      const auto& c = j["choices"][0];
      const std::string piece = chat ? c["delta"].value("content", "") : c.value("text", "");
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      text += piece;
      if (j.contains("compression")) last = j;
    }
  };
  const auto r = unix_http(socket, "POST", chat ? "/v1/chat/completions" : "/v1/completions",
                           req.dump(), on_data);
  if (!stream) {
    last = json::parse(r.body, nullptr, false);
    if (last.is_discarded()) last = json{{"error", r.body}};
    if (r.status == 200) {
      const auto& c = last["choices"][0];
      text = chat ? c["message"].value("content", "") : c.value("text", "");
      std::fputs(text.c_str(), stdout);
    }
  }
  return r.status;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  ArgParser p("generate", "Generate through a running momentkvd (streams the text to stdout).");
  std::string socket = default_socket_path(), prompt;
  json req = {{"stream", true}};
  bool chat = false;
  p.add({"--socket"}, "PATH",
        "the daemon's socket (default $MOMENTKV_SOCKET or "
        "/run/momentkv/momentkvd.sock)",
        [&](const std::string& v) { socket = v; });
  p.add({"-n", "--n-predict"}, "N", "max tokens",
        [&](const std::string& v) { req["max_tokens"] = ArgParser::to_int("-n", v, 0, 1 << 24); });
  p.add({"--temp"}, "T", "temperature",
        [&](const std::string& v) { req["temperature"] = ArgParser::to_double("--temp", v); });
  p.add({"--seed"}, "N", "seed", [&](const std::string& v) {
    req["seed"] = ArgParser::to_int("--seed", v, 0, std::numeric_limits<int64_t>::max());
  });
  p.add({"--policy"}, "NAME", "compression policy for this request",
        [&](const std::string& v) { req["compression"]["policy"] = v; });
  p.add({"--decode-budget"}, "N", "decode budget for this request", [&](const std::string& v) {
    req["compression"]["decode_budget"] = ArgParser::to_int("--decode-budget", v, 1, 1 << 24);
  });
  p.add_switch({"--chat"}, "send the prompt as one user message to /v1/chat/completions",
               [&] { chat = true; });
  p.add_switch({"--no-stream"}, "wait for the whole response", [&] { req["stream"] = false; });
  p.positional("PROMPT", "the prompt", [&](const std::string& v) { prompt = v; });
  if (!p.parse(argc, argv)) return 0;
  if (prompt.empty()) throw UsageError("give a PROMPT");
  if (chat) {
    req["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
  } else {
    req["prompt"] = prompt;
  }
  json last;
  std::string text;
  const int status = stream_request(socket, req, chat, text, last);
  std::fputc('\n', stdout);
  if (status != 200 || last.contains("error")) {
    std::fprintf(stderr, "momentkv generate: HTTP %d: %s\n", status, last.dump().c_str());
    return 1;
  }
  if (last.contains("compression")) {
    std::fprintf(stderr, "compression: %s\ntimings: %s\n", last["compression"].dump().c_str(),
                 last["timings"].dump().c_str());
  }
  return 0;
}

int cmd_chat(int argc, char** argv) {
  ArgParser p("chat", "Chat with a running momentkvd: one line per turn, the conversation kept.");
  std::string socket = default_socket_path(), system;
  json base = {{"stream", true}};
  p.add({"--socket"}, "PATH", "the daemon's socket", [&](const std::string& v) { socket = v; });
  p.add({"--system"}, "TEXT", "a system message", [&](const std::string& v) { system = v; });
  p.add({"-n", "--n-predict"}, "N", "max tokens per reply",
        [&](const std::string& v) { base["max_tokens"] = ArgParser::to_int("-n", v, 1, 1 << 24); });
  p.add({"--temp"}, "T", "temperature",
        [&](const std::string& v) { base["temperature"] = ArgParser::to_double("--temp", v); });
  if (!p.parse(argc, argv)) return 0;
  json messages = json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  std::string line;
  while (true) {
    std::fputs("> ", stderr);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    json req = base;
    req["messages"] = messages;
    std::string reply;
    json last;
    const int status = stream_request(socket, req, true, reply, last);
    std::fputc('\n', stdout);
    if (status != 200 || last.contains("error")) {
      std::fprintf(stderr, "momentkv chat: HTTP %d: %s\n", status, last.dump().c_str());
      messages.erase(messages.end() - 1);
      continue;
    }
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
  return 0;
}

int cmd_health(int argc, char** argv) {
  ArgParser p("health", "Ask momentkvd whether it is ready (exit 0 when it is).");
  std::string socket = default_socket_path();
  p.add({"--socket"}, "PATH", "the daemon's socket", [&](const std::string& v) { socket = v; });
  if (!p.parse(argc, argv)) return 0;
  const auto r = unix_http(socket, "GET", "/health", "");
  std::printf("%s\n", r.body.c_str());
  return r.status == 200 ? 0 : 1;
}

int cmd_metrics(int argc, char** argv) {
  ArgParser p("metrics", "Print momentkvd's Prometheus metrics.");
  std::string socket = default_socket_path();
  p.add({"--socket"}, "PATH", "the daemon's socket", [&](const std::string& v) { socket = v; });
  if (!p.parse(argc, argv)) return 0;
  const auto r = unix_http(socket, "GET", "/metrics", "");
  std::fputs(r.body.c_str(), stdout);
  return r.status == 200 ? 0 : 1;
}

}  // namespace momentkv::tools
