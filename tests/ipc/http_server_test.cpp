// HttpServer over a real Unix socket, driven by a small blocking POSIX client: round trips,
// keep-alive and pipelining, every limit (413, 431, 400, 503, 403, idle timeout, slow reader),
// streaming, disconnects, the socket file's life cycle, and after each bad case a good request.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/util/error.h"
#include "ipc/http_server.h"
#include "tests/support/temp_dir.h"

namespace momentkv::ipc {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- a blocking HTTP/1.1 client over AF_UNIX ----

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::vector<std::string> chunks;  // for chunked responses
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  // The "code" of a JSON error body, or "" when the body is not one.
  std::string error_code() const {
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("error") || !j["error"].contains("code")) return "";
    return j["error"]["code"].get<std::string>();
  }
};

sockaddr_un address_of(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

class Client {
 public:
  explicit Client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_un addr = address_of(path);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      connect_errno_ = errno;
      close();
    }
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  int connect_errno() const { return connect_errno_; }
  int fd() const { return fd_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One response (100 Continue is skipped unless `keep_interim`); nullopt on EOF or timeout.
  std::optional<Response> read_response(std::chrono::milliseconds timeout = 3000ms,
                                        bool keep_interim = false) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      size_t end;
      while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
        if (!fill(deadline)) return std::nullopt;
      }
      Response r;
      std::string head = buf_.substr(0, end + 2);
      buf_.erase(0, end + 4);
      size_t pos = head.find("\r\n");
      const std::string status_line = head.substr(0, pos);
      if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return std::nullopt;
      r.status = std::stoi(status_line.substr(9, 3));
      pos += 2;
      while (pos < head.size()) {
        const size_t eol = head.find("\r\n", pos);
        const std::string line = head.substr(pos, eol - pos);
        pos = eol + 2;
        const size_t colon = line.find(':');
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      if (r.status == 100 && !keep_interim) continue;
      if (r.status == 100) return r;
      if (r.header("transfer-encoding") == "chunked") {
        for (;;) {
          size_t eol;
          while ((eol = buf_.find("\r\n")) == std::string::npos) {
            if (!fill(deadline)) return std::nullopt;
          }
          const size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
          while (buf_.size() < eol + 2 + size + 2) {
            if (!fill(deadline)) return std::nullopt;
          }
          if (size == 0) {
            buf_.erase(0, eol + 4);
            return r;
          }
          r.chunks.push_back(buf_.substr(eol + 2, size));
          r.body += r.chunks.back();
          buf_.erase(0, eol + 2 + size + 2);
        }
      }
      const std::string length = r.header("content-length");
      if (!length.empty()) {
        const size_t n = std::stoul(length);
        while (buf_.size() < n) {
          if (!fill(deadline)) return std::nullopt;
        }
        r.body = buf_.substr(0, n);
        buf_.erase(0, n);
        return r;
      }
      while (fill(deadline)) {
      }
      r.body = std::move(buf_);
      buf_.clear();
      return r;
    }
  }

  // True if the server closes the connection (EOF or reset) within `timeout`.
  bool wait_closed(std::chrono::milliseconds timeout = 3000ms) {
    const auto deadline = Clock::now() + timeout;
    while (fill(deadline)) buf_.clear();
    return closed_;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  // Reads more into buf_; false on EOF, error or the deadline.
  bool fill(Clock::time_point deadline) {
    if (fd_ < 0) return false;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  int connect_errno_ = 0;
  bool closed_ = false;
  std::string buf_;
};

std::string get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
}

std::string post(const std::string& target, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + target +
         " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra_headers + "\r\n" + body;
}

// ---- the server under test ----

// Threads that handlers start; joined at scope exit.
class Workers {
 public:
  ~Workers() { join(); }
  void spawn(std::function<void()> fn) {
    std::lock_guard lock(mutex_);
    threads_.emplace_back(std::move(fn));
  }
  void join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

 private:
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

// Echoes "METHOD TARGET BODY" (and x-test), and serves the streaming cases the tests need.
struct TestHandler {
  Workers* workers;
  std::function<void(std::shared_ptr<ResponseWriter>)> on_hold;  // for /hold

  void operator()(HttpRequest req, std::shared_ptr<ResponseWriter> w) const {
    if (req.target.rfind("/stream", 0) == 0) {
      workers->spawn([w] {
        w->begin_stream(200, "text/plain");
        for (int i = 0; i < 100; ++i) w->write_chunk("chunk " + std::to_string(i) + "\n");
        w->end_stream();
      });
    } else if (req.target == "/hold") {
      w->begin_stream(200, "text/event-stream");
      w->write_chunk("first");
      on_hold(w);
    } else if (req.target == "/drop") {
      // the writer is dropped without a response
    } else if (req.target == "/throw") {
      throw std::runtime_error("handler \"exploded\"");
    } else if (req.target == "/peer") {
      w->send(200, "text/plain",
              std::to_string(req.peer.uid) + " " + std::to_string(req.peer.gid) + " " +
                  std::to_string(req.peer.pid));
    } else {
      std::string body = req.method + " " + req.target + " " + req.body;
      if (auto it = req.headers.find("x-test"); it != req.headers.end()) {
        body += " x-test=" + it->second;
      }
      w->send(200, "text/plain", body);
    }
  }
};

ServerOptions quick_options() {
  ServerOptions o;
  o.limits.idle_timeout = 2000ms;
  o.n_threads = 2;
  return o;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = quick_options()) {
    options.socket_path = path_;
    TestHandler h{&workers_, [this](std::shared_ptr<ResponseWriter> w) {
                    std::lock_guard lock(held_mutex_);
                    held_.push_back(std::move(w));
                    held_cv_.notify_all();
                  }};
    server_ = std::make_unique<HttpServer>(std::move(options), h);
    server_->start();
  }

  // The writer of the n-th /hold request (0-based), waiting for it up to 3 s.
  std::shared_ptr<ResponseWriter> held(size_t n) {
    std::unique_lock lock(held_mutex_);
    held_cv_.wait_for(lock, 3s, [&] { return held_.size() > n; });
    return held_.size() > n ? held_[n] : nullptr;
  }

  // Waits up to 3 s for the server's connection count to reach `n`.
  bool wait_connections(int n) {
    const auto deadline = Clock::now() + 3s;
    while (server_->connections() != n && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    return server_->connections() == n;
  }

  // A fresh connection still gets a normal answer.
  void expect_still_serving() {
    Client c(path_);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(post("/echo", "still")));
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "POST /echo still");
  }

  void TearDown() override {
    if (server_) server_->stop();
    workers_.join();
  }

  test::TempDir dir_{"momentkv-ipc"};
  std::string path_ = dir_.file("api.sock");
  Workers workers_;
  std::mutex held_mutex_;
  std::condition_variable held_cv_;
  std::vector<std::shared_ptr<ResponseWriter>> held_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, GetAndPostRoundTrip) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(get("/hello?x=1")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /hello?x=1 ");
  EXPECT_EQ(r->header("content-type"), "text/plain");
  EXPECT_EQ(r->header("content-length"), "15");

  Client d(path_);
  ASSERT_TRUE(d.send(post("/v1/completions", "{\"prompt\":\"hi\"}", "X-Test: Yes\r\n")));
  r = d.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /v1/completions {\"prompt\":\"hi\"} x-test=Yes");
}

TEST_F(HttpServerTest, PeerCredentialsReachTheHandler) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.send(get("/peer")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, std::to_string(::getuid()) + " " + std::to_string(::getgid()) + " " +
                         std::to_string(::getpid()));
}

TEST_F(HttpServerTest, KeepAliveAndPipelinedRequestsAnswerInOrder) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.send(get("/one")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header("connection"), "keep-alive");
  ASSERT_TRUE(c.send(post("/two", "b")));
  r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "POST /two b");
  EXPECT_EQ(server_->connections(), 1);

  std::string many;
  for (int i = 0; i < 20; ++i) many += post("/p" + std::to_string(i), std::to_string(i));
  ASSERT_TRUE(c.send(many));
  for (int i = 0; i < 20; ++i) {
    r = c.read_response();
    ASSERT_TRUE(r.has_value()) << i;
    EXPECT_EQ(r->body, "POST /p" + std::to_string(i) + " " + std::to_string(i));
  }
  // Connection: close is honoured.
  ASSERT_TRUE(c.send(get("/last", "Connection: close\r\n")));
  r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, OversizedBodyGets413) {
  auto o = quick_options();
  o.limits.max_body_bytes = 1024;
  start(o);
  {
    Client c(path_);
    ASSERT_TRUE(c.send(post("/echo", std::string(1024, 'a'))));  // the cap itself is fine
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
  }
  Client c(path_);
  ASSERT_TRUE(c.send(post("/echo", std::string(1025, 'a'))));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->error_code(), "payload_too_large");
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_TRUE(c.wait_closed());
  expect_still_serving();
}

TEST_F(HttpServerTest, ChunkedOversizedBodyGets413) {
  auto o = quick_options();
  o.limits.max_body_bytes = 1024;
  start(o);
  Client c(path_);
  std::string req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) req += "200\r\n" + std::string(512, 'b') + "\r\n";
  ASSERT_TRUE(c.send(req + "0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  expect_still_serving();
}

TEST_F(HttpServerTest, OversizedHeadersGet431) {
  auto o = quick_options();
  o.limits.max_header_bytes = 1024;
  start(o);
  Client c(path_);
  ASSERT_TRUE(c.send(get("/echo", "X-Big: " + std::string(2000, 'h') + "\r\n")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->error_code(), "headers_too_large");
  EXPECT_TRUE(c.wait_closed());

  // An endless header without a delimiter is cut off the same way.
  Client d(path_);
  ASSERT_TRUE(d.send("GET /" + std::string(4096, 'x')));
  r = d.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 431);
  expect_still_serving();
}

TEST_F(HttpServerTest, MalformedRequestsGet400) {
  start();
  for (const std::string bad :
       {"NOT HTTP AT ALL\r\n\r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: xyz\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    Client c(path_);
    ASSERT_TRUE(c.send(bad));
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value()) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_EQ(r->error_code(), "bad_request") << bad;
    EXPECT_TRUE(c.wait_closed()) << bad;
  }
  expect_still_serving();
}

TEST_F(HttpServerTest, ConnectionsOverTheLimitGet503) {
  auto o = quick_options();
  o.limits.max_connections = 2;
  start(o);
  auto a = std::make_unique<Client>(path_);
  Client b(path_);
  ASSERT_TRUE(wait_connections(2));
  Client c(path_);
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->error_code(), "too_many_connections");
  EXPECT_TRUE(c.wait_closed());
  EXPECT_EQ(server_->connections(), 2);

  a.reset();
  ASSERT_TRUE(wait_connections(1));
  expect_still_serving();
}

TEST_F(HttpServerTest, PeerOutsideTheAllowListGets403) {
  auto o = quick_options();
  o.allowed_uids = {::getuid() + 1};
  o.allowed_gids = {::getgid() + 1};
  start(o);
  Client c(path_);
  ASSERT_TRUE(c.send(get("/echo")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->error_code(), "forbidden");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, PeerOnTheAllowListIsServed) {
  auto o = quick_options();
  o.allowed_uids = {::getuid() + 1};
  o.allowed_gids = {::getgid()};  // either list may admit
  start(o);
  expect_still_serving();
}

TEST_F(HttpServerTest, ChunkedStreamOfHundredChunks) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.send(get("/stream")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("transfer-encoding"), "chunked");
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "chunk " + std::to_string(i) + "\n";
  EXPECT_EQ(r->body, expected);
  ASSERT_EQ(r->chunks.size(), 100u);  // one chunk per write_chunk
  EXPECT_EQ(r->chunks[42], "chunk 42\n");
  // The connection is reusable after the stream.
  ASSERT_TRUE(c.send(get("/after")));
  r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "GET /after ");
}

TEST_F(HttpServerTest, SlowReaderIsCutOff) {
  auto o = quick_options();
  o.limits.max_output_buffer = 256 << 10;
  struct Outcome {
    size_t accepted_bytes = 0;
    bool refused = false;
    bool cancelled = false;
    std::chrono::milliseconds took{0};
  };
  std::promise<Outcome> outcome;
  o.socket_path = path_;
  server_ =
      std::make_unique<HttpServer>(o, [&](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
        if (req.target != "/big") {
          w->send(200, "text/plain", req.method + " " + req.target + " " + req.body);
          return;
        }
        workers_.spawn([&, w] {
          const auto t0 = Clock::now();
          Outcome out;
          w->begin_stream(200, "application/octet-stream");
          const std::string chunk(16 << 10, 'z');
          for (size_t sent = 0; sent < (10u << 20); sent += chunk.size()) {
            if (!w->write_chunk(chunk)) {
              out.refused = true;
              break;
            }
            out.accepted_bytes += chunk.size();
          }
          out.cancelled = w->cancelled();
          out.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
          w->end_stream();
          outcome.set_value(out);
        });
      });
  server_->start();
  Client c(path_);
  ASSERT_TRUE(c.send(get("/big")));  // and never read
  auto result = outcome.get_future();
  ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
  const Outcome out = result.get();
  EXPECT_TRUE(out.refused);
  EXPECT_TRUE(out.cancelled);
  EXPECT_LT(out.accepted_bytes, 10u << 20);
  EXPECT_LT(out.took, 5000ms);
  EXPECT_TRUE(c.wait_closed(5000ms));  // what the socket held, then the end
  ASSERT_TRUE(wait_connections(0));
  std::printf("slow reader: cut off after %zu bytes accepted, %lld ms\n", out.accepted_bytes,
              static_cast<long long>(out.took.count()));
  expect_still_serving();
}

// True once the peer has closed, without reading what the socket holds.
bool hung_up(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLRDHUP, 0};
    if (::poll(&p, 1, 10) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return true;
  }
  return false;
}

TEST_F(HttpServerTest, StuckReaderIsCutOffByTheWriteTimeout) {
  // The output stays under max_output_buffer (one response), but the socket takes nothing.
  auto o = quick_options();
  o.limits.write_timeout = 300ms;
  o.limits.max_output_buffer = 64 << 20;
  o.socket_path = path_;
  std::promise<std::shared_ptr<ResponseWriter>> writer;
  server_ =
      std::make_unique<HttpServer>(o, [&](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
        if (req.target == "/big" || req.target == "/mid") {
          w->begin_stream(200, "application/octet-stream");
          w->write_chunk(std::string(req.target == "/big" ? (8 << 20) : (1 << 20), 'z'));
          writer.set_value(w);
          return;
        }
        w->send(200, "text/plain", req.method + " " + req.target + " " + req.body);
      });
  server_->start();
  Client stuck(path_);
  const auto t0 = Clock::now();
  ASSERT_TRUE(stuck.send(get("/big")));  // and never read
  auto w = writer.get_future().get();
  EXPECT_TRUE(hung_up(stuck.fd(), 5000ms));
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3000ms);
  EXPECT_TRUE(w->cancelled());
  EXPECT_FALSE(w->write_chunk("more"));
  ASSERT_TRUE(wait_connections(0));

  // A reader that is slow but keeps taking bytes is not cut off: the deadline is on progress.
  Client slow(path_);
  ASSERT_TRUE(slow.send(get("/echo")));
  ASSERT_TRUE(slow.read_response().has_value());
  std::promise<std::shared_ptr<ResponseWriter>> second;
  writer = std::move(second);
  ASSERT_TRUE(slow.send(get("/mid")));
  w = writer.get_future().get();
  size_t got = 0;
  std::vector<char> buf(512 << 10);
  const auto start = Clock::now();
  while (got < (1u << 20) && Clock::now() - start < 20s) {
    std::this_thread::sleep_for(150ms);  // half the deadline between reads
    const ssize_t n = ::recv(slow.fd(), buf.data(), buf.size(), 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  EXPECT_GE(got, 1u << 20);
  EXPECT_FALSE(w->cancelled());
  w->end_stream();
  expect_still_serving();
}

TEST_F(HttpServerTest, ClientDisconnectMidStreamCancels) {
  start();
  {
    Client c(path_);
    ASSERT_TRUE(c.send(get("/hold")));
    auto w = held(0);
    ASSERT_NE(w, nullptr);
    EXPECT_FALSE(w->cancelled());
    EXPECT_TRUE(w->write_chunk("second"));
  }
  auto w = held(0);
  const auto deadline = Clock::now() + 3s;
  while (!w->cancelled() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(w->cancelled());
  EXPECT_FALSE(w->write_chunk("third"));
  w->end_stream();  // ignored
  EXPECT_TRUE(wait_connections(0));
  expect_still_serving();
}

TEST_F(HttpServerTest, DroppedWriterAndThrowingHandlerGet500) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.send(get("/drop")));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->error_code(), "internal_error");
  ASSERT_TRUE(c.send(get("/throw")));  // the connection survives a dropped writer
  r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->error_code(), "internal_error");
  expect_still_serving();
}

TEST_F(HttpServerTest, CallsAfterTheTerminalCallAreIgnored) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.send(get("/hold")));
  auto w = held(0);
  ASSERT_NE(w, nullptr);
  w->end_stream();
  EXPECT_FALSE(w->write_chunk("late"));
  EXPECT_FALSE(w->begin_stream(200, "text/plain"));
  w->send(404, "text/plain", "late");
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "first");
  ASSERT_TRUE(c.send(get("/next")));
  r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "GET /next ");
}

TEST_F(HttpServerTest, IdleAndSlowConnectionsAreClosed) {
  auto o = quick_options();
  o.limits.idle_timeout = 200ms;
  start(o);
  const auto t0 = Clock::now();
  Client idle(path_);
  Client slow(path_);
  ASSERT_TRUE(slow.send("GET / HT"));  // never completes the request
  EXPECT_TRUE(idle.wait_closed(3000ms));
  EXPECT_TRUE(slow.wait_closed(3000ms));
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2000ms);

  // After a response, the idle clock starts again.
  Client c(path_);
  ASSERT_TRUE(c.send(get("/a")));
  ASSERT_TRUE(c.read_response().has_value());
  EXPECT_TRUE(c.wait_closed(3000ms));
  expect_still_serving();
}

TEST_F(HttpServerTest, ExpectContinueIsAnswered) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  auto r = c.read_response(3000ms, /*keep_interim=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 100);
  ASSERT_TRUE(c.send("body"));
  r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "POST /echo body");
}

TEST_F(HttpServerTest, Http10StreamEndsWithTheConnection) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.send("GET /stream HTTP/1.0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_EQ(r->header("transfer-encoding"), "");
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "chunk " + std::to_string(i) + "\n";
  EXPECT_EQ(r->body, expected);
}

TEST_F(HttpServerTest, StopAcceptingLetsTheCurrentResponseFinish) {
  start();
  Client idle(path_);
  Client c(path_);
  ASSERT_TRUE(c.send(get("/hold")));
  auto w = held(0);
  ASSERT_NE(w, nullptr);
  server_->stop_accepting();
  Client refused(path_);
  EXPECT_FALSE(refused.connected());
  EXPECT_TRUE(idle.wait_closed());  // an idle keep-alive connection goes at once
  EXPECT_TRUE(w->write_chunk(" and the rest"));
  w->end_stream();
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "first and the rest");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, StopCancelsStreamsAndRemovesTheSocketFile) {
  start();
  Client c(path_);
  ASSERT_TRUE(c.send(get("/hold")));
  auto w = held(0);
  ASSERT_NE(w, nullptr);
  server_->stop();
  EXPECT_TRUE(w->cancelled());
  EXPECT_FALSE(w->write_chunk("after stop"));
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(server_->connections(), 0);
  server_.reset();
  w.reset();  // a writer may outlive the server
}

TEST_F(HttpServerTest, SocketFileGetsTheConfiguredMode) {
  auto o = quick_options();
  o.socket_mode = 0600;
  start(o);
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(HttpServerTest, StaleSocketFileIsReplaced) {
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    const sockaddr_un addr = address_of(path_);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);  // leaves the file behind, as a killed instance would
  }
  ASSERT_TRUE(std::filesystem::exists(path_));
  start();
  expect_still_serving();
}

TEST_F(HttpServerTest, SecondInstanceOnALivePathThrows) {
  start();
  Client existing(path_);
  ASSERT_TRUE(wait_connections(1));
  ServerOptions o = quick_options();
  o.socket_path = path_;
  try {
    HttpServer second(o, [](HttpRequest, std::shared_ptr<ResponseWriter>) {});
    ADD_FAILURE() << "the second server started";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another instance is listening on " + path_),
              std::string::npos)
        << e.what();
  }
  ASSERT_TRUE(existing.send(get("/first-instance")));
  auto r = existing.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "GET /first-instance ");
}

TEST_F(HttpServerTest, BadPathsThrow) {
  auto noop = [](HttpRequest, std::shared_ptr<ResponseWriter>) {};
  ServerOptions o = quick_options();
  o.socket_path = dir_.file("not-a-socket");
  std::ofstream(o.socket_path) << "keep me";
  EXPECT_THROW(HttpServer(o, noop), Error);
  EXPECT_TRUE(std::filesystem::exists(o.socket_path));

  o.socket_path = dir_.file("missing-dir/api.sock");
  EXPECT_THROW(HttpServer(o, noop), Error);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("missing-dir")));

  o.socket_path = "/tmp/" + std::string(200, 'p');
  EXPECT_THROW(HttpServer(o, noop), Error);

  o.socket_path.clear();
  o.listen_fd = ::open("/dev/null", O_RDONLY);
  EXPECT_THROW(HttpServer(o, noop), Error);
  ::close(o.listen_fd);
}

TEST_F(HttpServerTest, AdoptsAListeningSocket) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  const sockaddr_un addr = address_of(path_);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ServerOptions o = quick_options();
  o.listen_fd = fd;
  server_ = std::make_unique<HttpServer>(o, [](HttpRequest req, std::shared_ptr<ResponseWriter> w) {
    w->send(200, "text/plain", req.method + " " + req.target + " " + req.body);
  });
  server_->start();
  expect_still_serving();
  server_->stop();
  EXPECT_TRUE(std::filesystem::exists(path_));  // not ours to remove
}

}  // namespace
}  // namespace momentkv::ipc
