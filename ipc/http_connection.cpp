#include "ipc/http_connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include "ipc/connection_writer.h"
#include "ipc/http_wire.h"

namespace momentkv::ipc {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

// How long a closing connection keeps discarding input so that the client reads our error
// response instead of a reset.
constexpr std::chrono::milliseconds kLingerTime{1000};
// ... and how many bytes at most: a client that keeps streaming after its error is cut off
// sooner (it already has the response: a Unix socket keeps it queued after we close).
constexpr size_t kLingerMaxBytes = 1 << 20;
// Most output entries gathered into one write.
constexpr size_t kMaxGather = 64;

std::string lower(boost::beast::string_view s) {
  std::string out(s.data(), s.size());
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string to_string(boost::beast::string_view s) {
  return std::string(s.data(), s.size());
}

}  // namespace

HttpConnection::HttpConnection(Socket socket, std::shared_ptr<ServerShared> shared,
                               std::weak_ptr<IoRuntime> runtime, std::uint64_t id)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      write_timer_(socket_.get_executor()),
      shared_(std::move(shared)),
      runtime_(std::move(runtime)),
      id_(id) {}

void HttpConnection::start(bool admitted) {
  if (!admitted) {
    reply_error(
        503, "too_many_connections",
        "too many connections (limit " + std::to_string(shared_->limits.max_connections) + ")");
    do_read();
    return;
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer_.pid = cred.pid;
    peer_.uid = cred.uid;
    peer_.gid = cred.gid;
  } else {
    // Unknown credentials match no allow-list entry.
    peer_.uid = static_cast<uid_t>(-1);
    peer_.gid = static_cast<gid_t>(-1);
  }
  if (!peer_allowed()) {
    reply_error(403, "forbidden",
                "peer uid " + std::to_string(peer_.uid) + " gid " + std::to_string(peer_.gid) +
                    " is not allowed");
    do_read();
    return;
  }
  if (shared_->draining) {
    close();
    return;
  }
  begin_request();
  do_read();
}

bool HttpConnection::peer_allowed() const {
  const auto& uids = shared_->allowed_uids;
  const auto& gids = shared_->allowed_gids;
  if (uids.empty() && gids.empty()) return true;
  return std::find(uids.begin(), uids.end(), peer_.uid) != uids.end() ||
         std::find(gids.begin(), gids.end(), peer_.gid) != gids.end();
}

void HttpConnection::begin_request() {
  phase_ = Phase::kReading;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(shared_->limits.max_header_bytes));
  parser_->body_limit(static_cast<std::uint64_t>(shared_->limits.max_body_bytes));
  continue_sent_ = false;
  body_reserved_ = false;
  arm_timer(shared_->limits.idle_timeout);
}

void HttpConnection::do_read() {
  if (reading_ || phase_ == Phase::kClosed) return;
  // While responding, read only to notice a disconnect; pipelined input waits in the kernel once
  // a header's worth is buffered.
  if (phase_ == Phase::kResponding && buffer_.size() >= shared_->limits.max_header_bytes) return;
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(read_chunk_),
      [self = shared_from_this()](const error_code& ec, size_t n) { self->on_read(ec, n); });
}

void HttpConnection::on_read(const error_code& ec, size_t n) {
  reading_ = false;
  if (phase_ == Phase::kClosed) return;
  if (ec) {
    // EOF or an error: the client is gone (a response in progress is cancelled by close()).
    close();
    return;
  }
  if (phase_ == Phase::kLingering) {
    lingered_ += n;
    if (lingered_ > kLingerMaxBytes) {
      close();
      return;
    }
    do_read();
    return;
  }
  auto space = buffer_.prepare(n);
  std::memcpy(space.data(), read_chunk_.data(), n);
  buffer_.commit(n);
  if (phase_ == Phase::kReading) parse_buffered();
  do_read();
}

void HttpConnection::parse_buffered() {
  while (phase_ == Phase::kReading && buffer_.size() > 0) {
    error_code ec;
    const size_t used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == http::error::need_more) break;
    if (ec) {
      fail_request(ec);
      return;
    }
    maybe_send_continue();
    reserve_chunked_body();
    if (parser_->is_done()) {
      dispatch();
      return;
    }
    if (used == 0) break;
  }
  // A request without a body can be complete before any body bytes arrive.
  if (phase_ == Phase::kReading && parser_->is_done()) dispatch();
}

void HttpConnection::reserve_chunked_body() {
  // A body with Content-Length is reserved by the parser; a chunked one would grow by doubling,
  // briefly holding 1.5x the cap while it is copied. Reserving the cap once bounds a
  // connection's body memory by the cap: pages never written are never resident.
  if (body_reserved_ || !parser_->is_header_done()) return;
  body_reserved_ = true;
  if (!parser_->chunked()) return;
  try {
    parser_->get().body().reserve(shared_->limits.max_body_bytes);
  } catch (const std::bad_alloc&) {
    // No address space for it now: the body grows as it arrives instead.
  }
}

void HttpConnection::maybe_send_continue() {
  if (continue_sent_ || !parser_->is_header_done() || parser_->is_done()) return;
  const auto expect = parser_->get()[http::field::expect];
  if (!boost::beast::iequals(expect, "100-continue")) return;
  continue_sent_ = true;
  out_.push_back({"HTTP/1.1 100 Continue\r\n\r\n", false});
  pump();
}

void HttpConnection::fail_request(const error_code& ec) {
  const auto& limits = shared_->limits;
  if (ec == http::error::header_limit) {
    reply_error(431, "headers_too_large",
                "request headers exceed " + std::to_string(limits.max_header_bytes) + " bytes");
  } else if (ec == http::error::body_limit) {
    reply_error(413, "payload_too_large",
                "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes");
  } else {
    reply_error(400, "bad_request", "malformed HTTP request: " + ec.message());
  }
}

void HttpConnection::dispatch() {
  disarm_timer();
  auto message = parser_->release();
  parser_.reset();

  HttpRequest request;
  request.method = to_string(message.method_string());
  request.target = to_string(message.target());
  for (const auto& field : message) {
    auto [it, inserted] = request.headers.emplace(lower(field.name_string()), "");
    if (!inserted) it->second += ", ";  // repeated fields combine, as RFC 9110 §5.3 allows
    it->second += to_string(field.value());
  }
  request.body = std::move(message.body());
  request.peer = peer_;

  auto state = std::make_shared<ResponseState>();
  // HTTP/1.0 clients get one response per connection: their streams end by closing it.
  state->chunked = message.version() >= 11;
  state->keep_alive = state->chunked && message.keep_alive() && !shared_->draining;
  current_ = state;
  close_after_ = !state->keep_alive;
  response_complete_ = false;
  phase_ = Phase::kResponding;

  auto runtime = runtime_.lock();
  if (!runtime) {
    close();
    return;
  }
  auto writer = std::make_shared<ConnectionWriter>(std::move(runtime), shared_from_this(), state,
                                                   shared_->limits.max_output_buffer);
  try {
    shared_->handler(std::move(request), writer);
  } catch (const std::exception& e) {
    writer->send(500, "application/json", json_error_body("internal_error", e.what()));
  } catch (...) {
    writer->send(500, "application/json", json_error_body("internal_error", "handler failed"));
  }
}

void HttpConnection::reply_error(int status, std::string_view code, std::string_view message) {
  disarm_timer();
  parser_.reset();
  phase_ = Phase::kResponding;
  close_after_ = true;
  out_.push_back({format_error_response(status, code, message), false});
  response_complete_ = true;
  pump();
}

void HttpConnection::deliver(std::string bytes, bool last, bool accounted) {
  if (phase_ == Phase::kClosed) return;
  if (!bytes.empty()) out_.push_back({std::move(bytes), accounted});
  if (last) response_complete_ = true;
  pump();
}

void HttpConnection::pump() {
  if (writing_ || phase_ == Phase::kClosed) return;
  if (out_.empty()) {
    if (response_complete_) {
      response_complete_ = false;
      finish_response();
    }
    return;
  }
  write_buffers_.clear();
  for (size_t i = 0; i < out_.size() && i < kMaxGather; ++i) {
    write_buffers_.push_back(asio::buffer(out_[i].bytes) + (i == 0 ? front_written_ : 0));
  }
  writing_ = true;
  // A write starts right after the previous one made progress, or after the output was empty:
  // either way the deadline counts from now.
  last_write_progress_ = std::chrono::steady_clock::now();
  arm_write_deadline();
  socket_.async_write_some(
      write_buffers_,
      [self = shared_from_this()](const error_code& ec, size_t n) { self->on_write(ec, n); });
}

void HttpConnection::on_write(const error_code& ec, size_t n) {
  writing_ = false;
  if (phase_ == Phase::kClosed) {
    out_.clear();
    return;
  }
  if (ec) {
    close();
    return;
  }
  while (n > 0 && !out_.empty()) {
    Output& front = out_.front();
    const size_t taken = std::min(n, front.bytes.size() - front_written_);
    if (front.accounted && current_) current_->pending -= taken;
    front_written_ += taken;
    n -= taken;
    if (front_written_ == front.bytes.size()) {
      out_.pop_front();
      front_written_ = 0;
    }
  }
  pump();
}

void HttpConnection::arm_write_deadline() {
  if (write_timer_armed_) return;  // it re-arms itself while writes make progress
  write_timer_armed_ = true;
  write_timer_.expires_at(last_write_progress_ + shared_->limits.write_timeout);
  write_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    self->write_timer_armed_ = false;
    if (!ec) self->on_write_deadline();
  });
}

void HttpConnection::on_write_deadline() {
  if (!writing_ || phase_ == Phase::kClosed) return;  // the output drained meanwhile
  const auto timeout = shared_->limits.write_timeout;
  if (std::chrono::steady_clock::now() - last_write_progress_ < timeout) {
    arm_write_deadline();
    return;
  }
  std::fprintf(stderr,
               "momentkv ipc: connection %llu (pid %d) took no response bytes for %lld ms; "
               "closing it\n",
               static_cast<unsigned long long>(id_), static_cast<int>(peer_.pid),
               static_cast<long long>(timeout.count()));
  abort();
}

void HttpConnection::finish_response() {
  current_.reset();
  if (close_after_ || shared_->draining) {
    linger_close();
    return;
  }
  begin_request();
  parse_buffered();
  do_read();
}

void HttpConnection::linger_close() {
  phase_ = Phase::kLingering;
  lingered_ = 0;
  buffer_.consume(buffer_.size());
  error_code ignored;
  socket_.shutdown(Socket::shutdown_send, ignored);
  arm_timer(std::min(shared_->limits.idle_timeout, kLingerTime));
  do_read();
}

void HttpConnection::abort() {
  if (current_) current_->cancelled = true;
  close();
}

void HttpConnection::drain() {
  if (phase_ != Phase::kReading) return;  // a busy connection closes after its response
  if (buffer_.size() == 0 && (!parser_ || !parser_->got_some())) close();
}

void HttpConnection::close() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  disarm_timer();
  if (current_) current_->cancelled = true;
  error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  write_timer_.cancel();
  if (!writing_) out_.clear();  // else a write in flight may still read them: on_write clears
  shared_->remove(id_);
}

void HttpConnection::arm_timer(std::chrono::milliseconds after) {
  const std::uint64_t generation = ++timer_generation_;
  timer_.expires_after(after);
  timer_.async_wait([self = shared_from_this(), generation](const error_code& ec) {
    if (ec || generation != self->timer_generation_) return;
    self->close();
  });
}

void HttpConnection::disarm_timer() {
  ++timer_generation_;
  timer_.cancel();
}

}  // namespace momentkv::ipc
