#include "tests/support/raw_http_client.h"

#include <poll.h>  // POLLRDHUP: _GNU_SOURCE, which g++ defines
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ipc/unix_http_client.h"

namespace momentkv::test {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

// A "Vm...:" line of /proc/PID/status in bytes.
std::uint64_t status_kib(pid_t pid, const std::string& key) {
  std::ifstream in(std::string("/proc/") + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10) * 1024;
    }
  }
  return 0;
}

}  // namespace

std::string RawResponse::header(const std::string& name) const {
  const auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

std::string RawResponse::error_code() const {
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "";
  return j["error"].value("code", "");
}

RawConnection::RawConnection(const std::string& socket_path) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    connect_errno_ = errno;
    return;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    connect_errno_ = errno;
    close();
  }
}

RawConnection::~RawConnection() {
  close();
}

void RawConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void RawConnection::reset() {
  if (fd_ < 0) return;
  linger l{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close();
}

bool RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    if (fd_ < 0) return false;
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool RawConnection::fill(std::int64_t deadline_ms) {
  if (fd_ < 0) return false;
  const std::int64_t left = deadline_ms - now_ms();
  if (left <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  char chunk[16384];
  const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  buf_.append(chunk, static_cast<size_t>(n));
  return true;
}

std::optional<RawResponse> RawConnection::read_response(int timeout_ms) {
  const std::int64_t deadline = now_ms() + timeout_ms;
  size_t head_end;
  while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(deadline)) return std::nullopt;
  }
  RawResponse r;
  std::istringstream head(buf_.substr(0, head_end));
  buf_.erase(0, head_end + 4);
  std::string line;
  std::getline(head, line);
  if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return std::nullopt;
  r.status = std::atoi(line.c_str() + 9);
  while (std::getline(head, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    r.headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
  }
  r.chunked = lower(r.header("transfer-encoding")).find("chunked") != std::string::npos;
  if (r.chunked) {
    while (true) {
      size_t eol;
      while ((eol = buf_.find("\r\n")) == std::string::npos) {
        if (!fill(deadline)) return r;
      }
      const size_t size = std::strtoull(buf_.c_str(), nullptr, 16);
      if (size == 0) {
        while (buf_.size() < eol + 4) {
          if (!fill(deadline)) return r;
        }
        buf_.erase(0, eol + 4);  // "0\r\n\r\n" (no trailers)
        r.complete = true;
        return r;
      }
      while (buf_.size() < eol + 2 + size + 2) {
        if (!fill(deadline)) return r;
      }
      r.body.append(buf_, eol + 2, size);
      buf_.erase(0, eol + 2 + size + 2);
    }
  }
  if (!r.header("content-length").empty()) {
    const size_t length = std::strtoull(r.header("content-length").c_str(), nullptr, 10);
    while (buf_.size() < length) {
      if (!fill(deadline)) break;
    }
    r.complete = buf_.size() >= length;
    r.body = buf_.substr(0, std::min(length, buf_.size()));
    buf_.erase(0, r.body.size());
    return r;
  }
  while (fill(deadline)) {
  }
  r.body = std::move(buf_);  // until the connection ends
  buf_.clear();
  r.complete = true;
  return r;
}

long RawConnection::wait_closed(int timeout_ms) {
  const std::int64_t start = now_ms();
  const std::int64_t deadline = start + timeout_ms;
  while (fd_ >= 0) {
    const std::int64_t left = deadline - now_ms();
    if (left <= 0) return -1;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return static_cast<long>(now_ms() - start);
  }
  return -1;
}

long RawConnection::wait_hangup(int timeout_ms) {
  const std::int64_t start = now_ms();
  const std::int64_t deadline = start + timeout_ms;
  while (fd_ >= 0) {
    const std::int64_t left = deadline - now_ms();
    if (left <= 0) return -1;
    pollfd p{fd_, POLLRDHUP, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left, 100))) > 0 &&
        (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      return static_cast<long>(now_ms() - start);
    }
  }
  return -1;
}

std::string http_request(const std::string& method, const std::string& target,
                         const std::string& body, const std::string& extra) {
  std::string r = method;
  r.append(" ").append(target).append(" HTTP/1.1\r\nHost: localhost\r\n");
  if (!body.empty() || method == "POST") {
    r.append("Content-Type: application/json\r\nContent-Length: ")
        .append(std::to_string(body.size()))
        .append("\r\n");
  }
  r.append(extra).append("\r\n").append(body);
  return r;
}

SseOutcome parse_sse(const std::string& body) {
  SseOutcome out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;  // an event cut in half counts as nothing
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end + 2;
    if (data == "[DONE]") {
      out.done = true;
      continue;
    }
    ++out.events;
    const auto j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;
    if (j.contains("error") && j["error"].is_object()) {
      out.error_code = j["error"].value("code", "?");
      continue;
    }
    if (j.contains("choices") && !j["choices"].empty() &&
        j["choices"][0].contains("finish_reason") && j["choices"][0]["finish_reason"].is_string()) {
      out.finish_reason = j["choices"][0]["finish_reason"].get<std::string>();
    }
  }
  return out;
}

std::uint64_t process_rss_bytes(pid_t pid) {
  return status_kib(pid, "VmRSS");
}

std::uint64_t process_peak_rss_bytes(pid_t pid) {
  return status_kib(pid, "VmHWM");
}

bool reset_peak_rss(pid_t pid) {
  std::ofstream out(std::string("/proc/") + std::to_string(pid) + "/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

int open_fd_count(pid_t pid) {
  std::error_code ec;
  std::filesystem::directory_iterator it(std::string("/proc/") + std::to_string(pid) + "/fd", ec);
  if (ec) return -1;
  int n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return -1;
    ++n;
  }
  return n;
}

double metric_value(const std::string& metrics, const std::string& name) {
  size_t pos = 0;
  while ((pos = metrics.find(name + " ", pos)) != std::string::npos) {
    if (pos == 0 || metrics[pos - 1] == '\n') {
      return std::strtod(metrics.c_str() + pos + name.size() + 1, nullptr);
    }
    pos += name.size();
  }
  return -1;
}

double daemon_metric(const std::string& socket_path, const std::string& name) {
  try {
    return metric_value(ipc::unix_http(socket_path, "GET", "/metrics", "").body, name);
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace momentkv::test
