#include "tools/load_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

namespace momentkv::tools {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

const char* to_string(StreamEnd end) {
  switch (end) {
    case StreamEnd::kCompleted:
      return "completed";
    case StreamEnd::kDisconnected:
      return "disconnected";
    case StreamEnd::kRefused:
      return "refused";
    case StreamEnd::kStreamError:
      return "stream_error";
    case StreamEnd::kTruncated:
      return "truncated";
    case StreamEnd::kConnectFailed:
      return "connect_failed";
    case StreamEnd::kTimeout:
      return "timeout";
    case StreamEnd::kMalformed:
      return "malformed";
  }
  return "?";
}

namespace {

class Socket {
 public:
  Socket() = default;
  ~Socket() { reset(); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  // connect()s to `path`; the errno on failure (0 on success).
  int connect_to(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) return ENAMETOOLONG;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return errno;
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      const int e = errno;
      reset();
      return e;
    }
    return 0;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string errno_name(int e) {
  switch (e) {
    case ENOENT:
      return "ENOENT";
    case ECONNREFUSED:
      return "ECONNREFUSED";
    case EACCES:
      return "EACCES";
    case EAGAIN:
      return "EAGAIN";
    case ENAMETOOLONG:
      return "ENAMETOOLONG";
    case EMFILE:
      return "EMFILE";
    case ECONNRESET:
      return "ECONNRESET";
    case EPIPE:
      return "EPIPE";
    default:
      return std::string("errno ") + std::to_string(e);
  }
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The error code of a {"error":{"code":...}} body, or "".
std::string error_code_of(const json& j) {
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    return j["error"].value("code", "");
  }
  return {};
}

// Reads from a socket into a buffer with a per-read deadline.
class Reader {
 public:
  enum class Status { kOk, kClosed, kTimeout, kError };
  Reader(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}
  std::string& buf() { return buf_; }
  Status fill() {
    pollfd p{fd_, POLLIN, 0};
    int r;
    do {
      r = poll(&p, 1, timeout_ms_);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return Status::kTimeout;
    if (r < 0) return Status::kError;
    char tmp[16384];
    ssize_t n;
    do {
      n = recv(fd_, tmp, sizeof tmp, 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0) return Status::kClosed;
    if (n < 0) return errno == ECONNRESET ? Status::kClosed : Status::kError;
    buf_.append(tmp, static_cast<size_t>(n));
    return Status::kOk;
  }

 private:
  int fd_;
  int timeout_ms_;
  std::string buf_;
};

}  // namespace

StreamResult stream_completion(const std::string& socket_path, const std::string& body,
                               const StreamOptions& options) {
  StreamResult r;
  Socket sock;
  if (const int e = sock.connect_to(socket_path)) {
    r.end = StreamEnd::kConnectFailed;
    r.error_code = errno_name(e);
    return r;
  }
  std::string req = "POST " + options.target;
  req.append(" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n")
      .append("Content-Type: application/json\r\nContent-Length: ")
      .append(std::to_string(body.size()))
      .append("\r\n\r\n")
      .append(body);
  const auto t0 = Clock::now();
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = send(sock.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The daemon closed the connection (e.g. too many connections: 503 then close); read
      // what it said below.
      break;
    }
    sent += static_cast<size_t>(n);
  }
  auto finish = [&](StreamEnd end) {
    r.end = end;
    r.total_ms = ms_since(t0);
    return r;
  };
  if (options.disconnect_after == 0) {
    sock.reset();
    return finish(StreamEnd::kDisconnected);
  }
  Reader in(sock.get(), options.read_timeout_ms);
  std::string& buf = in.buf();
  auto fail_for = [&](Reader::Status s) {
    return finish(s == Reader::Status::kTimeout ? StreamEnd::kTimeout : StreamEnd::kTruncated);
  };

  // Status line and headers.
  size_t head_end;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    const auto s = in.fill();
    if (s != Reader::Status::kOk) {
      // Nothing at all: the daemon hung up without answering.
      return fail_for(s);
    }
  }
  r.response_ms = ms_since(t0);
  std::string head = buf.substr(0, head_end);
  buf.erase(0, head_end + 4);
  if (head.rfind("HTTP/1.1 ", 0) != 0 || head.size() < 12) return finish(StreamEnd::kMalformed);
  r.status = std::atoi(head.c_str() + 9);
  for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const bool chunked = head.find("transfer-encoding: chunked") != std::string::npos;

  if (!chunked) {
    // A whole response: a refusal, or a non-streamed completion.
    const size_t cl = head.find("content-length: ");
    if (cl == std::string::npos) return finish(StreamEnd::kMalformed);
    const size_t len = std::strtoull(head.c_str() + cl + 16, nullptr, 10);
    while (buf.size() < len) {
      const auto s = in.fill();
      if (s != Reader::Status::kOk) return fail_for(s);
    }
    const json j = json::parse(buf.substr(0, len), nullptr, false);
    if (r.status != 200) {
      r.error_code = error_code_of(j);
      return finish(StreamEnd::kRefused);
    }
    if (j.is_discarded() || !j.contains("choices")) return finish(StreamEnd::kMalformed);
    r.finish_reason = j["choices"][0].value("finish_reason", "");
    if (j.contains("usage")) r.completion_tokens = j["usage"].value("completion_tokens", -1);
    return finish(StreamEnd::kCompleted);
  }

  // Chunked server-sent events: "data: {...}\n\n" ... "data: [DONE]\n\n", then the last chunk.
  std::string events;
  bool final_seen = false;
  Clock::time_point last_token;
  // Handles complete events in `events`; false when the client hangs up now.
  auto take_events = [&]() -> bool {
    size_t end;
    while ((end = events.find("\n\n")) != std::string::npos) {
      const std::string event = events.substr(0, end);
      events.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      const json j = json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) {
        r.end = StreamEnd::kMalformed;
        continue;
      }
      if (j.contains("error")) {
        r.error_code = error_code_of(j);
        r.end = StreamEnd::kStreamError;
        continue;
      }
      const json& choice = j["choices"][0];
      if (choice.contains("finish_reason") && !choice["finish_reason"].is_null()) {
        final_seen = true;
        r.finish_reason = choice["finish_reason"].get<std::string>();
        if (j.contains("usage")) r.completion_tokens = j["usage"].value("completion_tokens", -1);
        continue;
      }
      const auto now = Clock::now();
      if (r.token_events == 0) {
        r.ttft_ms = std::chrono::duration<double, std::milli>(now - t0).count();
      } else {
        r.gaps_ms.push_back(std::chrono::duration<double, std::milli>(now - last_token).count());
      }
      last_token = now;
      ++r.token_events;
      if (options.disconnect_after > 0 && r.token_events >= options.disconnect_after) {
        return false;
      }
    }
    return true;
  };
  r.end = StreamEnd::kCompleted;  // unless an event says otherwise
  while (true) {
    size_t eol;
    while ((eol = buf.find("\r\n")) == std::string::npos) {
      const auto s = in.fill();
      if (s != Reader::Status::kOk) {
        if (r.end == StreamEnd::kStreamError) return finish(StreamEnd::kStreamError);
        return final_seen ? finish(r.end) : fail_for(s);
      }
    }
    char* size_end = nullptr;
    const unsigned long long size = std::strtoull(buf.c_str(), &size_end, 16);
    if (size_end == buf.c_str()) return finish(StreamEnd::kMalformed);
    buf.erase(0, eol + 2);
    if (size == 0) break;
    while (buf.size() < size + 2) {
      const auto s = in.fill();
      if (s != Reader::Status::kOk) {
        if (r.end == StreamEnd::kStreamError) return finish(StreamEnd::kStreamError);
        return final_seen ? finish(r.end) : fail_for(s);
      }
    }
    events.append(buf, 0, size);
    buf.erase(0, size + 2);
    if (!take_events()) {
      sock.reset();
      return finish(StreamEnd::kDisconnected);
    }
  }
  if (r.end == StreamEnd::kStreamError || r.end == StreamEnd::kMalformed) return finish(r.end);
  return finish(final_seen ? StreamEnd::kCompleted : StreamEnd::kTruncated);
}

pid_t socket_peer_pid(const std::string& socket_path) {
  Socket sock;
  if (sock.connect_to(socket_path) != 0) return 0;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  return cred.pid;
}

}  // namespace momentkv::tools
