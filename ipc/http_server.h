// HTTP/1.1 over a Unix-domain stream socket with Boost.Beast on Asio (DESIGN.md §7): keep-alive,
// size and connection limits, idle timeouts, SO_PEERCRED allow-lists, chunked streaming with a
// bounded per-connection output buffer, a stale socket file replaced only if nothing answers.
//
// Errors the server answers by itself, each a JSON body {"error":{"code","message"}} followed by
// closing the connection: 400 bad_request (malformed HTTP), 403 forbidden (SO_PEERCRED not on a
// non-empty allow-list; sent on connect), 413 payload_too_large, 431 headers_too_large,
// 503 too_many_connections (sent on connect), 500 internal_error (the handler threw, or dropped its
// writer without responding; the connection stays open for keep-alive). Before closing, further
// input is discarded for at most 1 s or 1 MiB, so a client still sending reads the error. A
// request body is held in at most max_body_bytes (a chunked one is reserved at that size once).
//
// Behaviour the Handler can rely on:
// - Requests on one connection are handed over one at a time: the next is read only after the
//   previous response is complete, so pipelined requests are answered in order.
// - With n_threads > 1 the Handler is called concurrently for different connections.
// - max_output_buffer counts bytes given to write_chunk and not yet written to the socket,
//   whatever the reason: a stream that produces faster than the client reads is cut off
//   (write_chunk returns false, cancelled() turns true). One chunk alone may exceed the limit.
// - idle_timeout bounds the time from connect, or from the end of the previous response, to a
//   complete request (slow senders included); it does not apply while a response is in progress.
// - write_timeout bounds the time response bytes wait for the socket to take any of them: a
//   client that stops reading is cut off (cancelled() turns true) even when its output stays
//   under max_output_buffer. Waiting for the handler's next chunk does not count.
// - A client that closes or resets its connection while its response is in progress cancels it.
// - A writer may outlive the server; after stop() it does nothing and reports cancelled().
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
  // Closes everything and joins the threads; removes the socket file it created (if it is still
  // ours). Idempotent. Call it from outside the server's threads (from a handler it does not join
  // the calling thread).
  void stop();
  // Connections open now.
  int connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace momentkv::ipc
