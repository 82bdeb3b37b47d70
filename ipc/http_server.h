// HTTP/1.1 over a Unix-domain stream socket with Boost.Beast on Asio (DESIGN.md §7): keep-alive,
// size and connection limits, idle timeouts, SO_PEERCRED allow-lists, chunked streaming with a
// bounded per-connection output buffer, a stale socket file replaced only if nothing answers.
#pragma once

#include <memory>

#include "ipc/http_types.h"

namespace momentkv::ipc {

class HttpServer {
 public:
  // Binds (or adopts options.listen_fd) and listens; throws momentkv::Error with the reason
  // (e.g. "another instance is listening on PATH").
  HttpServer(ServerOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts the Asio threads; returns at once.
  void start();
  // Stops accepting new connections (existing ones finish their current request).
  void stop_accepting();
  // Closes everything and joins the threads; removes the socket file it created.
  void stop();
  // Connections open now.
  int connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace momentkv::ipc
