// The bytes the server writes: response heads, chunk framing and JSON error bodies. Pure
// functions (no sockets, no Boost) so that they are testable on their own.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace momentkv::ipc {

// How the body of a response is delimited.
enum class BodyFraming {
  kContentLength,  // a complete body of known size
  kChunked,        // HTTP/1.1 streaming
  kUntilClose,     // HTTP/1.0 streaming: the body ends when the connection does
};

// The standard reason phrase for `status` ("OK", "Not Found"), "Unknown" for others.
std::string_view reason_phrase(int status);

// Status line and headers ending with the blank line. `content_length` is used only with
// kContentLength; a status outside 100..599 is written as 500; CR/LF in `content_type` are dropped.
std::string format_response_head(int status, std::string_view content_type, BodyFraming framing,
                                 size_t content_length, bool keep_alive);

// One chunk of a chunked body ("<hex size>\r\n<data>\r\n"); `data` must not be empty.
std::string format_chunk(std::string_view data);

// The chunk that ends a chunked body.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// JSON string contents for `s` (quotes, backslashes and control characters escaped).
std::string json_escape(std::string_view s);

// {"error":{"code":"CODE","message":"MESSAGE"}}
std::string json_error_body(std::string_view code, std::string_view message);

// A complete error response (JSON body, Connection: close).
std::string format_error_response(int status, std::string_view code, std::string_view message);

}  // namespace momentkv::ipc
