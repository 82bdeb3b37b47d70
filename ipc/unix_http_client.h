// The client side: a small HTTP/1.1 client over a Unix-domain socket for the momentkv client
// subcommands and the daemon tests (plain POSIX sockets; Content-Length and chunked responses).
#pragma once

#include <functional>
#include <string>

namespace momentkv::ipc {

struct HttpResponse {
  int status = 0;
  std::string body;  // the whole body (also for streamed responses)
};

// Sends one request and reads the response. `on_data` (optional) receives body bytes as they
// arrive. Throws Error when the socket cannot be reached or the response is malformed.
HttpResponse unix_http(const std::string& socket_path, const std::string& method,
                       const std::string& target, const std::string& body,
                       const std::function<void(const std::string&)>& on_data = {});

// The daemon's socket: --socket, else $MOMENTKV_SOCKET, else /run/momentkv/momentkvd.sock.
std::string default_socket_path();

}  // namespace momentkv::ipc
