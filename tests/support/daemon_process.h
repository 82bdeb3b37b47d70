// Starts the real momentkvd binary on a temporary socket for integration tests, with a datagram
// NOTIFY_SOCKET that records the sd_notify messages it sends.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace momentkv::test {

class DaemonProcess {
 public:
  // Starts momentkvd with `args` (plus --socket, and --telemetry-db in its directory unless
  // `args` has one) and waits until it sends READY=1 (or exits).
  explicit DaemonProcess(const std::vector<std::string>& args, const std::string& name = "d");
  // A command line run as given (e.g. a unit's ExecStart behind systemd-socket-activate, which
  // passes NOTIFY_SOCKET on with `-E NOTIFY_SOCKET`); clients use `socket`. Waits for READY=1
  // unless `wait_ready` is false (socket activation starts the daemon on the first connection).
  struct Command {
    std::vector<std::string> argv;
    std::string socket;
    bool wait_ready = true;
  };
  // `env` (NAME=VALUE) is added to the daemon's environment.
  explicit DaemonProcess(const Command& command, const std::string& name = "d",
                         const std::vector<std::string>& env = {});
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  const std::string& socket() const { return socket_; }
  // The test's directory, and the telemetry database the daemon uses when the test names none.
  const std::string& dir() const { return dir_; }
  std::string telemetry_db() const { return dir_ + "/telemetry.db"; }
  bool ready() const { return ready_; }
  pid_t pid() const { return pid_; }
  // Sends a signal.
  void signal(int sig) const;
  // Waits for the process to exit (up to `timeout_ms`); its exit code, or -1.
  int wait(int timeout_ms);
  // Notify messages received so far (reads any pending ones first).
  const std::vector<std::string>& notifications();
  // When each of notifications() was received, and when the daemon was started (just before
  // fork and exec).
  using Clock = std::chrono::steady_clock;
  const std::vector<Clock::time_point>& notification_times() const { return times_; }
  Clock::time_point started_at() const { return started_at_; }
  // Waits up to timeout_ms for a notification containing `text`.
  bool wait_notification(const std::string& text, int timeout_ms);
  // What the daemon wrote to stderr.
  std::string log() const;

 private:
  void make_dir(const std::string& name);
  void start(std::vector<std::string> argv, bool wait_ready = true,
             const std::vector<std::string>& env = {});
  void drain(int timeout_ms);
  std::string dir_, socket_, notify_path_, log_path_;
  int notify_fd_ = -1;
  pid_t pid_ = -1;
  bool ready_ = false;
  bool exited_ = false;
  int exit_code_ = -1;
  std::vector<std::string> messages_;
  std::vector<Clock::time_point> times_;
  Clock::time_point started_at_;
};

// Path of the built momentkvd binary.
std::string momentkvd_binary();

}  // namespace momentkv::test
