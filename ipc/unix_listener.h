// The listening AF_UNIX stream socket of HttpServer: bound to a path (replacing a stale socket file
// only when nothing answers on it) or adopted from systemd socket activation.
#pragma once

#include <sys/types.h>

#include <string>

namespace momentkv::ipc {

struct UnixListener {
  int fd = -1;
  std::string created_path;  // the socket file we bound; empty when adopted
  dev_t dev = 0;             // identity of created_path, so stop() never removes a successor's file
  ino_t ino = 0;
};

// Binds `path` (its directory must exist), sets its file mode to `mode` and listens. An existing
// socket file that refuses connections is removed first; throws Error if something answers on it,
// if the path is not a socket, or if any step fails.
UnixListener bind_unix_listener(const std::string& path, unsigned mode);

// Checks that `fd` is a listening AF_UNIX stream socket and takes it; throws Error otherwise.
UnixListener adopt_unix_listener(int fd);

// Removes listener.created_path if it is still the file bind_unix_listener created.
void remove_socket_file(const UnixListener& listener);

}  // namespace momentkv::ipc
