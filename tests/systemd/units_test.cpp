// The systemd units as installed (`cmake --install` into a scratch DESTDIR): the layout,
// `systemd-analyze verify` (SD-1), `systemd-analyze security` exposure <= 2.0 with and without
// the Jetson GPU drop-in (SD-2), the life-cycle settings and how they agree with the daemon's
// defaults (socket path, stop deadline, MemoryMax= vs the memory budget), and the sysusers.d /
// tmpfiles.d files applied to a scratch root. Skipped only where systemd's tools are absent
// (scripts/setup.sh installs them).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "core/util/system_memory.h"
#include "daemon/daemon_config.h"
#include "tests/support/subprocess.h"
#include "tests/support/systemd_units.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

namespace fs = std::filesystem;
using test::UnitFile;

constexpr const char* kUnitDir = "/usr/lib/systemd/system";

class Units : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dest_ = new test::TempDir("mkv-units");
    test::install_into(root());
  }
  static void TearDownTestSuite() {
    delete dest_;
    dest_ = nullptr;
  }
  static std::string root() { return dest_->file(""); }
  static std::string installed(const std::string& path) { return root() + path; }
  static UnitFile service() {
    return UnitFile::load(installed(std::string(kUnitDir) + "/momentkvd.service"));
  }
  static UnitFile socket() {
    return UnitFile::load(installed(std::string(kUnitDir) + "/momentkvd.socket"));
  }
  static std::string tool(const std::string& name) {
    const std::string path = test::find_program(name);
    return path;
  }

 private:
  static test::TempDir* dest_;
};
test::TempDir* Units::dest_ = nullptr;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

TEST_F(Units, InstallPutsEveryFileInItsStandardPlaceUnderDestdir) {
  for (const char* path :
       {"/usr/bin/momentkvd", "/usr/bin/momentkv", "/usr/lib/systemd/system/momentkvd.service",
        "/usr/lib/systemd/system/momentkvd.socket", "/usr/lib/sysusers.d/momentkv.conf",
        "/usr/lib/tmpfiles.d/momentkv.conf", "/etc/momentkv/momentkvd.toml",
        "/usr/share/man/man8/momentkvd.8.gz", "/usr/share/man/man1/momentkv.1.gz",
        "/usr/share/momentkv/configs/orin-nano-8gb.toml",
        "/usr/share/momentkv/configs/agx-orin-64gb.toml",
        "/usr/share/momentkv/configs/cpu-server.toml",
        "/usr/share/momentkv/systemd/jetson-gpu.conf", "/usr/share/doc/momentkv/README.md"}) {
    EXPECT_TRUE(fs::is_regular_file(installed(path))) << path;
  }
  EXPECT_EQ(access(installed("/usr/bin/momentkvd").c_str(), X_OK), 0);
  // The installed files are the repository's (the default prefix /usr needs no rewriting).
  const std::string src = MOMENTKV_SOURCE_DIR;
  EXPECT_EQ(slurp(installed("/etc/momentkv/momentkvd.toml")),
            slurp(src + "/configs/momentkvd.toml"));
  EXPECT_EQ(slurp(installed("/usr/lib/systemd/system/momentkvd.service")),
            slurp(src + "/systemd/momentkvd.service"));
  EXPECT_EQ(slurp(installed("/usr/lib/sysusers.d/momentkv.conf")),
            slurp(src + "/systemd/momentkv.sysusers.conf"));
  // The installed binary runs and knows its options.
  const auto r = test::run_process({installed("/usr/bin/momentkvd"), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--check-config"), std::string::npos) << r.out;
}

TEST_F(Units, SystemdAnalyzeVerifyPasses) {
  const std::string analyze = tool("systemd-analyze");
  if (analyze.empty()) GTEST_SKIP() << "systemd-analyze is not installed (package systemd)";
  if (tool("man").empty()) GTEST_SKIP() << "man is not installed (package man-db)";
  // verify checks that ExecStart's binary exists ("run where the binary path exists"): the
  // copies name the installed binary under DESTDIR; everything else is the installed unit. The
  // Documentation= man pages are looked up in DESTDIR's man directory.
  test::TempDir dir("mkv-verify");
  const std::string unit = slurp(installed(std::string(kUnitDir) + "/momentkvd.service"));
  ASSERT_NE(unit.find("ExecStart=/usr/bin/momentkvd "), std::string::npos);
  write(dir.file("momentkvd.service"),
        replace_all(unit, "/usr/bin/momentkvd", installed("/usr/bin/momentkvd")));
  write(dir.file("momentkvd.socket"),
        slurp(installed(std::string(kUnitDir) + "/momentkvd.socket")));
  auto r =
      test::run_process({"/usr/bin/env", "MANPATH=" + installed("/usr/share/man"), analyze,
                         "verify", dir.file("momentkvd.service"), dir.file("momentkvd.socket")});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out + r.err, "") << "systemd-analyze verify printed warnings";

  // The check has teeth: a missing binary, an unknown setting and a missing man page are caught.
  write(dir.file("momentkvd.service"), unit);  // /usr/bin/momentkvd: not on this machine
  write(dir.file("broken.service"), "[Service]\nType=notify\nExecStart=/bin/true\nTyp=simple\n");
  if (!fs::exists("/usr/bin/momentkvd")) {
    r = test::run_process({"/usr/bin/env", "MANPATH=" + installed("/usr/share/man"), analyze,
                           "verify", dir.file("momentkvd.service")});
    EXPECT_NE(r.exit_code, 0) << "verify accepted a missing ExecStart binary";
  }
  r = test::run_process({analyze, "verify", dir.file("broken.service")});
  EXPECT_NE(r.out + r.err, "") << "verify accepted an unknown key";
  r = test::run_process({"/usr/bin/env", "MANPATH=" + dir.file("no-man"), analyze, "verify",
                         dir.file("momentkvd.socket")});
  EXPECT_NE(r.exit_code, 0) << "verify did not look up the Documentation= man page";
}

// `systemd-analyze security --offline=true --threshold=20` on the units under `root`: exit 0
// and the overall exposure, printed for the record.
double exposure(const std::string& analyze, const std::string& root, std::string* report) {
  const auto r = test::run_process({analyze, "security", "--offline=true", "--threshold=20",
                                    "--no-pager", "--root=" + root, "momentkvd.service"});
  *report = r.out + r.err;
  EXPECT_EQ(r.exit_code, 0) << *report;
  std::smatch m;
  const std::regex re(R"(Overall exposure level for momentkvd\.service: ([0-9]+\.[0-9]+))");
  if (!std::regex_search(*report, m, re)) {
    ADD_FAILURE() << "no exposure level in:\n" << *report;
    return 99;
  }
  return std::stod(m[1]);
}

TEST_F(Units, SecurityExposureIsAtMostTwo) {
  const std::string analyze = tool("systemd-analyze");
  if (analyze.empty()) GTEST_SKIP() << "systemd-analyze is not installed (package systemd)";
  std::string report;
  const double plain = exposure(analyze, root(), &report);
  std::printf("SD-2: systemd-analyze security momentkvd.service: exposure %.1f\n", plain);
  RecordProperty("exposure", std::to_string(plain));
  EXPECT_LE(plain, 2.0) << report;
  EXPECT_NE(report.find("Service runs under a static non-root user identity"), std::string::npos)
      << report;

  // With the Jetson drop-in in /etc/systemd/system/momentkvd.service.d/: the device nodes are
  // allowed (the drop-in is applied) and the exposure stays <= 2.0.
  test::TempDir jetson("mkv-jetson");
  fs::create_directories(jetson.file("usr/lib/systemd/system"));
  for (const char* unit : {"momentkvd.service", "momentkvd.socket"}) {
    fs::copy_file(installed(std::string(kUnitDir) + "/" + unit),
                  jetson.file(std::string("usr/lib/systemd/system/") + unit));
  }
  fs::create_directories(jetson.file("etc/systemd/system/momentkvd.service.d"));
  fs::copy_file(installed("/usr/share/momentkv/systemd/jetson-gpu.conf"),
                jetson.file("etc/systemd/system/momentkvd.service.d/jetson-gpu.conf"));
  const double gpu = exposure(analyze, jetson.file(""), &report);
  std::printf("SD-2: with the Jetson GPU drop-in: exposure %.1f\n", gpu);
  EXPECT_LE(gpu, 2.0) << report;
  EXPECT_GE(gpu, plain);
  for (const char* node : {"/dev/nvmap:rw", "/dev/nvgpu/igpu0/ctrl:rw", "/dev/host1x-fence:rw",
                           "/dev/nvhost-ctrl-gpu:rw"}) {
    EXPECT_NE(report.find(node), std::string::npos) << node << " not allowed:\n" << report;
  }
}

TEST_F(Units, ServiceLifeCycleMatchesTheDaemon) {
  const UnitFile s = service();
  EXPECT_EQ(s.get("Service", "Type"), "notify");
  EXPECT_EQ(s.get("Service", "NotifyAccess"), "main");
  EXPECT_EQ(s.get("Service", "Restart"), "on-failure");
  // 78 = EX_CONFIG, what momentkvd exits with for a bad config, model or budget.
  EXPECT_NE(test::split_command(s.get("Service", "RestartPreventExitStatus")).size(), 0u);
  bool has_78 = false;
  for (const auto& w : test::split_command(s.get("Service", "RestartPreventExitStatus"))) {
    has_78 = has_78 || w == "78";
  }
  EXPECT_TRUE(has_78);
  const auto reload = test::split_command(s.get("Service", "ExecReload"));
  ASSERT_EQ(reload.size(), 3u);
  EXPECT_EQ(reload[1], "-HUP");
  EXPECT_EQ(reload[2], "$MAINPID");
  EXPECT_TRUE(fs::exists(reload[0])) << reload[0];
  EXPECT_GT(test::parse_timespan_us(s.get("Service", "WatchdogSec")), 0u);
  EXPECT_EQ(s.get("Service", "RuntimeDirectory"), "momentkv");
  EXPECT_EQ(s.get("Service", "StateDirectory"), "momentkv");  // telemetry.db lives there
  EXPECT_EQ(s.get("Service", "ConfigurationDirectory"), "momentkv");
  EXPECT_EQ(s.get("Service", "User"), "momentkv");
  EXPECT_EQ(s.get("Service", "RestrictAddressFamilies"), "AF_UNIX");
  EXPECT_EQ(s.get("Service", "ProtectSystem"), "strict");

  // ExecStart: the installed binary with the installed configuration.
  const auto exec = test::split_command(s.get("Service", "ExecStart"));
  ASSERT_EQ(exec.size(), 3u);
  EXPECT_EQ(exec[0], "/usr/bin/momentkvd");
  EXPECT_EQ(exec[1], "--config");
  EXPECT_EQ(exec[2], "/etc/momentkv/momentkvd.toml");
  EXPECT_TRUE(fs::exists(installed(exec[2])));

  // The stop timeout covers the configured drain deadline plus the 2 s flush of last events.
  const DaemonConfig cfg = load_daemon_config(installed(exec[2]));
  EXPECT_GE(test::parse_timespan_us(s.get("Service", "TimeoutStopSec")),
            static_cast<uint64_t>(cfg.shutdown_deadline_ms + 2000) * 1000);

  // MemoryMax= fits the shipped budget with the headroom momentkvd demands (it would refuse to
  // start otherwise), and the config's comment names the same MemoryMax=.
  ASSERT_GT(cfg.memory_budget, 0u);
  const uint64_t memory_max = test::parse_systemd_bytes(s.get("Service", "MemoryMax"));
  EXPECT_GE(memory_max, memory_max_for_budget(cfg.memory_budget))
      << "MemoryMax=" << s.get("Service", "MemoryMax") << " is too small for budget "
      << cfg.memory_budget;
  SystemMemory limited;
  limited.cgroup = CgroupLimit{memory_max, "memory.max"};
  EXPECT_EQ(check_memory_budget(cfg.memory_budget, limited, 0), std::nullopt);
  EXPECT_NE(slurp(installed(exec[2])).find("MemoryMax=" + s.get("Service", "MemoryMax")),
            std::string::npos);
}

TEST_F(Units, SocketMatchesTheConfiguredPathAndGroup) {
  const UnitFile k = socket();
  const DaemonConfig cfg = load_daemon_config(installed("/etc/momentkv/momentkvd.toml"));
  EXPECT_EQ(k.get("Socket", "ListenStream"), cfg.socket_path);
  EXPECT_EQ(k.get("Socket", "ListenStream"), DaemonConfig{}.socket_path);
  EXPECT_EQ(k.get("Socket", "SocketMode"), "0660");
  EXPECT_EQ(k.get("Socket", "SocketGroup"), "momentkv");
  // The socket lives in the service's RuntimeDirectory, which must then survive a stop.
  EXPECT_EQ(fs::path(cfg.socket_path).parent_path(),
            fs::path("/run") / service().get("Service", "RuntimeDirectory"));
  EXPECT_EQ(service().get("Service", "RuntimeDirectoryPreserve"), "yes");
  // The group exists: sysusers.d creates it with the user.
  const std::string sysusers = slurp(installed("/usr/lib/sysusers.d/momentkv.conf"));
  EXPECT_TRUE(std::regex_search(sysusers, std::regex(R"((^|\n)u\s+momentkv\s)"))) << sysusers;
}

TEST_F(Units, SysusersAndTmpfilesCreateTheUserAndDirectories) {
  const std::string sysusers = tool("systemd-sysusers");
  const std::string tmpfiles = tool("systemd-tmpfiles");
  if (sysusers.empty() || tmpfiles.empty()) {
    GTEST_SKIP() << "systemd-sysusers / systemd-tmpfiles are not installed (package systemd)";
  }
  if (geteuid() != 0) GTEST_SKIP() << "tmpfiles --root chowns: needs root (CI runs as root)";
  test::TempDir scratch("mkv-sysroot");
  const std::string r = scratch.file("");
  fs::create_directories(scratch.file("etc"));
  // systemd 252 reads a configuration file named on the command line from the host's tree.
  auto res =
      test::run_process({sysusers, "--root=" + r, installed("/usr/lib/sysusers.d/momentkv.conf")});
  ASSERT_EQ(res.exit_code, 0) << res.err;
  const std::string passwd = slurp(scratch.file("etc/passwd"));
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(passwd, m,
                        std::regex(R"((^|\n)momentkv:x:([0-9]+):([0-9]+):[^:]*:/var/lib/momentkv:)"
                                   R"(/usr/sbin/nologin)")))
      << passwd;
  const unsigned uid = static_cast<unsigned>(std::stoul(m[2]));
  EXPECT_LT(uid, 1000u) << "not a system user";
  EXPECT_NE(slurp(scratch.file("etc/group")).find("momentkv:x:" + m[3].str()), std::string::npos);

  res = test::run_process(
      {tmpfiles, "--root=" + r, "--create", installed("/usr/lib/tmpfiles.d/momentkv.conf")});
  ASSERT_EQ(res.exit_code, 0) << res.err;
  for (const char* dir : {"run/momentkv", "var/lib/momentkv", "var/lib/momentkv/models"}) {
    struct stat st {};
    ASSERT_EQ(stat(scratch.file(dir).c_str(), &st), 0) << dir;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0750u) << dir;
    EXPECT_EQ(st.st_uid, uid) << dir;
  }
}

}  // namespace
}  // namespace momentkv
