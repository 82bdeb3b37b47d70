// One streamed completion against momentkvd, measured from the client's side: time to the
// response, to the first token event and between token events, and how the stream ended. It can
// hang up on purpose after a number of token events. Plain POSIX sockets with a deadline on every
// read, so a daemon that stalls cannot hang the caller. Used by `momentkv load` and the
// reliability tests (tests/reliability/).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace momentkv::tools {

// How a request ended.
enum class StreamEnd {
  kCompleted,      // 200 and the final event (the one with finish_reason) arrived
  kDisconnected,   // the client hung up on purpose
  kRefused,        // a response other than 200 (status and error code kept)
  kStreamError,    // 200, then an error event in the stream
  kTruncated,      // the stream ended without its final event
  kConnectFailed,  // connect() failed (error_code: the errno name)
  kTimeout,        // nothing arrived within the read deadline
  kMalformed,      // not HTTP/1.1, bad chunk framing or an unparsable event
};
const char* to_string(StreamEnd end);

struct StreamOptions {
  std::string target = "/v1/completions";
  // Hang up after this many token events (0: right after sending the request); -1: never.
  int disconnect_after = -1;
  int read_timeout_ms = 60'000;  // per read; a queued request gets no byte until it starts
};

struct StreamResult {
  StreamEnd end = StreamEnd::kMalformed;
  int status = 0;               // HTTP status (0: none arrived)
  std::string error_code;       // {"error":{"code"}} of a refusal or stream error; errno name
  double response_ms = -1;      // request sent -> status line
  double ttft_ms = -1;          // request sent -> first token event
  double total_ms = 0;          // request sent -> end
  std::vector<double> gaps_ms;  // between consecutive token events
  int64_t token_events = 0;
  int64_t completion_tokens = -1;  // usage.completion_tokens of the final event
  std::string finish_reason;       // of the final event
};

// Sends `body` (a JSON completion request with "stream": true) as a POST and reads the stream.
// Never throws for what the daemon or the socket does; every outcome is a StreamEnd.
StreamResult stream_completion(const std::string& socket, const std::string& body,
                               const StreamOptions& options = {});

// The pid of the process listening on `socket` (SO_PEERCRED of a fresh connection); 0 when it
// cannot be told. Under socket activation that is whoever created the socket (systemd).
pid_t socket_peer_pid(const std::string& socket);

}  // namespace momentkv::tools
