// The installed units driven the way systemd drives them, without PID 1: ExecStart= is read
// from the installed momentkvd.service (`cmake --install` into a scratch DESTDIR), the binary and
// the configuration it names are replaced by the installed binary and a copy of the installed
// configuration whose model and socket point at this test, and it runs behind
// systemd-socket-activate on the socket unit's ListenStream= (substituted for a temp path) with
// a datagram NOTIFY_SOCKET and the unit's WatchdogSec= (SD-3, SD-4 in part, SD-5, SD-7, SD-10).
// The first connection starts it, READY=1 comes once, WATCHDOG=1 follows, ExecReload= reloads,
// SIGTERM stops within TimeoutStopSec=. A bad configuration or a budget larger than MemAvailable
// exits 78 with STATUS=. Under strace, every system call the daemon makes while it serves is one
// the unit's SystemCallFilter= allows.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "ipc/unix_http_client.h"
#include "tests/support/daemon_process.h"
#include "tests/support/sanitizers.h"
#include "tests/support/subprocess.h"
#include "tests/support/systemd_units.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::DaemonProcess;
using test::UnitFile;

constexpr const char* kUnitDir = "/usr/lib/systemd/system";

std::string quote(const std::string& s) {
  std::string q(1, '"');
  return q.append(s).append(1, '"');
}

class Service : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dest_ = new test::TempDir("mkv-svc");
    test::install_into(dest_->file(""));
  }
  static void TearDownTestSuite() {
    delete dest_;
    dest_ = nullptr;
  }
  static std::string installed(const std::string& path) { return dest_->file("") + path; }
  static UnitFile service() {
    return UnitFile::load(installed(std::string(kUnitDir) + "/momentkvd.service"));
  }
  static UnitFile socket_unit() {
    return UnitFile::load(installed(std::string(kUnitDir) + "/momentkvd.socket"));
  }

  // The unit's ExecStart= with the installed binary and `config` in place of the paths it names.
  static std::vector<std::string> exec_start(const std::string& config) {
    auto argv = test::split_command(service().get("Service", "ExecStart"));
    EXPECT_GE(argv.size(), 3u);
    for (auto& a : argv) {
      if (a == "/usr/bin/momentkvd") {
        a = installed(a);
      } else if (a == "/etc/momentkv/momentkvd.toml") {
        a = config;
      }
    }
    EXPECT_EQ(argv[0], installed("/usr/bin/momentkvd"));
    EXPECT_NE(std::find(argv.begin(), argv.end(), config), argv.end());
    return argv;
  }

  // The installed configuration with model.path, server.socket and model.threads set for this
  // test and `edits` ("section.key" -> TOML value) applied, each to exactly one line of its own
  // section (a key such as `path` exists in several sections: [model] and [telemetry]);
  // written to `path`.
  static std::string write_config(const std::string& path, const std::string& socket,
                                  std::map<std::string, std::string> edits = {}) {
    edits.emplace("model.path", quote(model()));
    edits.emplace("server.socket", quote(socket));
    edits.emplace("model.threads", "1");
    std::map<std::string, int> applied;
    std::istringstream in(test::read_file(installed("/etc/momentkv/momentkvd.toml")));
    std::ostringstream out;
    std::string line, section;
    const std::regex header(R"(^\[([a-z_]+)\]\s*$)"), assignment(R"(^([a-z_]+)\s*=)");
    while (std::getline(in, line)) {
      std::smatch m;
      if (std::regex_search(line, m, header)) {
        section = m[1];
      } else if (std::regex_search(line, m, assignment)) {
        const auto edit = edits.find(section + "." + m[1].str());
        if (edit != edits.end()) {
          line = m[1].str();
          line.append(" = ").append(edit->second);
          ++applied[edit->first];
        }
      }
      out << line << "\n";
    }
    for (const auto& [key, value] : edits) {
      EXPECT_EQ(applied[key], 1) << key << " is not set once in the installed configuration";
    }
    std::ofstream(path) << out.str();
    return path;
  }

  static std::string model() { return test::model_path("stories260K/stories260K.gguf"); }

 private:
  static test::TempDir* dest_;
};
test::TempDir* Service::dest_ = nullptr;

int count(DaemonProcess& d, const std::string& text) {
  int n = 0;
  for (const auto& m : d.notifications()) {
    if (m.find(text) != std::string::npos) ++n;
  }
  return n;
}

bool wait_count(DaemonProcess& d, const std::string& text, int n, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (count(d, text) < n) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

int complete(const std::string& socket) {
  const auto r = ipc::unix_http(socket, "POST", "/v1/completions",
                                json{{"prompt", "Once"}, {"max_tokens", 4}}.dump());
  return r.status;
}

TEST_F(Service, ExecStartUnderSocketActivationNotifiesReloadsAndStops) {
  const std::string activate = test::find_program("systemd-socket-activate");
  if (activate.empty()) GTEST_SKIP() << "systemd-socket-activate is not installed";
  const UnitFile s = service();
  const UnitFile k = socket_unit();
  test::TempDir dir("mkv-activate");
  // ListenStream=/run/momentkv/momentkvd.sock, substituted. The configuration names another
  // path: an activated daemon must not bind it.
  ASSERT_EQ(k.get("Socket", "ListenStream"), "/run/momentkv/momentkvd.sock");
  const std::string listen = dir.file("momentkvd.sock");
  const std::string config = write_config(dir.file("momentkvd.toml"), dir.file("unused.sock"));
  const uint64_t watchdog_us = test::parse_timespan_us(s.get("Service", "WatchdogSec"));
  ASSERT_GT(watchdog_us, 0u);
  // What systemd would pass: the socket as fd 3 named by FileDescriptorName=, NOTIFY_SOCKET,
  // WATCHDOG_USEC from WatchdogSec=, STATE_DIRECTORY from StateDirectory= (a temp dir here).
  std::vector<std::string> argv = {activate, "-l", listen};
  argv.push_back("--fdname=" + k.get("Socket", "FileDescriptorName"));
  for (const std::string& env :
       {std::string("NOTIFY_SOCKET"), "WATCHDOG_USEC=" + std::to_string(watchdog_us),
        "STATE_DIRECTORY=" + dir.file("")}) {
    argv.push_back("-E");
    argv.push_back(env);
  }
  const auto exec = exec_start(config);
  argv.insert(argv.end(), exec.begin(), exec.end());
  DaemonProcess d(DaemonProcess::Command{argv, listen, false}, "unit");

  // The socket exists before the daemon; the first connection starts it and is served once it
  // is ready.
  for (int i = 0; i < 250 && !fs::exists(listen); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(fs::exists(listen));
  const auto t0 = std::chrono::steady_clock::now();
  int first_status = 0;
  std::thread first([&] { first_status = complete(listen); });
  const bool ready = d.wait_notification("READY=1", 20000);
  const auto ms_to_ready =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  first.join();
  ASSERT_TRUE(ready) << d.log();
  std::printf("SD-3: READY=1 %lld ms after the first connection\n",
              static_cast<long long>(ms_to_ready));
  EXPECT_EQ(first_status, 200) << d.log();
  EXPECT_EQ(count(d, "READY=1"), 1);
  EXPECT_GE(count(d, "STATUS="), 2);  // loading, then serving
  EXPECT_EQ(count(d, "STATUS=serving"), 1);
  EXPECT_NE(d.log().find("on an activated socket"), std::string::npos) << d.log();
  EXPECT_FALSE(fs::exists(dir.file("unused.sock"))) << "an activated daemon bound its own socket";
  if (fs::exists(std::string(MOMENTKV_SOURCE_DIR) + "/daemon/telemetry")) {
    EXPECT_TRUE(fs::exists(dir.file("telemetry.db"))) << "not in $STATE_DIRECTORY: " << d.log();
  }

  // WATCHDOG=1 keeps coming while idle (the loop pings every 250 ms).
  EXPECT_TRUE(wait_count(d, "WATCHDOG=1", 3, 3000)) << count(d, "WATCHDOG=1") << " pings";

  // ExecReload= with $MAINPID: systemd-socket-activate execs the daemon in its own process.
  auto reload = test::split_command(s.get("Service", "ExecReload"));
  for (auto& a : reload) {
    if (a == "$MAINPID") a = std::to_string(d.pid());
  }
  const auto r = test::run_process(reload);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(d.wait_notification("RELOADING=1", 5000)) << d.log();
  EXPECT_TRUE(wait_count(d, "READY=1", 2, 5000)) << d.log();
  EXPECT_EQ(complete(listen), 200);

  // systemd stops it with SIGTERM (no KillSignal= set) and waits TimeoutStopSec=.
  EXPECT_EQ(s.get("Service", "KillSignal"), "");
  const auto stop_ms =
      static_cast<int>(test::parse_timespan_us(s.get("Service", "TimeoutStopSec")) / 1000);
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(stop_ms), 0) << d.log();
  EXPECT_EQ(count(d, "STOPPING=1"), 1);
  EXPECT_EQ(test::read_file(model()).substr(0, 4), "GGUF") << "the shared model was written to";
}

TEST_F(Service, ExecStartExits78WithStatusOnABadConfigOrAnUnmeetableBudget) {
  const UnitFile s = service();
  const auto prevent = test::split_command(s.get("Service", "RestartPreventExitStatus"));
  EXPECT_NE(std::find(prevent.begin(), prevent.end(), "78"), prevent.end());
  test::TempDir dir("mkv-78");
  {
    const std::string config =
        write_config(dir.file("bad.toml"), dir.file("d.sock"), {{"kv.alpha", "7"}});
    DaemonProcess d(DaemonProcess::Command{exec_start(config), dir.file("d.sock")}, "bad");
    EXPECT_FALSE(d.ready());
    EXPECT_EQ(d.wait(10000), 78) << d.log();
    EXPECT_EQ(count(d, "STATUS=failed"), 1) << d.log();
    EXPECT_EQ(count(d, "kv.alpha"), 1) << d.log();
  }
  {
    // 1 PiB: more than any test machine has available.
    const std::string config = write_config(dir.file("huge.toml"), dir.file("d.sock"),
                                            {{"memory.budget", "\"1048576GiB\""}});
    DaemonProcess d(DaemonProcess::Command{exec_start(config), dir.file("d.sock")}, "huge");
    EXPECT_FALSE(d.ready());
    EXPECT_EQ(d.wait(10000), 78) << d.log();
    EXPECT_EQ(count(d, "STATUS=failed: memory budget"), 1) << d.log();
    EXPECT_EQ(count(d, "(1125899906842624 bytes) cannot be met: MemAvailable"), 1) << d.log();
    EXPECT_NE(d.log().find("memory: MemTotal "), std::string::npos) << d.log();
    EXPECT_FALSE(fs::exists(dir.file("d.sock")));
  }
}

// Every system call in `group` (e.g. "@system-service"), nested groups expanded, from
// `systemd-analyze syscall-filter`'s listing.
std::set<std::string> expand(const std::map<std::string, std::vector<std::string>>& groups,
                             const std::string& name) {
  std::set<std::string> out;
  if (name.empty() || name[0] != '@') {
    out.insert(name);
    return out;
  }
  const auto it = groups.find(name);
  EXPECT_NE(it, groups.end()) << "unknown syscall group " << name;
  if (it == groups.end()) return out;
  for (const auto& member : it->second) {
    const auto sub = expand(groups, member);
    out.insert(sub.begin(), sub.end());
  }
  return out;
}

std::map<std::string, std::vector<std::string>> syscall_groups(const std::string& analyze) {
  const auto r = test::run_process({analyze, "syscall-filter", "--no-pager"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::vector<std::string>> groups;
  std::istringstream in(r.out);
  std::string line, current;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '@') {
      current = line.substr(0, line.find_first_of(" \t"));
      groups[current];
    } else if (!line.empty() && line[0] != ' ') {
      current.clear();  // the "unlisted system calls" section: not a group
    } else if (!current.empty()) {
      const auto first = line.find_first_not_of(' ');
      if (first == std::string::npos || line[first] == '#') continue;
      groups[current].push_back(line.substr(first, line.find_last_not_of(" \t") - first + 1));
    }
  }
  return groups;
}

// The set a SystemCallFilter= list allows: the allow list (plus @default, which systemd adds to
// every allow list) minus every ~deny list after it.
std::set<std::string> allowed_syscalls(const std::string& analyze, const UnitFile& unit) {
  const auto groups = syscall_groups(analyze);
  std::set<std::string> allowed = expand(groups, "@default");
  std::set<std::string> denied;
  for (const auto& value : unit.all("Service", "SystemCallFilter")) {
    const bool deny = !value.empty() && value[0] == '~';
    for (const auto& word : test::split_command(deny ? value.substr(1) : value)) {
      const auto set = expand(groups, word);
      (deny ? denied : allowed).insert(set.begin(), set.end());
    }
  }
  for (const auto& s : denied) allowed.erase(s);
  return allowed;
}

// System call names from `strace -c` summary output.
std::set<std::string> traced_syscalls(const std::string& summary) {
  std::set<std::string> names;
  std::istringstream in(summary);
  std::string line;
  int separators = 0;
  while (std::getline(in, line)) {
    if (line.rfind("------", 0) == 0) {
      ++separators;
      continue;
    }
    if (separators != 1) continue;
    std::istringstream words(line);
    std::string word, last;
    while (words >> word) last = word;
    if (!last.empty()) names.insert(last);
  }
  return names;
}

TEST_F(Service, EverySyscallTheDaemonMakesIsInTheUnitsSystemCallFilter) {
  const std::string analyze = test::find_program("systemd-analyze");
  const std::string strace = test::find_program("strace");
  if (analyze.empty() || strace.empty()) {
    GTEST_SKIP() << "systemd-analyze or strace is not installed (scripts/setup.sh installs both)";
  }
  const UnitFile s = service();
  const std::set<std::string> allowed = allowed_syscalls(analyze, s);
  ASSERT_GT(allowed.count("read"), 0u);
  EXPECT_EQ(allowed.count("setuid"), 0u) << "~@privileged not applied";
  EXPECT_EQ(allowed.count("sched_setaffinity"), 0u) << "~@resources not applied";

  test::TempDir dir("mkv-strace");
  const std::string sock = dir.file("d.sock");
  const std::string config = write_config(dir.file("momentkvd.toml"), sock);
  // StateDirectory=momentkv: systemd sets STATE_DIRECTORY, where the telemetry database goes,
  // so SQLite's system calls are traced too. User=momentkv: as root, the daemon runs as nobody
  // (setpriv, before strace so that its own calls are not traced); some calls depend on the
  // identity (SQLite fchowns its files only as root).
  std::vector<std::string> argv = {"/usr/bin/env", "STATE_DIRECTORY=" + dir.file("")};
  if (test::kAddressSanitizer) {
    // LeakSanitizer cannot run under ptrace: at exit it would fail the daemon, not find a leak.
    const char* asan = std::getenv("ASAN_OPTIONS");
    argv.push_back(std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":detect_leaks=0");
  }
  if (geteuid() == 0) {
    const std::string setpriv = test::find_program("setpriv");
    ASSERT_FALSE(setpriv.empty()) << "setpriv (util-linux) is missing";
    fs::permissions(dir.file(""), fs::perms::all);  // nobody writes the socket and the database
    argv.insert(argv.end(), {setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"});
  }
  argv.insert(argv.end(), {strace, "-f", "-qq", "-c", "-o", dir.file("strace.txt"), "--"});
  const auto exec = exec_start(config);
  argv.insert(argv.end(), exec.begin(), exec.end());
  DaemonProcess d(DaemonProcess::Command{argv, sock}, "strace");
  ASSERT_TRUE(d.ready()) << d.log();
  // The daemon is strace's child (env and setpriv exec the next program in their process).
  const std::string children = test::read_file("/proc/" + std::to_string(d.pid()) + "/task/" +
                                               std::to_string(d.pid()) + "/children");
  const pid_t daemon = static_cast<pid_t>(std::atol(children.c_str()));
  ASSERT_GT(daemon, 0) << children;

  // Serve what a client does: completions plain and streamed, chat, the status endpoints,
  // a reload; then stop.
  EXPECT_EQ(complete(sock), 200);
  auto r = ipc::unix_http(sock, "POST", "/v1/completions",
                          json{{"prompt", "Once"}, {"max_tokens", 4}, {"stream", true}}.dump());
  EXPECT_EQ(r.status, 200);
  r = ipc::unix_http(
      sock, "POST", "/v1/chat/completions",
      json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}}.dump());
  EXPECT_EQ(r.status, 200);
  for (const char* path : {"/health", "/metrics", "/v1/models"}) {
    EXPECT_EQ(ipc::unix_http(sock, "GET", path, "").status, 200) << path;
  }
  kill(daemon, SIGHUP);
  EXPECT_TRUE(wait_count(d, "READY=1", 2, 10000)) << d.log();
  EXPECT_EQ(complete(sock), 200);
  kill(daemon, SIGTERM);
  EXPECT_EQ(d.wait(20000), 0) << d.log();

  if (fs::exists(std::string(MOMENTKV_SOURCE_DIR) + "/daemon/telemetry")) {
    EXPECT_TRUE(fs::exists(dir.file("telemetry.db"))) << d.log();
  }
  const std::string summary = test::read_file(dir.file("strace.txt"));
  const std::set<std::string> used = traced_syscalls(summary);
  ASSERT_GT(used.count("execve"), 0u) << summary;
  EXPECT_GT(used.count("accept4") + used.count("accept"), 0u) << summary;
  std::string outside;
  for (const auto& name : used) {
    if (name != "total" && !allowed.count(name)) outside += " " + name;
  }
  std::printf("%zu distinct system calls traced, all in SystemCallFilter=%s\n", used.size(),
              outside.empty() ? "" : " except:");
  EXPECT_EQ(outside, "") << "the unit's SystemCallFilter= would deny (EPERM):" << outside << "\n"
                         << summary;
}

}  // namespace
}  // namespace momentkv
