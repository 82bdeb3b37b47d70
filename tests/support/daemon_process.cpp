#include "tests/support/daemon_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace momentkv::test {

std::string momentkvd_binary() {
  return std::string(MOMENTKV_BINARY_DIR) + "/daemon/momentkvd";
}

DaemonProcess::DaemonProcess(const std::vector<std::string>& args, const std::string& name) {
  make_dir(name);
  socket_ = dir_ + "/d.sock";
  std::vector<std::string> all = {momentkvd_binary(), "--socket", socket_};
  // Telemetry goes to the test's directory unless the test names a database.
  if (std::find(args.begin(), args.end(), "--telemetry-db") == args.end()) {
    all.insert(all.end(), {"--telemetry-db", telemetry_db()});
  }
  all.insert(all.end(), args.begin(), args.end());
  start(std::move(all));
}

DaemonProcess::DaemonProcess(const Command& command, const std::string& name,
                             const std::vector<std::string>& env) {
  make_dir(name);
  socket_ = command.socket;
  start(command.argv, command.wait_ready, env);
}

void DaemonProcess::make_dir(const std::string& name) {
  std::random_device rd;
  dir_ = "/tmp/mkvd-" + name + "-" + std::to_string(rd() % 1000000);
  std::filesystem::create_directories(dir_);
}

void DaemonProcess::start(std::vector<std::string> all, bool wait_ready,
                          const std::vector<std::string>& env) {
  notify_path_ = dir_ + "/notify";
  log_path_ = dir_ + "/log.txt";
  notify_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, notify_path_.c_str(), sizeof(addr.sun_path) - 1);
  bind(notify_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  chmod(notify_path_.c_str(), 0666);  // a daemon run as another user (setpriv) may notify too
  std::vector<std::string> environment = env;  // copied before fork: the child only calls putenv
  started_at_ = Clock::now();
  pid_ = fork();
  if (pid_ == 0) {
    for (auto& e : environment) putenv(e.data());
    const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, 2);
    dup2(log, 1);
    setenv("NOTIFY_SOCKET", notify_path_.c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  if (wait_ready) ready_ = wait_notification("READY=1", 20000);
}

DaemonProcess::~DaemonProcess() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (notify_fd_ >= 0) close(notify_fd_);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void DaemonProcess::signal(int sig) const {
  kill(pid_, sig);
}

int DaemonProcess::wait(int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!exited_ && std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exited_ ? exit_code_ : -1;
}

void DaemonProcess::drain(int timeout_ms) {
  pollfd p{notify_fd_, POLLIN, 0};
  while (poll(&p, 1, timeout_ms) > 0) {
    char buf[4096];
    const ssize_t n = recv(notify_fd_, buf, sizeof buf, 0);
    if (n <= 0) break;
    messages_.emplace_back(buf, static_cast<size_t>(n));
    times_.push_back(Clock::now());
    timeout_ms = 0;
  }
}

const std::vector<std::string>& DaemonProcess::notifications() {
  drain(0);
  return messages_;
}

bool DaemonProcess::wait_notification(const std::string& text, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  size_t seen = 0;
  while (true) {
    drain(50);
    for (; seen < messages_.size(); ++seen) {
      if (messages_[seen].find(text) != std::string::npos) return true;
    }
    if (std::chrono::steady_clock::now() >= until) return false;
    int status = 0;
    if (!exited_ && waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (exited_) {
      drain(0);
      for (; seen < messages_.size(); ++seen) {
        if (messages_[seen].find(text) != std::string::npos) return true;
      }
      return false;
    }
  }
}

std::string DaemonProcess::log() const {
  std::ifstream in(log_path_);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace momentkv::test
