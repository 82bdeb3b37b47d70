// The contract between the HTTP-over-Unix-socket server (ipc/) and the code that serves requests
// (daemon/). The server parses, limits and authenticates; a Handler decides the response. A
// response is written through a ResponseWriter, which may be used from any thread (the daemon's
// inference worker streams tokens through it) and never blocks.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace momentkv::ipc {

// Credentials of the connected process (SO_PEERCRED).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // "/v1/completions?x=y"
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  PeerCredentials peer;
};

// Thread-safe; calls after the first terminal call (send / end_stream) are ignored.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A complete response with Content-Length.
  virtual void send(int status, const std::string& content_type, std::string body) = 0;
  // Starts a streamed response (chunked transfer encoding); false if the client is gone.
  virtual bool begin_stream(int status, const std::string& content_type) = 0;
  // Queues one chunk. False when the client is gone or has stopped reading and its output
  // buffer is over the limit: the caller must stop (the server closes the connection).
  virtual bool write_chunk(std::string data) = 0;
  // Ends the stream (terminating chunk).
  virtual void end_stream() = 0;
  // True once the client disconnected or was cut off.
  virtual bool cancelled() const = 0;
};

// Called on a server thread for every complete, size-checked request. It must not block: work
// that takes time is handed elsewhere together with the writer.
using Handler = std::function<void(HttpRequest, std::shared_ptr<ResponseWriter>)>;

struct ServerLimits {
  size_t max_body_bytes = 1 << 20;                 // 413 above
  size_t max_header_bytes = 16 << 10;              // 431 above
  int max_connections = 64;                        // further connections get 503 and are closed
  std::chrono::milliseconds idle_timeout{60'000};  // keep-alive / read timeout
  size_t max_output_buffer = 1 << 20;              // bytes queued for a client before it is cut off
  // A client whose socket takes no response bytes for this long is cut off (its response
  // cancelled): a stuck reader cannot hold a connection, its output and its generation forever.
  std::chrono::milliseconds write_timeout{30'000};
};

struct ServerOptions {
  std::string socket_path;  // bound when listen_fd < 0
  int listen_fd = -1;       // an already-listening socket (systemd socket activation)
  unsigned socket_mode = 0660;
  std::vector<uid_t> allowed_uids;  // empty: any (file mode still applies)
  std::vector<gid_t> allowed_gids;
  ServerLimits limits;
  int n_threads = 1;  // Asio threads (never run model code)
};

}  // namespace momentkv::ipc
