#include "ipc/http_server.h"

#include <utility>  // before any Asio header: boost/asio/awaitable.hpp uses std::exchange

#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/util/error.h"
#include "ipc/http_connection.h"
#include "ipc/server_state.h"
#include "ipc/unix_listener.h"

namespace momentkv::ipc {

namespace asio = boost::asio;
using boost::system::error_code;
using Protocol = asio::local::stream_protocol;

namespace {

// How long stop() waits for the server threads to close the acceptor and the connections.
constexpr std::chrono::milliseconds kStopWait{2000};
// Pause before accepting again after an accept error such as EMFILE.
constexpr std::chrono::milliseconds kAcceptRetry{100};

void validate(const ServerOptions& o) {
  const auto& l = o.limits;
  check(o.n_threads >= 1, "n_threads must be at least 1, got " + std::to_string(o.n_threads));
  check(l.max_connections >= 1,
        "max_connections must be at least 1, got " + std::to_string(l.max_connections));
  check(l.max_header_bytes >= 64 && l.max_header_bytes <= std::numeric_limits<std::uint32_t>::max(),
        "max_header_bytes must be in [64, 2^32), got " + std::to_string(l.max_header_bytes));
  check(l.idle_timeout.count() > 0,
        "idle_timeout must be positive, got " + std::to_string(l.idle_timeout.count()) + " ms");
  check(l.max_output_buffer > 0, "max_output_buffer must be positive");
  check(l.write_timeout.count() > 0,
        "write_timeout must be positive, got " + std::to_string(l.write_timeout.count()) + " ms");
  check(o.listen_fd >= 0 || !o.socket_path.empty(), "neither socket_path nor listen_fd is set");
}

using Task = std::pair<asio::any_io_executor, std::function<void()>>;

// Runs each task on its executor and waits, at most kStopWait, until all have run.
void run_and_wait(IoRuntime& runtime, std::vector<Task> tasks) {
  if (tasks.empty()) return;
  auto remaining = std::make_shared<std::atomic<size_t>>(tasks.size());
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  for (auto& [executor, fn] : tasks) {
    runtime.post(executor, [fn = std::move(fn), remaining, done] {
      fn();
      if (--*remaining == 0) done->set_value();
    });
  }
  finished.wait_for(kStopWait);
}

// A server thread. It owns a reference to the runtime: after stop() from a handler the thread
// still leaves run() after the server is gone.
void thread_main(std::shared_ptr<IoRuntime> runtime) {
  for (;;) {
    try {
      runtime->ioc.run();
      return;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "momentkv ipc: unexpected exception on a server thread: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "momentkv ipc: unexpected exception on a server thread\n");
    }
  }
}

}  // namespace

struct HttpServer::Impl {
  Impl(ServerOptions o, Handler handler)
      : runtime(std::make_shared<IoRuntime>()),
        shared(std::make_shared<ServerShared>()),
        accept_strand(asio::make_strand(runtime->ioc)),
        acceptor(accept_strand),
        retry_timer(accept_strand),
        n_threads(o.n_threads) {
    validate(o);
    check(static_cast<bool>(handler), "the HTTP handler is empty");
    shared->limits = o.limits;
    shared->allowed_uids = std::move(o.allowed_uids);
    shared->allowed_gids = std::move(o.allowed_gids);
    shared->handler = std::move(handler);
    listener = o.listen_fd >= 0 ? adopt_unix_listener(o.listen_fd)
                                : bind_unix_listener(o.socket_path, o.socket_mode);
    error_code ec;
    acceptor.assign(Protocol(), listener.fd, ec);
    if (ec) {
      remove_socket_file(listener);
      ::close(listener.fd);
      throw Error("cannot use the listening socket: " + ec.message());
    }
  }

  void do_accept() {
    if (!acceptor.is_open()) return;
    acceptor.async_accept(asio::make_strand(runtime->ioc),
                          [this](const error_code& ec, Protocol::socket socket) {
                            on_accept(ec, std::move(socket));
                          });
  }

  void on_accept(const error_code& ec, Protocol::socket socket) {
    if (!acceptor.is_open()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of descriptors or memory: retry later instead of spinning.
      std::fprintf(stderr, "momentkv ipc: accept failed: %s\n", ec.message().c_str());
      retry_timer.expires_after(kAcceptRetry);
      retry_timer.async_wait([this](const error_code& wait_ec) {
        if (!wait_ec) do_accept();
      });
      return;
    }
    try {
      const std::uint64_t id = ++next_id;
      auto conn = std::make_shared<HttpConnection>(std::move(socket), shared, runtime, id);
      // Admission happens here, in accept order, so the limit is exact.
      const bool admitted = shared->admit(id, conn);
      asio::post(conn->executor(), [conn, admitted] { conn->start(admitted); });
    } catch (const std::exception& e) {
      // Out of memory for one connection: drop it (its socket closes) and keep accepting.
      std::fprintf(stderr, "momentkv ipc: dropping a connection: %s\n", e.what());
    }
    do_accept();
  }

  void close_acceptor() {
    error_code ignored;
    acceptor.close(ignored);
    retry_timer.cancel();
  }

  // Closes the acceptor on its strand; waits for it unless called from a server thread.
  void close_acceptor_and_wait() {
    if (on_server_thread()) {
      runtime->post(accept_strand, [this] { close_acceptor(); });
      return;
    }
    std::vector<Task> tasks;
    tasks.emplace_back(accept_strand, [this] { close_acceptor(); });
    run_and_wait(*runtime, std::move(tasks));
  }

  bool on_server_thread() const {
    for (const auto& t : threads) {
      if (t.get_id() == std::this_thread::get_id()) return true;
    }
    return false;
  }

  // Declared first: destroyed after everything below that lives on its io_context.
  std::shared_ptr<IoRuntime> runtime;
  std::shared_ptr<ServerShared> shared;
  asio::strand<asio::io_context::executor_type> accept_strand;
  Protocol::acceptor acceptor;
  asio::steady_timer retry_timer;
  UnixListener listener;
  int n_threads;
  std::uint64_t next_id = 0;  // accept strand only

  std::mutex lifecycle;  // start / stop_accepting / stop
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  bool started = false;
  bool accepting = true;
  bool stopped = false;
};

HttpServer::HttpServer(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() {
  try {
    stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "momentkv ipc: stopping the server: %s\n", e.what());
  }
}

void HttpServer::start() {
  std::lock_guard lock(impl_->lifecycle);
  Impl& impl = *impl_;
  if (impl.started || impl.stopped) return;
  impl.started = true;
  impl.work.emplace(impl.runtime->ioc.get_executor());
  if (impl.accepting) impl.runtime->post(impl.accept_strand, [p = &impl] { p->do_accept(); });
  for (int i = 0; i < impl.n_threads; ++i) impl.threads.emplace_back(thread_main, impl.runtime);
}

void HttpServer::stop_accepting() {
  std::lock_guard lock(impl_->lifecycle);
  Impl& impl = *impl_;
  if (!impl.accepting || impl.stopped) return;
  impl.accepting = false;
  impl.shared->draining = true;
  if (!impl.started) {
    impl.close_acceptor();
    return;
  }
  impl.close_acceptor_and_wait();
  for (auto& conn : impl.shared->snapshot()) {
    impl.runtime->post(conn->executor(), [conn] { conn->drain(); });
  }
}

void HttpServer::stop() {
  std::lock_guard lock(impl_->lifecycle);
  Impl& impl = *impl_;
  if (impl.stopped) return;
  impl.stopped = true;
  impl.shared->draining = true;
  const bool on_server_thread = impl.on_server_thread();
  if (impl.started && !on_server_thread) {
    if (impl.accepting) impl.close_acceptor_and_wait();
    std::vector<Task> closes;
    for (auto& conn : impl.shared->snapshot()) {
      closes.emplace_back(conn->executor(), [conn] { conn->close(); });
    }
    run_and_wait(*impl.runtime, std::move(closes));
  }
  impl.accepting = false;
  impl.runtime->mark_stopped();
  impl.work.reset();
  impl.runtime->ioc.stop();
  for (auto& t : impl.threads) {
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();  // stop() from a handler: this thread leaves run() when its handler returns
    } else {
      t.join();
    }
  }
  impl.threads.clear();
  if (!on_server_thread) {
    // No server thread runs any more: whatever the bounded waits above missed is closed here.
    impl.close_acceptor();
    for (auto& conn : impl.shared->snapshot()) conn->close();
  }
  remove_socket_file(impl.listener);
}

int HttpServer::connections() const {
  return impl_->shared->count();
}

}  // namespace momentkv::ipc
