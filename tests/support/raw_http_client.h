// A raw HTTP/1.1 client over a Unix-domain socket for fault tests: one socket per object, requests
// written as bytes (pipelined, partial, endless), responses read one at a time with a deadline,
// truncated ones reported as such. Plus the daemon-side numbers those tests compare: resident
// memory, open descriptors and /metrics values.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace momentkv::test {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // chunked bodies decoded
  bool chunked = false;
  bool complete = false;  // the whole body arrived (Content-Length, or the terminating chunk)
  std::string header(const std::string& name) const;
  // The "code" of a JSON error body, or "".
  std::string error_code() const;
};

class RawConnection {
 public:
  // Connects; connected() is false (and connect_errno() says why) when that fails.
  explicit RawConnection(const std::string& socket_path);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  int connect_errno() const { return connect_errno_; }
  int fd() const { return fd_; }
  // Writes all of `bytes` (no SIGPIPE); false once the peer is gone.
  bool send(std::string_view bytes);
  // Reads the next response (within timeout_ms overall). nullopt when the connection ends or
  // the time runs out before a status line and headers; a response whose body is cut short
  // comes back with complete = false.
  std::optional<RawResponse> read_response(int timeout_ms = 10000);
  // Waits until the server closes the connection (bytes that arrive are discarded); the
  // milliseconds waited, or -1 when it stayed open for timeout_ms.
  long wait_closed(int timeout_ms);
  // As wait_closed, without reading: for a client that never reads its response.
  long wait_hangup(int timeout_ms);
  // Closes with a reset (SO_LINGER 0) instead of an orderly FIN.
  void reset();
  void close();

 private:
  // Reads more bytes into buf_ until the deadline; false on EOF, error or timeout.
  bool fill(std::int64_t deadline_ms);
  int fd_ = -1;
  int connect_errno_ = 0;
  std::string buf_;  // received, not yet consumed
};

// An HTTP/1.1 request with Content-Length (and Host); `extra` holds further header lines, each
// ending in \r\n.
std::string http_request(const std::string& method, const std::string& target,
                         const std::string& body = "", const std::string& extra = "");

// How a text/event-stream body ended.
struct SseOutcome {
  int events = 0;             // data events, [DONE] excluded
  bool done = false;          // data: [DONE] arrived
  std::string finish_reason;  // of the final event ("" when none arrived)
  std::string error_code;     // of an error event ("" when none arrived)
};
SseOutcome parse_sse(const std::string& body);

// Resident and peak resident bytes (VmRSS, VmHWM) of a process; 0 when it cannot be read.
std::uint64_t process_rss_bytes(pid_t pid);
std::uint64_t process_peak_rss_bytes(pid_t pid);
// Resets the peak (VmHWM) to the current RSS; false when not allowed.
bool reset_peak_rss(pid_t pid);
// Open file descriptors of a process; -1 when they cannot be listed.
int open_fd_count(pid_t pid);
// The value of the sample `name` (with its labels, e.g. `x_total{outcome="ok"}`) in Prometheus
// text; -1 when absent.
double metric_value(const std::string& metrics, const std::string& name);
// GET /metrics on `socket_path`, parsed for `name`; -1 when the daemon does not answer.
double daemon_metric(const std::string& socket_path, const std::string& name);

}  // namespace momentkv::test
