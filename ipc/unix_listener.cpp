#include "ipc/unix_listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/util/error.h"

namespace momentkv::ipc {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

sockaddr_un make_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  check(!path.empty(), "socket path is empty");
  check(path.size() < sizeof addr.sun_path,
        "socket path is too long (" + std::to_string(path.size()) + " bytes, at most " +
            std::to_string(sizeof addr.sun_path - 1) + "): " + path);
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// True if a process accepts connections on `addr`; false if the socket file is stale.
bool somebody_listens(const sockaddr_un& addr, const std::string& path) {
  // Non-blocking: a live but busy instance (full backlog) answers EAGAIN instead of hanging us.
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) throw Error("cannot create a socket: " + errno_text(errno));
  const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(probe);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) return true;
  if (err == ECONNREFUSED || err == ENOENT) return false;
  throw Error("cannot check whether something listens on " + path + ": " + errno_text(err));
}

}  // namespace

UnixListener bind_unix_listener(const std::string& path, unsigned mode) {
  const sockaddr_un addr = make_address(path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    check(S_ISSOCK(st.st_mode), path + " exists and is not a socket");
    if (somebody_listens(addr, path)) throw Error("another instance is listening on " + path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      throw Error("cannot remove the stale socket " + path + ": " + errno_text(errno));
    }
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error("cannot create a socket: " + errno_text(errno));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot bind " + path + ": " + errno_text(err));
  }
  // chmod before listen: nobody can connect before the mode is right.
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::unlink(path.c_str());
    ::close(fd);
    throw Error(what + " " + path + ": " + errno_text(err));
  };
  if (::chmod(path.c_str(), static_cast<mode_t>(mode & 07777)) != 0) fail("cannot chmod");
  if (::listen(fd, SOMAXCONN) != 0) fail("cannot listen on");
  if (::stat(path.c_str(), &st) != 0) fail("cannot stat");
  UnixListener listener;
  listener.fd = fd;
  listener.created_path = path;
  listener.dev = st.st_dev;
  listener.ino = st.st_ino;
  return listener;
}

UnixListener adopt_unix_listener(int fd) {
  const std::string what = "listen_fd " + std::to_string(fd);
  int value = 0;
  socklen_t len = sizeof value;
  check(::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &len) == 0,
        what + " is not a socket: " + errno_text(errno));
  check(value == AF_UNIX,
        what + " is not an AF_UNIX socket (domain " + std::to_string(value) + ")");
  len = sizeof value;
  check(::getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) == 0 && value == SOCK_STREAM,
        what + " is not a stream socket");
  len = sizeof value;
  check(::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) == 0 && value != 0,
        what + " is not listening");
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  UnixListener listener;
  listener.fd = fd;
  return listener;
}

void remove_socket_file(const UnixListener& listener) {
  if (listener.created_path.empty()) return;
  struct stat st {};
  if (::lstat(listener.created_path.c_str(), &st) != 0) return;
  if (st.st_dev != listener.dev || st.st_ino != listener.ino) return;
  ::unlink(listener.created_path.c_str());
}

}  // namespace momentkv::ipc
