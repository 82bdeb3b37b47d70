// RELIABILITY.md FZ-6 and FZ-8 against the real momentkvd (stories260K): every numeric field of
// a request with negative, 2^63, NaN, ±Inf, overflowing and wrong-typed values, wrong JSON types,
// 10^4-deep nesting, duplicate keys, invalid UTF-8, embedded NUL, an unknown endpoint and method,
// and a 100 MB prompt each get an error response, and the daemon answers the next valid request;
// every file of the §4.3 bad-GGUF corpus given as the model makes momentkvd exit 78 with a
// STATUS= naming the problem (systemd's RestartPreventExitStatus=78: no restart loop, SD-10).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ipc/unix_http_client.h"
#include "tests/support/daemon_process.h"
#include "tests/support/gguf_corpus.h"
#include "tests/support/sanitizers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

using nlohmann::json;

std::string model() {
  return test::model_path("stories260K/stories260K.gguf");
}

struct Case {
  std::string what, method, target, body;
};

std::vector<Case> semantic_cases() {
  std::vector<Case> cases;
  auto add = [&](const std::string& what, const std::string& body,
                 const std::string& target = "/v1/completions") {
    cases.push_back({what, "POST", target, body});
  };
  // Every numeric field, top level and under "compression", with every bad value.
  const std::vector<std::string> fields = {
      "max_tokens",       "temperature",   "top_p", "top_k", "min_p",
      "repeat_penalty",   "repeat_last_n", "seed",  "n",     "presence_penalty",
      "frequency_penalty"};
  const std::vector<std::string> values = {"-1",
                                           "-9223372036854775808",
                                           "9223372036854775808",
                                           "1e400",
                                           "-1e400",
                                           "NaN",
                                           "Infinity",
                                           "-Infinity",
                                           "\"1\"",
                                           "true",
                                           "[1]",
                                           "{\"a\":1}"};
  for (const auto& f : fields) {
    for (const auto& v : values) {
      // A seed is any unsigned 64-bit number: 2^63 is a valid one.
      if (f == "seed" && v == "9223372036854775808") continue;
      add(f + "=" + v, R"({"prompt":"Once",")" + f + "\":" + v + "}");
    }
  }
  for (const std::string f : {"alpha", "decode_budget"}) {
    for (const auto& v : values) {
      add("compression." + f + "=" + v,
          R"({"prompt":"Once","compression":{")" + f + "\":" + v + "}}");
    }
  }
  // Wrong JSON types for the other fields.
  add("prompt=number", R"({"prompt":7})");
  add("prompt=array", R"({"prompt":["a"]})");
  add("stream=string", R"({"prompt":"a","stream":"yes"})");
  add("stop=number", R"({"prompt":"a","stop":1})");
  add("model=object", R"({"prompt":"a","model":{}})");
  add("compression=string", R"({"prompt":"a","compression":"moment"})");
  add("body=array", "[1,2]");
  add("body=string", "\"prompt\"");
  add("messages=string", R"({"messages":"hi"})", "/v1/chat/completions");
  add("messages[0]=number", R"({"messages":[1]})", "/v1/chat/completions");
  add("content=object", R"({"messages":[{"role":"user","content":{}}]})", "/v1/chat/completions");
  // Nesting 10^4 deep: as the body, and as a field's value.
  add("nesting 1e4 (body)", std::string(10000, '[') + std::string(10000, ']'));
  add("nesting 1e4 (prompt)",
      R"({"prompt":)" + std::string(10000, '[') + std::string(10000, ']') + "}");
  add("nesting 1e4 (objects)", [] {
    std::string s = R"({"prompt":"a","compression":)";
    for (int i = 0; i < 10000; ++i) s += R"({"a":)";
    s += "1";
    s += std::string(10001, '}');
    return s;
  }());
  add("nesting unclosed to the body limit", std::string(1000000, '['));
  // Duplicate keys, top level and nested.
  add("duplicate prompt", R"({"prompt":"a","prompt":"b"})");
  add("duplicate max_tokens", R"({"prompt":"a","max_tokens":1,"max_tokens":4000000})");
  add("duplicate compression.alpha", R"({"prompt":"a","compression":{"alpha":0.1,"alpha":0.9}})");
  // Invalid UTF-8 (raw bytes, lone surrogates) and embedded NUL.
  add("invalid UTF-8 prompt", "{\"prompt\":\"\xff\xfe\"}");
  add("invalid UTF-8 key", "{\"\xc3\x28\":\"a\"}");
  add("overlong UTF-8", "{\"prompt\":\"\xc0\xaf\"}");
  add("lone surrogate", R"({"prompt":"\ud800"})");
  add("NUL in prompt", R"({"prompt":"a\u0000b"})");
  add("raw NUL in body", std::string("{\"prompt\":\"a\0b\"}", 16));
  add("NUL in stop", R"({"prompt":"a","stop":["\u0000"]})");
  add("NUL in chat content", R"({"messages":[{"role":"user","content":"a\u0000"}]})",
      "/v1/chat/completions");
  add("NUL in model", R"({"prompt":"a","model":"x\u0000"})");
  // Unknown endpoint and method.
  add("unknown endpoint", R"({"prompt":"a"})", "/v1/nothing");
  add("unknown endpoint (traversal)", R"({"prompt":"a"})", "/v1/../../etc/passwd");
  cases.push_back({"unknown method DELETE", "DELETE", "/v1/completions", ""});
  cases.push_back({"unknown method PUT", "PUT", "/v1/completions", R"({"prompt":"a"})"});
  cases.push_back({"GET a POST endpoint", "GET", "/v1/completions", ""});
  return cases;
}

json post(const std::string& sock, const std::string& body, int* status) {
  const auto r = ipc::unix_http(sock, "POST", "/v1/completions", body);
  *status = r.status;
  return json::parse(r.body, nullptr, false);
}

TEST(BadInput, SemanticCasesGetAnErrorAndTheNextRequestIsServed) {
  test::DaemonProcess d({"--model", model(), "--threads", "1"}, "fz6");
  ASSERT_TRUE(d.ready()) << d.log();
  int errors = 0, served_after = 0;
  std::map<int, int> by_status;
  const auto cases = semantic_cases();
  for (const Case& c : cases) {
    const auto r = ipc::unix_http(d.socket(), c.method, c.target, c.body);
    ++by_status[r.status];
    const json e = json::parse(r.body, nullptr, false);
    const bool is_error = r.status >= 400 && r.status < 500 && e.is_object() && e.contains("error");
    EXPECT_TRUE(is_error) << c.what << " -> " << r.status << " " << r.body.substr(0, 200);
    errors += is_error ? 1 : 0;
    int status = 0;
    const json ok = post(d.socket(), R"({"prompt":"Once","max_tokens":2})", &status);
    EXPECT_EQ(status, 200) << "after " << c.what << ": " << ok.dump();
    served_after += status == 200 ? 1 : 0;
  }
  std::string statuses;
  for (const auto& [s, n] : by_status) {
    statuses += (statuses.empty() ? "" : ", ") + std::to_string(n) + " x " + std::to_string(s);
  }
  EXPECT_EQ(d.wait(20), -1) << "the daemon exited";
  std::printf(
      "FIGURE FZ-6: %d of %zu semantic IPC cases answered with an error response (%s); "
      "the next valid request served after %d of them; 0 crashes\n",
      errors, cases.size(), statuses.c_str(), served_after);
}

// Sends `head` then `body_bytes` bytes of 'a' on a fresh connection (stopping when the daemon
// closes it) and returns what the daemon answered.
std::string send_huge(const std::string& sock, const std::string& head, size_t body_bytes,
                      size_t* sent) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  *sent = 0;
  (void)!send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  const std::string chunk(1 << 20, 'a');
  while (*sent < body_bytes) {
    const ssize_t n = send(fd, chunk.data(), std::min(chunk.size(), body_bytes - *sent),
                           MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      *sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The daemon stopped reading: its answer is probably there already.
      char c;
      if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0) break;
      usleep(1000);
      continue;
    }
    break;  // EPIPE / ECONNRESET: it closed after answering
  }
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[4096];
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<size_t>(n));
  close(fd);
  return reply;
}

TEST(BadInput, AHundredMegabytePromptIsRefusedAndServingGoesOn) {
  test::DaemonProcess d({"--model", model(), "--threads", "1"}, "fz6big");
  ASSERT_TRUE(d.ready()) << d.log();
  const size_t bytes = 100u << 20;
  for (const char* target : {"/v1/completions", "/v1/chat/completions"}) {
    const std::string head = std::string("POST ") + target +
                             " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                             "Content-Length: " +
                             std::to_string(bytes + 13) + "\r\n\r\n{\"prompt\":\"";
    size_t sent = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string reply = send_huge(d.socket(), head, bytes, &sent);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply.substr(0, 200);
    EXPECT_NE(reply.find("\"error\""), std::string::npos) << reply.substr(0, 400);
    int status = 0;
    const json ok = post(d.socket(), R"({"prompt":"Once","max_tokens":2})", &status);
    EXPECT_EQ(status, 200) << ok.dump();
    std::printf(
        "FIGURE FZ-6: 100 MB prompt to %s: %s after %.1f ms (%zu of %zu body bytes "
        "taken); next request %d\n",
        target, reply.substr(0, reply.find('\r')).c_str(), ms, sent, bytes, status);
  }
  EXPECT_EQ(d.wait(20), -1) << "the daemon exited";
}

// MB-4: a prompt longer than the context is refused at once (400 context_exceeded, before any
// memory is reserved or a token generated) and the next request is served.
TEST(BadInput, APromptLongerThanTheContextIsRefusedAtOnce) {
  test::DaemonProcess d({"--model", model(), "--threads", "1"}, "mb4");
  ASSERT_TRUE(d.ready()) << d.log();
  std::string prompt;
  for (int i = 0; i < 400; ++i) prompt += "Once upon a time there was a little girl. ";
  const std::string body = json{{"prompt", prompt}, {"max_tokens", 4}}.dump();
  double worst_ms = 0.0;
  std::string message;
  for (int i = 0; i < 20; ++i) {
    int status = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const json r = post(d.socket(), body, &status);
    worst_ms = std::max(
        worst_ms,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    EXPECT_EQ(status, 400) << r.dump();
    EXPECT_EQ(r["error"]["code"], "context_exceeded") << r.dump();
    message = r["error"].value("message", "");
  }
  int status = 0;
  const json ok = post(d.socket(), R"({"prompt":"Once","max_tokens":2})", &status);
  EXPECT_EQ(status, 200) << ok.dump();
  if (!test::kAddressSanitizer && !test::kThreadSanitizer) {
    EXPECT_LT(worst_ms, 50.0);
  }
  std::printf(
      "FIGURE MB-4: a %zu-byte prompt (%s): 20/20 refused with 400 context_exceeded, "
      "worst %.1f ms round trip; next request %d\n",
      prompt.size(), message.c_str(), worst_ms, status);
}

TEST(BadInput, EveryBadModelFileExits78WithAStatus) {
  test::TempDir dir;
  int files = 0, exited_78 = 0, with_status = 0;
  double worst_ms = 0;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> bad;
  test::gguf_corpus::all([&](const std::string& name, const std::vector<uint8_t>& bytes) {
    if (name.rfind("valid_", 0) != 0) bad.emplace_back(name, bytes);
  });
  for (const auto& [name, bytes] : bad) {
    const std::string path = dir.file(name + ".gguf");
    {
      std::ofstream f(path, std::ios::binary);
      f.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    }
    ++files;
    const auto t0 = std::chrono::steady_clock::now();
    test::DaemonProcess d({"--model", path, "--threads", "1"}, "fz8");
    EXPECT_FALSE(d.ready()) << name;
    const int code = d.wait(10000);
    worst_ms = std::max(
        worst_ms,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    EXPECT_EQ(code, 78) << name << ": " << d.log();
    exited_78 += code == 78 ? 1 : 0;
    bool status = false;
    for (const auto& m : d.notifications()) {
      status = status || m.find("STATUS=failed") != std::string::npos;
    }
    EXPECT_TRUE(status) << name << ": no STATUS=failed among the notifications";
    with_status += status ? 1 : 0;
  }
  std::printf(
      "FIGURE FZ-8: %d of %d corrupted model files (the §4.3 corpus) made momentkvd exit "
      "78, %d with STATUS=failed: ...; slowest exit %.0f ms after start\n",
      exited_78, files, with_status, worst_ms);
}

}  // namespace
}  // namespace momentkv
