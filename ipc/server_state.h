// State HttpServer shares with its connections and response writers. Internal to ipc/.
//
// Ownership (no cycles, nothing used after it is destroyed):
//   HttpServer::Impl ─▶ IoRuntime, ServerShared
//   ConnectionWriter ─▶ IoRuntime, HttpConnection, ResponseState   (a writer may outlive the
//   server) HttpConnection   ─▶ ServerShared, ResponseState; IoRuntime only weakly
// A handler queued in the io_context holds its HttpConnection, never the IoRuntime, so the last
// IoRuntime owner destroys the context and with it every queued handler.
#pragma once

#include <utility>  // before any Asio header: boost/asio/awaitable.hpp uses std::exchange

#include <sys/types.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "ipc/http_types.h"

namespace momentkv::ipc {

class HttpConnection;

// The io_context, and the rule that nothing is posted to it once the server has stopped.
struct IoRuntime {
  boost::asio::io_context ioc;

  // Posts `fn` to `executor` unless the server has stopped (then `fn` is dropped).
  template <class Executor, class Fn>
  void post(const Executor& executor, Fn&& fn) {
    std::lock_guard lock(mutex_);
    if (!stopped_) boost::asio::post(executor, std::forward<Fn>(fn));
  }
  // After this, post() drops everything.
  void mark_stopped() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }

 private:
  std::mutex mutex_;
  bool stopped_ = false;
};

// Configuration and the registry of admitted connections.
struct ServerShared {
  ServerLimits limits;
  std::vector<uid_t> allowed_uids;
  std::vector<gid_t> allowed_gids;
  Handler handler;
  std::atomic<bool> draining{false};  // stop_accepting() was called: no more keep-alive

  // Registers `conn` under `id` if fewer than max_connections are open; false otherwise.
  bool admit(std::uint64_t id, const std::shared_ptr<HttpConnection>& conn) {
    std::lock_guard lock(mutex_);
    if (static_cast<long>(live_.size()) >= static_cast<long>(limits.max_connections)) return false;
    live_.emplace(id, conn);
    return true;
  }
  // Forgets connection `id` (no-op if it was never admitted).
  void remove(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    live_.erase(id);
  }
  // Admitted connections that are still open.
  int count() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(live_.size());
  }
  // The open connections, for stop_accepting() and stop().
  std::vector<std::shared_ptr<HttpConnection>> snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<HttpConnection>> out;
    for (const auto& [id, weak] : live_) {
      if (auto conn = weak.lock()) out.push_back(std::move(conn));
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<HttpConnection>> live_;
};

// The response to one request, shared by its connection and its writer.
struct ResponseState {
  std::atomic<bool> cancelled{false};  // client gone or cut off
  std::atomic<size_t> pending{0};      // bytes handed to the connection, not yet written
  bool keep_alive = true;              // fixed when the request is dispatched
  bool chunked = true;  // false for HTTP/1.0 clients: streams end with the connection
};

}  // namespace momentkv::ipc
