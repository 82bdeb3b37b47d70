// momentkvd end to end: the real binary on a temporary socket serving stories260K. Readiness via
// sd_notify, completions (plain and streamed) equal to `momentkv run`, chat, concurrent clients,
// bad requests answered without harm, reload, and a clean SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "ipc/unix_http_client.h"
#include "tests/support/daemon_process.h"
#include "tests/support/sanitizers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

using nlohmann::json;

std::string model() {
  return test::model_path("stories260K/stories260K.gguf");
}

json post(const std::string& sock, const std::string& target, const json& body,
          int* status = nullptr) {
  const auto r = ipc::unix_http(sock, "POST", target, body.dump());
  if (status) *status = r.status;
  return json::parse(r.body, nullptr, false);
}

// Text of `momentkv run` for the same greedy request (prompt not echoed).
std::string run_text(const std::string& prompt, int n) {
  const auto r =
      test::run_process({test::momentkv_binary(), "run", "-m", model(), "-t", "1", "-p", prompt,
                         "-n", std::to_string(n), "--temp", "0", "--no-display-prompt"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string out = r.out;
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// The streamed text of an SSE response body, and its final event.
std::string sse_text(const std::string& body, bool chat, json* final_event) {
  std::string text;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    const json j = json::parse(data);
    const auto& c = j["choices"][0];
    text += chat ? c["delta"].value("content", "") : c.value("text", "");
    if (final_event && !c["finish_reason"].is_null()) *final_event = j;
  }
  return text;
}

TEST(Daemon, ServesCompletionsEqualToRun) {
  test::DaemonProcess d({"--model", model(), "--threads", "1"}, "serve");
  ASSERT_TRUE(d.ready()) << d.log();
  EXPECT_EQ(ipc::unix_http(d.socket(), "GET", "/health", "").status, 200);
  const std::string expected = run_text("Once upon a time", 48);
  int status = 0;
  const json r =
      post(d.socket(), "/v1/completions",
           {{"prompt", "Once upon a time"}, {"max_tokens", 48}, {"temperature", 0}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["choices"][0]["text"], expected);
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["usage"]["completion_tokens"], 48);
  EXPECT_EQ(r["compression"]["policy"], "moment");
  EXPECT_EQ(r["compression"]["context_altered"], false);
  EXPECT_TRUE(r["timings"].contains("ttft_ms"));
  // Streamed: the same text, then a final event with compression and [DONE].
  const auto s = ipc::unix_http(
      d.socket(), "POST", "/v1/completions",
      json{{"prompt", "Once upon a time"}, {"max_tokens", 48}, {"temperature", 0}, {"stream", true}}
          .dump());
  ASSERT_EQ(s.status, 200);
  json final_event;
  EXPECT_EQ(sse_text(s.body, false, &final_event), expected);
  EXPECT_EQ(final_event["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(final_event.contains("compression"));
  EXPECT_NE(s.body.find("data: [DONE]\n\n"), std::string::npos);
  // A small decode budget per request alters the context and says so.
  const json c = post(d.socket(), "/v1/completions",
                      {{"prompt", "Once upon a time"},
                       {"max_tokens", 100},
                       {"temperature", 0},
                       {"compression", {{"policy", "moment"}, {"decode_budget", 16}}}},
                      &status);
  ASSERT_EQ(status, 200) << c.dump();
  EXPECT_EQ(c["compression"]["decode_budget"], 16);
  EXPECT_EQ(c["compression"]["context_altered"], true);
  EXPECT_GT(c["compression"]["evicted"].get<int>(), 0);
  // Chat, streamed.
  const auto chat =
      ipc::unix_http(d.socket(), "POST", "/v1/chat/completions",
                     json{{"messages", {{{"role", "user"}, {"content", "Tom had a red ball."}}}},
                          {"max_tokens", 16},
                          {"temperature", 0},
                          {"stream", true}}
                         .dump());
  ASSERT_EQ(chat.status, 200);
  EXPECT_FALSE(sse_text(chat.body, true, nullptr).empty());
  const auto models = json::parse(ipc::unix_http(d.socket(), "GET", "/v1/models", "").body);
  EXPECT_EQ(models["data"][0]["meta"]["n_layer"], 5);
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(15000), 0) << d.log();
  EXPECT_TRUE(d.wait_notification("STOPPING=1", 1000));
}

TEST(Daemon, ConcurrentClientsGetTheirSoloOutputs) {
  test::DaemonProcess d({"--model", model(), "--threads", "1"}, "conc");
  ASSERT_TRUE(d.ready()) << d.log();
  const std::vector<std::string> prompts = {"Once upon a time",       "Tom had a red ball.",
                                            "The cat sat on the",     "Lily and her mom went to",
                                            "One day, a little bird", "Ben liked to run",
                                            "Sue found a big box.",   "The sun was hot."};
  std::vector<std::string> solo;
  for (const auto& p : prompts) {
    solo.push_back(
        post(d.socket(), "/v1/completions",
             {{"prompt", p}, {"max_tokens", 40}, {"temperature", 0}})["choices"][0]["text"]);
  }
  std::vector<std::string> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      const auto r = ipc::unix_http(d.socket(), "POST", "/v1/completions",
                                    json{{"prompt", prompts[i]},
                                         {"max_tokens", 40},
                                         {"temperature", 0},
                                         {"stream", i % 2 == 0}}
                                        .dump());
      got[i] = i % 2 == 0 ? sse_text(r.body, false, nullptr)
                          : json::parse(r.body)["choices"][0]["text"].get<std::string>();
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], solo[i]) << prompts[i];
  const std::string metrics = ipc::unix_http(d.socket(), "GET", "/metrics", "").body;
  EXPECT_NE(metrics.find("momentkv_kv_reserved_bytes 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("momentkv_requests_total{outcome=\"ok\"} 16"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("momentkv_time_to_first_token_seconds_count 16\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("momentkv_inter_token_seconds_count 624\n"), std::string::npos)
      << metrics;  // 16 generations x 39 gaps between 40 tokens
}

TEST(Daemon, BadRequestsAreAnsweredAndServingGoesOn) {
  test::DaemonProcess d({"--model", model(), "--threads", "1"}, "bad");
  ASSERT_TRUE(d.ready()) << d.log();
  struct Case {
    std::string target, body;
    int status;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/completions", "{not json", 400},
           {"/v1/completions", R"({"prompt":"a","max_tokens":-5})", 400},
           {"/v1/completions", R"({"prompt":"a","temperature":"hot"})", 400},
           {"/v1/completions", R"({"prompt":"a","wat":1})", 400},
           {"/v1/completions", R"({"prompt":"a","max_tokens":1e300})", 400},
           {"/v1/chat/completions", R"({"messages":[]})", 400},
           {"/v1/nothing", "{}", 404},
       }) {
    const auto r = ipc::unix_http(d.socket(), "POST", c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    const json e = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(e.contains("error")) << r.body;
    // The next valid request still succeeds.
    int status = 0;
    const json ok =
        post(d.socket(), "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 4}}, &status);
    EXPECT_EQ(status, 200) << "after " << c.body << ": " << ok.dump();
  }
  // A request that could never fit the memory budget is refused, not queued forever.
  int status = 0;
  const json r =
      post(d.socket(), "/v1/completions",
           {{"prompt", "Once"}, {"max_tokens", 8}, {"compression", {{"decode_budget", 60000}}}},
           &status);
  EXPECT_TRUE(status == 200 || status == 400) << r.dump();
}

int open_stream(const std::string& sock, int max_tokens);
std::string read_all(int fd);

TEST(Daemon, ReloadKeepsServingAndAppliesValidConfigs) {
  const std::string cfg = ::testing::TempDir() + "/mkvd-reload.toml";
  {
    std::ofstream f(cfg);
    f << "[model]\npath = \"" << model() << "\"\n[kv]\npolicy = \"moment\"\n";
  }
  // No --model flag: it would override model.path and pin the model across reloads.
  test::DaemonProcess d({"--config", cfg, "--threads", "1"}, "reload");
  ASSERT_TRUE(d.ready()) << d.log();
  const json body = {{"prompt", "Once"}, {"max_tokens", 4}};
  EXPECT_EQ(post(d.socket(), "/v1/completions", body)["compression"]["policy"], "moment");
  {
    std::ofstream f(cfg);
    f << "[model]\npath = \"" << model() << "\"\n[kv]\npolicy = \"lru\"\n";  // invalid
  }
  d.signal(SIGHUP);
  EXPECT_TRUE(d.wait_notification("RELOADING=1", 5000));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(post(d.socket(), "/v1/completions", body)["compression"]["policy"], "moment");
  EXPECT_NE(d.log().find("reload failed"), std::string::npos) << d.log();
  {
    std::ofstream f(cfg);
    f << "[model]\npath = \"" << model() << "\"\n[kv]\npolicy = \"streaming\"\n";
  }
  d.signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(post(d.socket(), "/v1/completions", body)["compression"]["policy"], "streaming");
  // A new model.path: a generation in flight finishes on the old model, later requests run on
  // the new one, and the socket never closes.
  const int fd = open_stream(d.socket(), 1500);
  {
    std::ofstream f(cfg);
    f << "[model]\npath = \"" << test::model_path("stories260K-pad256/stories260K-pad256-F32.gguf")
      << "\"\n";
  }
  d.signal(SIGHUP);
  const std::string rest = read_all(fd);
  close(fd);
  EXPECT_NE(rest.find("data: [DONE]"), std::string::npos) << rest.substr(0, 200);
  bool switched = false;
  for (int i = 0; i < 100 && !switched; ++i) {
    const json m = json::parse(ipc::unix_http(d.socket(), "GET", "/v1/models", "").body);
    switched = m["data"][0]["meta"]["n_embd"] == 256;
    if (!switched) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(switched) << d.log();
  int status = 0;
  const json r =
      post(d.socket(), "/v1/completions",
           {{"prompt", "Once upon a time"}, {"max_tokens", 16}, {"temperature", 0}}, &status);
  EXPECT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["choices"][0]["text"].get<std::string>().rfind(", there was a little girl", 0), 0u)
      << r.dump();  // pad256-F32 is the same trained model
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(15000), 0);
}

// Opens a streamed completion on a raw socket (Connection: close, so read_all ends with the
// stream), reads its first bytes and returns the socket.
int open_stream(const std::string& sock, int max_tokens) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const std::string body = json{{"prompt", "Once upon a time"},
                                {"max_tokens", max_tokens},
                                {"stream", true},
                                {"compression", {{"policy", "moment"}, {"decode_budget", 64}}}}
                               .dump();
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  EXPECT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  char buf[512];
  EXPECT_GT(recv(fd, buf, sizeof buf, 0), 0);  // the stream has started
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(Daemon, ClientDisconnectCancelsAndFreesItsReservation) {
  test::DaemonProcess d({"--model", model(), "--threads", "1"}, "disc");
  ASSERT_TRUE(d.ready()) << d.log();
  const int fd = open_stream(d.socket(), 4096);
  close(fd);
  std::string metrics;
  for (int i = 0; i < 200; ++i) {
    metrics = ipc::unix_http(d.socket(), "GET", "/metrics", "").body;
    if (metrics.find("momentkv_requests_total{outcome=\"cancelled\"} 1") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(metrics.find("momentkv_requests_total{outcome=\"cancelled\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("momentkv_kv_reserved_bytes 0\n"), std::string::npos) << metrics;
  int status = 0;
  post(d.socket(), "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 4}}, &status);
  EXPECT_EQ(status, 200);
}

TEST(Daemon, SigtermWithStreamsInFlightEndsEveryStream) {
  test::DaemonProcess d({"--model", model(), "--threads", "1"}, "term");
  ASSERT_TRUE(d.ready()) << d.log();
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) fds.push_back(open_stream(d.socket(), 4096));
  d.signal(SIGTERM);
  for (int fd : fds) {
    const std::string rest = read_all(fd);  // the server ends each stream, then closes
    close(fd);
    const bool finished = rest.find("data: [DONE]") != std::string::npos ||
                          rest.find("\"error\"") != std::string::npos;
    EXPECT_TRUE(finished) << rest.substr(rest.size() > 300 ? rest.size() - 300 : 0);
    EXPECT_NE(rest.find("0\r\n\r\n"), std::string::npos) << "no terminating chunk";
  }
  EXPECT_EQ(d.wait(20000), 0) << d.log();
}

TEST(Daemon, QueueFullAndBudgetAdmission) {
  // A 64 MiB budget holds the model and one generation with a 40000-token decode region
  // (~39 MiB of KV, bookkeeping and scratch), not two; one more may wait, a third is refused.
  // A sanitizer's runtime is resident and counted: it gets that much more.
  const std::string cfg = ::testing::TempDir() + "/mkvd-queue.toml";
  {
    std::ofstream f(cfg);
    f << "[memory]\nbudget = \"" << 64 + (test::kSanitizerRssSlack >> 20)
      << "MiB\"\n[server]\nqueue_length = 1\n";
  }
  test::DaemonProcess d({"--config", cfg, "--model", model(), "--threads", "1"}, "queue");
  ASSERT_TRUE(d.ready()) << d.log();
  const json big = {{"prompt", "Once upon a time"},
                    {"max_tokens", 2000},
                    {"temperature", 0},
                    {"compression", {{"policy", "moment"}, {"decode_budget", 40000}}}};
  std::vector<int> status(3, 0);
  std::vector<json> body(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      const auto r = ipc::unix_http(d.socket(), "POST", "/v1/completions", big.dump());
      status[static_cast<size_t>(i)] = r.status;
      body[static_cast<size_t>(i)] = json::parse(r.body, nullptr, false);
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0, full = 0;
  for (int i = 0; i < 3; ++i) {
    if (status[static_cast<size_t>(i)] == 200) ++ok;
    if (status[static_cast<size_t>(i)] == 503) {
      ++full;
      EXPECT_EQ(body[static_cast<size_t>(i)]["error"]["code"], "queue_full");
    }
  }
  EXPECT_EQ(ok, 2) << status[0] << " " << status[1] << " " << status[2] << " " << body[0].dump()
                   << body[1].dump() << body[2].dump() << d.log();
  EXPECT_EQ(full, 1);
  // One that could never fit is refused at once.
  int st = 0;
  const json r = post(d.socket(), "/v1/completions",
                      {{"prompt", "Once"},
                       {"max_tokens", 8},
                       {"compression", {{"policy", "full"}, {"decode_budget", 65536}}}},
                      &st);
  EXPECT_TRUE(st == 200 || (st == 400 && r["error"]["code"] == "budget_exceeded")) << r.dump();
  const std::string metrics = ipc::unix_http(d.socket(), "GET", "/metrics", "").body;
  EXPECT_NE(metrics.find("momentkv_kv_reserved_bytes 0\n"), std::string::npos) << metrics;
  // The next request that fits is served (RELIABILITY.md MB-5).
  const json next =
      post(d.socket(), "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 4}}, &st);
  EXPECT_EQ(st, 200) << next.dump();
}

TEST(Daemon, SocketActivation) {
  const std::string dir = ::testing::TempDir() + "/mkvd-activate";
  std::filesystem::create_directories(dir);
  const std::string sock = dir + "/a.sock";
  std::filesystem::remove(sock);
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl("/usr/bin/systemd-socket-activate", "systemd-socket-activate", "-l", sock.c_str(),
          test::momentkvd_binary().c_str(), "--model", model().c_str(), "--socket",
          (dir + "/unused.sock").c_str(), "--threads", "1", static_cast<char*>(nullptr));
    _exit(127);
  }
  // The socket exists before the daemon runs; the first connection starts it.
  bool listening = false;
  for (int i = 0; i < 200 && !listening; ++i) {
    listening = std::filesystem::exists(sock);
    if (!listening) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(listening);
  int st = 0;
  const json r = post(sock, "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 4}}, &st);
  EXPECT_EQ(st, 200) << r.dump();
  EXPECT_FALSE(std::filesystem::exists(dir + "/unused.sock")) << "bound its own socket";
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  std::filesystem::remove_all(dir);
}

TEST(Daemon, BadConfigOrModelExits78) {
  auto r = test::run_process({test::momentkvd_binary(), "--model", "/nonexistent.gguf", "--socket",
                              "/tmp/mkvd-never.sock"});
  EXPECT_EQ(r.exit_code, 78) << r.err;
  EXPECT_NE(r.err.find("/nonexistent.gguf"), std::string::npos);
  const std::string cfg = ::testing::TempDir() + "/mkvd-bad.toml";
  {
    std::ofstream f(cfg);
    f << "[kv]\nalpha = 7\n";
  }
  r = test::run_process({test::momentkvd_binary(), "--check-config", cfg});
  EXPECT_EQ(r.exit_code, 78);
  EXPECT_NE(r.err.find("kv.alpha"), std::string::npos) << r.err;
  r = test::run_process({test::momentkvd_binary(), "--check-config",
                         std::string(MOMENTKV_SOURCE_DIR) + "/configs/momentkvd.toml"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// backend = "cuda" without a GPU (CI), or in a build without CUDA: exit 78 saying which, rather
// than serving on another backend than the one asked for.
TEST(Daemon, CudaBackendWithoutAGpuIsAClearErrorAtStartUp) {
  const std::string cfg = ::testing::TempDir() + "/mkvd-cuda.toml";
  {
    std::ofstream f(cfg);
    f << "[model]\npath = \"" << model() << "\"\nbackend = \"cuda\"\n[server]\nsocket = "
      << "\"/tmp/mkvd-cuda-never.sock\"\n[telemetry]\nenabled = false\n";
  }
  const auto r = test::run_process({test::momentkvd_binary(), "--config", cfg});
  EXPECT_EQ(r.exit_code, 78) << r.err;
  EXPECT_NE(r.err.find("backend = \"cuda\""), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.find("no CUDA device") != std::string::npos ||
              r.err.find("built without CUDA") != std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace momentkv
