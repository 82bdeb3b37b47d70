#include "ipc/unix_http_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/util/error.h"

namespace momentkv::ipc {

std::string default_socket_path() {
  if (const char* s = std::getenv("MOMENTKV_SOCKET"); s && *s) return s;
  return "/run/momentkv/momentkvd.sock";
}

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

HttpResponse unix_http(const std::string& socket_path, const std::string& method,
                       const std::string& target, const std::string& body,
                       const std::function<void(const std::string&)>& on_data) {
  sockaddr_un addr{};
  check(socket_path.size() < sizeof(addr.sun_path), "socket path too long: " + socket_path);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  check(fd.get() >= 0, std::string("socket: ") + std::strerror(errno));
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw Error("cannot connect to " + socket_path + ": " + std::strerror(errno) +
                " (is momentkvd running? --socket PATH)");
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST") {
    req.append("Content-Type: application/json\r\nContent-Length: ")
        .append(std::to_string(body.size()))
        .append("\r\n");
  }
  req.append("\r\n").append(body);
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = send(fd.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    check(n > 0, std::string("send: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  std::string buf;
  auto fill = [&]() {
    char tmp[8192];
    const ssize_t n = recv(fd.get(), tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  };
  size_t head_end;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    check(fill(), "connection closed before the response headers");
  }
  HttpResponse r;
  const std::string head = buf.substr(0, head_end);
  check(head.rfind("HTTP/1.1 ", 0) == 0 && head.size() >= 12, "malformed status line");
  r.status = std::atoi(head.c_str() + 9);
  std::string lower = head;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  buf.erase(0, head_end + 4);
  auto deliver = [&](const std::string& data) {
    r.body.append(data);
    if (on_data) on_data(data);
  };
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    while (true) {
      size_t eol;
      while ((eol = buf.find("\r\n")) == std::string::npos) check(fill(), "truncated chunk size");
      const size_t size = std::stoul(buf.substr(0, eol), nullptr, 16);
      buf.erase(0, eol + 2);
      if (size == 0) break;
      while (buf.size() < size + 2) check(fill(), "truncated chunk");
      deliver(buf.substr(0, size));
      buf.erase(0, size + 2);
    }
    return r;
  }
  const auto cl = lower.find("content-length: ");
  if (cl != std::string::npos) {
    const size_t len = std::stoul(lower.substr(cl + 16));
    while (buf.size() < len) check(fill(), "truncated body");
    deliver(buf.substr(0, len));
    return r;
  }
  while (fill()) {
  }
  deliver(buf);
  return r;
}

}  // namespace momentkv::ipc
