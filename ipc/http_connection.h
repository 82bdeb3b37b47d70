// One client of HttpServer. Reads requests with Beast's parser under the size limits, checks the
// peer's credentials, hands each request to the Handler and writes its response before reading the
// next one (pipelined requests are answered in order). While a response is in progress a read
// stays pending, so a client that disconnects cancels its response at once. Internal to ipc/.
//
// Every member function runs on the connection's strand (executor()); writers reach it by posting.
#pragma once

#include <utility>  // before any Asio header: boost/asio/awaitable.hpp uses std::exchange

#include <array>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipc/server_state.h"

namespace momentkv::ipc {

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;

  // `socket` must use a strand as its executor.
  HttpConnection(Socket socket, std::shared_ptr<ServerShared> shared,
                 std::weak_ptr<IoRuntime> runtime, std::uint64_t id);

  // The strand every member function runs on.
  boost::asio::any_io_executor executor() { return socket_.get_executor(); }

  // Begins serving; a connection that was not admitted gets 503 and is closed.
  void start(bool admitted);
  // Queues response bytes; `last` ends the current response. `accounted` bytes are counted in the
  // current ResponseState's `pending`.
  void deliver(std::string bytes, bool last, bool accounted);
  // Cuts the client off now (stuck reader, abandoned stream): cancels and closes.
  void abort();
  // stop_accepting(): an idle connection closes now, a busy one after its current response.
  void drain();
  // Closes the socket now and cancels the current response.
  void close();

 private:
  enum class Phase { kReading, kResponding, kLingering, kClosed };
  struct Output {
    std::string bytes;
    bool accounted = false;
  };

  bool peer_allowed() const;
  void begin_request();
  void do_read();
  void on_read(const boost::system::error_code& ec, size_t n);
  void parse_buffered();
  void maybe_send_continue();
  void reserve_chunked_body();
  void fail_request(const boost::system::error_code& ec);
  void dispatch();
  void reply_error(int status, std::string_view code, std::string_view message);
  void pump();
  void on_write(const boost::system::error_code& ec, size_t n);
  void arm_write_deadline();
  void on_write_deadline();
  void finish_response();
  void linger_close();
  void arm_timer(std::chrono::milliseconds after);
  void disarm_timer();

  Socket socket_;
  boost::asio::steady_timer timer_;        // idle / request-read / linger deadline
  boost::asio::steady_timer write_timer_;  // write-progress deadline
  std::shared_ptr<ServerShared> shared_;
  std::weak_ptr<IoRuntime> runtime_;
  std::uint64_t id_;
  PeerCredentials peer_;

  Phase phase_ = Phase::kReading;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  boost::beast::flat_buffer buffer_;       // received, not yet parsed
  std::array<char, 16 << 10> read_chunk_;  // target of the one pending read; never buffer_ itself
  bool reading_ = false;
  size_t lingered_ = 0;  // bytes discarded while lingering
  bool continue_sent_ = false;
  bool body_reserved_ = false;
  std::uint64_t timer_generation_ = 0;

  std::shared_ptr<ResponseState> current_;  // the response in progress, if from the handler
  bool close_after_ = false;                // close once the current response is written
  bool response_complete_ = false;          // the last bytes of the response are queued
  std::deque<Output> out_;
  std::vector<boost::asio::const_buffer> write_buffers_;
  bool writing_ = false;      // a write is in flight
  size_t front_written_ = 0;  // bytes of out_.front() already written
  bool write_timer_armed_ = false;
  std::chrono::steady_clock::time_point last_write_progress_;
};

}  // namespace momentkv::ipc
