// The ResponseWriter handed to the Handler: serialises the response on the caller's thread and
// posts the bytes to its connection's strand. Internal to ipc/.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "ipc/http_types.h"
#include "ipc/server_state.h"

namespace momentkv::ipc {

class ConnectionWriter final : public ResponseWriter {
 public:
  // `max_output_buffer`: bytes a stream may have waiting before the client counts as stuck.
  ConnectionWriter(std::shared_ptr<IoRuntime> runtime, std::shared_ptr<HttpConnection> conn,
                   std::shared_ptr<ResponseState> state, size_t max_output_buffer);
  // A writer dropped without a response sends 500; one dropped mid-stream cuts the connection.
  ~ConnectionWriter() override;

  void send(int status, const std::string& content_type, std::string body) override;
  bool begin_stream(int status, const std::string& content_type) override;
  bool write_chunk(std::string data) override;
  void end_stream() override;
  bool cancelled() const override;

 private:
  enum class Phase { kFresh, kStreaming, kDone };

  // Posts bytes to the connection; the caller holds mutex_.
  void post_bytes(std::string bytes, bool last);
  // Posts abort() to the connection; the caller holds mutex_.
  void post_abort();

  // Declared first so that it is destroyed last: conn_ must die while the io_context lives.
  std::shared_ptr<IoRuntime> runtime_;
  std::shared_ptr<HttpConnection> conn_;
  std::shared_ptr<ResponseState> state_;
  size_t max_output_buffer_;
  mutable std::mutex mutex_;
  Phase phase_ = Phase::kFresh;
};

}  // namespace momentkv::ipc
