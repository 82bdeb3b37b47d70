#include "ipc/connection_writer.h"

#include "ipc/http_connection.h"
#include "ipc/http_wire.h"

namespace momentkv::ipc {

ConnectionWriter::ConnectionWriter(std::shared_ptr<IoRuntime> runtime,
                                   std::shared_ptr<HttpConnection> conn,
                                   std::shared_ptr<ResponseState> state, size_t max_output_buffer)
    : runtime_(std::move(runtime)),
      conn_(std::move(conn)),
      state_(std::move(state)),
      max_output_buffer_(max_output_buffer) {}

ConnectionWriter::~ConnectionWriter() {
  try {
    std::lock_guard lock(mutex_);
    if (state_->cancelled) return;
    if (phase_ == Phase::kFresh) {
      std::string body = json_error_body("internal_error", "the handler sent no response");
      std::string bytes = format_response_head(500, "application/json", BodyFraming::kContentLength,
                                               body.size(), state_->keep_alive);
      bytes += body;
      post_bytes(std::move(bytes), /*last=*/true);
    } else if (phase_ == Phase::kStreaming) {
      post_abort();  // the client sees a truncated stream, not a clean end
    }
  } catch (...) {
    // Out of memory while dropping a writer: the connection times out instead.
  }
}

void ConnectionWriter::send(int status, const std::string& content_type, std::string body) {
  std::lock_guard lock(mutex_);
  if (phase_ != Phase::kFresh) return;
  phase_ = Phase::kDone;
  if (state_->cancelled) return;
  std::string bytes = format_response_head(status, content_type, BodyFraming::kContentLength,
                                           body.size(), state_->keep_alive);
  bytes += body;
  post_bytes(std::move(bytes), /*last=*/true);
}

bool ConnectionWriter::begin_stream(int status, const std::string& content_type) {
  std::lock_guard lock(mutex_);
  if (phase_ != Phase::kFresh) return false;
  if (state_->cancelled) {
    phase_ = Phase::kDone;
    return false;
  }
  phase_ = Phase::kStreaming;
  const BodyFraming framing = state_->chunked ? BodyFraming::kChunked : BodyFraming::kUntilClose;
  post_bytes(format_response_head(status, content_type, framing, 0, state_->keep_alive), false);
  return true;
}

bool ConnectionWriter::write_chunk(std::string data) {
  std::lock_guard lock(mutex_);
  if (phase_ != Phase::kStreaming || state_->cancelled) return false;
  if (data.empty()) return true;  // an empty chunk would end the stream
  std::string bytes = state_->chunked ? format_chunk(data) : std::move(data);
  // One chunk larger than the limit may go out alone; beyond that, waiting bytes mean the
  // client is not reading.
  const size_t waiting = state_->pending.load();
  if (waiting > 0 && waiting + bytes.size() > max_output_buffer_) {
    state_->cancelled = true;
    phase_ = Phase::kDone;
    post_abort();
    return false;
  }
  post_bytes(std::move(bytes), /*last=*/false);
  return true;
}

void ConnectionWriter::end_stream() {
  std::lock_guard lock(mutex_);
  if (phase_ != Phase::kStreaming) return;
  phase_ = Phase::kDone;
  if (state_->cancelled) return;
  post_bytes(state_->chunked ? std::string(kLastChunk) : std::string(), /*last=*/true);
}

bool ConnectionWriter::cancelled() const {
  return state_->cancelled;
}

void ConnectionWriter::post_bytes(std::string bytes, bool last) {
  state_->pending += bytes.size();
  runtime_->post(conn_->executor(), [conn = conn_, bytes = std::move(bytes), last]() mutable {
    conn->deliver(std::move(bytes), last, /*accounted=*/true);
  });
}

void ConnectionWriter::post_abort() {
  runtime_->post(conn_->executor(), [conn = conn_] { conn->abort(); });
}

}  // namespace momentkv::ipc
