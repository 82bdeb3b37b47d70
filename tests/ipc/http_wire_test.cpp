// The bytes of responses, chunks and JSON errors, without sockets.
#include "ipc/http_wire.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace momentkv::ipc {
namespace {

TEST(HttpWire, ResponseHeadWithContentLength) {
  EXPECT_EQ(format_response_head(200, "text/plain", BodyFraming::kContentLength, 5, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
            "Connection: keep-alive\r\n\r\n");
}

TEST(HttpWire, ResponseHeadChunkedAndUntilClose) {
  EXPECT_EQ(format_response_head(404, "", BodyFraming::kChunked, 0, false),
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  // A body delimited by the end of the connection can never be keep-alive.
  EXPECT_EQ(format_response_head(200, "a/b", BodyFraming::kUntilClose, 0, true),
            "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nConnection: close\r\n\r\n");
}

TEST(HttpWire, BadStatusAndHeaderInjectionAreNeutralised) {
  const std::string head =
      format_response_head(42, "text/plain\r\nX-Evil: 1", BodyFraming::kContentLength, 0, true);
  EXPECT_EQ(head.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0), 0u);
  EXPECT_NE(head.find("Content-Type: text/plainX-Evil: 1\r\n"), std::string::npos);
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(299), "Unknown");
}

TEST(HttpWire, Chunks) {
  EXPECT_EQ(format_chunk("hello"), "5\r\nhello\r\n");
  EXPECT_EQ(format_chunk(std::string(300, 'x')).substr(0, 5), "12c\r\n");
  EXPECT_EQ(kLastChunk, "0\r\n\r\n");
}

TEST(HttpWire, JsonErrorBodyIsValidJson) {
  const std::string body = json_error_body("bad_request", "quote \" backslash \\ nl \n ctl \x01");
  const auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["error"]["code"], "bad_request");
  EXPECT_EQ(j["error"]["message"], "quote \" backslash \\ nl \n ctl \x01");
}

TEST(HttpWire, ErrorResponseClosesTheConnection) {
  const std::string r = format_error_response(413, "payload_too_large", "too big");
  EXPECT_EQ(r.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0), 0u);
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos);
  const std::string body = r.substr(r.find("\r\n\r\n") + 4);
  EXPECT_NE(r.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(body)["error"]["code"], "payload_too_large");
}

}  // namespace
}  // namespace momentkv::ipc
