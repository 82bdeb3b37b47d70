// The .deb: `cpack -G DEB` builds it from this build tree; `dpkg-deb` shows the expected files,
// Debian dependencies, the conffile and the maintainer scripts; `dpkg --root` installs it into a
// scratch root whose package database holds this machine's packages that satisfy its
// dependencies (so a missing or misnamed dependency fails), running the maintainer scripts
// against that root (--force-script-chrootless, $DPKG_ROOT): the user and directories appear,
// nothing is enabled; then a purge removes it. Skipped where cpack/dpkg-deb/dpkg are absent or
// not root (dpkg must own the files it unpacks; CI runs as root).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "tests/support/subprocess.h"
#include "tests/support/systemd_units.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

namespace fs = std::filesystem;

struct Tools {
  std::string cpack, dpkg_deb, dpkg;
};

// Builds the package into `dir`; its path.
std::string build_deb(const Tools& t, const std::string& dir) {
  const auto r = test::run_process({t.cpack, "-G", "DEB", "-B", dir, "--config",
                                    std::string(MOMENTKV_BINARY_DIR) + "/CPackConfig.cmake"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".deb") return e.path().string();
  }
  ADD_FAILURE() << "cpack made no .deb:\n" << r.out << r.err;
  return "";
}

// Package names in a Depends: field ("a (>= 1), b | c" -> a, b, c).
std::set<std::string> dependency_names(const std::string& depends) {
  std::set<std::string> names;
  const std::regex name(R"((^|[,|])\s*([a-z0-9][a-z0-9+.-]+))");
  for (std::sregex_iterator it(depends.begin(), depends.end(), name), end; it != end; ++it) {
    names.insert((*it)[2]);
  }
  return names;
}

// A dpkg database for a scratch root holding the stanzas of this machine's installed packages
// named in `names` (with empty file lists), so dpkg checks the dependencies for real.
void make_admindir(const std::string& root, const std::set<std::string>& names) {
  const std::string admin = root + "/var/lib/dpkg";
  for (const char* d : {"info", "updates", "triggers"}) fs::create_directories(admin + "/" + d);
  std::ofstream(admin + "/available").flush();
  std::istringstream status(test::read_file("/var/lib/dpkg/status"));
  std::ofstream out(admin + "/status");
  std::string stanza, line;
  auto flush = [&] {
    std::smatch m;
    std::regex_search(stanza, m, std::regex(R"((^|\n)Package: (\S+))"));
    if (m.size() > 2 && names.count(m[2])) {
      out << stanza << "\n";
      std::smatch a;
      std::string list = m[2];
      if (stanza.find("\nMulti-Arch: same") != std::string::npos &&
          std::regex_search(stanza, a, std::regex(R"(\nArchitecture: (\S+))"))) {
        list.append(":").append(a[1].str());
      }
      std::ofstream(admin + "/info/" + list + ".list").flush();
    }
    stanza.clear();
  };
  while (std::getline(status, line)) {
    if (line.empty()) {
      flush();
    } else {
      stanza += line + "\n";
    }
  }
  flush();
}

class DebPackage : public ::testing::Test {
 protected:
  void SetUp() override {
    t_.cpack = test::cmake_cache("CMAKE_CPACK_COMMAND");
    t_.dpkg_deb = test::find_program("dpkg-deb");
    t_.dpkg = test::find_program("dpkg");
    if (t_.cpack.empty() || t_.dpkg_deb.empty() || t_.dpkg.empty()) {
      GTEST_SKIP() << "cpack, dpkg-deb or dpkg missing (a Debian machine has them)";
    }
  }
  Tools t_;
};

TEST_F(DebPackage, BuildsWithTheExpectedFilesDependenciesAndScripts) {
  test::TempDir out("mkv-deb");
  const std::string deb = build_deb(t_, out.file(""));
  ASSERT_FALSE(deb.empty());
  EXPECT_TRUE(std::regex_search(fs::path(deb).filename().string(),
                                std::regex(R"(^momentkv_[0-9.]+-1_[a-z0-9]+\.deb$)")))
      << deb;

  auto r = test::run_process({t_.dpkg_deb, "--contents", deb});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("dpkg-deb --contents %s\n%s", fs::path(deb).filename().c_str(), r.out.c_str());
  for (const char* path :
       {"./usr/bin/momentkvd", "./usr/bin/momentkv", "./usr/lib/systemd/system/momentkvd.service",
        "./usr/lib/systemd/system/momentkvd.socket", "./usr/lib/sysusers.d/momentkv.conf",
        "./usr/lib/tmpfiles.d/momentkv.conf", "./etc/momentkv/momentkvd.toml",
        "./usr/share/man/man8/momentkvd.8.gz", "./usr/share/man/man1/momentkv.1.gz",
        "./usr/share/momentkv/configs/orin-nano-8gb.toml",
        "./usr/share/momentkv/configs/agx-orin-64gb.toml",
        "./usr/share/momentkv/configs/cpu-server.toml",
        "./usr/share/momentkv/systemd/jetson-gpu.conf"}) {
    EXPECT_NE(r.out.find(std::string(" ") + path + "\n"), std::string::npos) << path;
  }
  EXPECT_EQ(r.out.find("/usr/local/"), std::string::npos) << "installed under /usr/local";
  EXPECT_TRUE(
      std::regex_search(r.out, std::regex(R"(-rwxr-xr-x root/root .* ./usr/bin/momentkvd)")));

  // Fields: Debian package names, computed by dpkg-shlibdeps or listed by hand.
  r = test::run_process({t_.dpkg_deb, "--field", deb, "Package", "Depends", "Maintainer"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("%s", r.out.c_str());
  EXPECT_NE(r.out.find("Package: momentkv\n"), std::string::npos);
  const auto depends = test::run_process({t_.dpkg_deb, "--field", deb, "Depends"}).out;
  EXPECT_NE(depends.find("systemd-sysusers | adduser"), std::string::npos) << depends;
  std::vector<std::string> required = {"libc6", "libstdc++6", "libgcc-s1", "libpcre2-8-0"};
  if (fs::exists(std::string(MOMENTKV_SOURCE_DIR) + "/daemon/telemetry")) {
    required.push_back("libsqlite3-0");  // the telemetry database
  }
  const auto names = dependency_names(depends);
  for (const auto& dep : required) EXPECT_TRUE(names.count(dep)) << dep << ": " << depends;

  // Control archive: the conffile and the maintainer scripts, executable.
  test::TempDir control("mkv-deb-control");
  r = test::run_process({t_.dpkg_deb, "--control", deb, control.file("DEBIAN")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_file(control.file("DEBIAN/conffiles")), "/etc/momentkv/momentkvd.toml\n");
  for (const char* script : {"postinst", "prerm", "postrm"}) {
    EXPECT_EQ(access(control.file(std::string("DEBIAN/") + script).c_str(), X_OK), 0) << script;
  }
  // Nothing the operator did not ask for: no script enables or starts a unit (try-restart
  // restarts only a service that runs).
  for (const char* script : {"postinst", "prerm", "postrm"}) {
    std::istringstream in(test::read_file(control.file(std::string("DEBIAN/") + script)));
    std::string line;
    while (std::getline(in, line)) {
      if (line.find_first_not_of(' ') != std::string::npos &&
          line[line.find_first_not_of(' ')] == '#') {
        continue;
      }
      EXPECT_FALSE(
          std::regex_search(line, std::regex(R"((^|\s)(enable|start|restart|reenable)(\s|$))")))
          << script << ": " << line;
    }
  }
}

TEST_F(DebPackage, InstallsIntoAScratchRootAndPurges) {
  if (geteuid() != 0) GTEST_SKIP() << "dpkg --root needs root to own the unpacked files";
  test::TempDir out("mkv-deb");
  const std::string deb = build_deb(t_, out.file(""));
  ASSERT_FALSE(deb.empty());
  auto r = test::run_process({t_.dpkg_deb, "--field", deb, "Depends"});
  ASSERT_EQ(r.exit_code, 0);
  test::TempDir root("mkv-deb-root");
  const std::string R = root.file("");
  make_admindir(R, dependency_names(r.out));

  r = test::run_process({t_.dpkg, "--root=" + R, "--force-script-chrootless", "--install", deb});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = test::run_process({"/usr/bin/dpkg-query", "--admindir=" + R + "/var/lib/dpkg", "-W",
                         "-f=${Status}|${Conffiles}", "momentkv"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("install ok installed|", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("/etc/momentkv/momentkvd.toml"), std::string::npos) << r.out;

  EXPECT_TRUE(fs::is_regular_file(R + "/usr/bin/momentkvd"));
  EXPECT_TRUE(fs::is_regular_file(R + "/etc/momentkv/momentkvd.toml"));
  // The postinst created the user and the directories in the root, and enabled nothing.
  if (!test::find_program("systemd-sysusers").empty()) {
    EXPECT_TRUE(std::regex_search(test::read_file(R + "/etc/passwd"),
                                  std::regex(R"((^|\n)momentkv:x:[0-9]+:)")));
    EXPECT_TRUE(fs::is_directory(R + "/var/lib/momentkv/models"));
    EXPECT_TRUE(fs::is_directory(R + "/run/momentkv"));
  }
  EXPECT_FALSE(fs::exists(R + "/etc/systemd/system")) << "the package enabled a unit";

  r = test::run_process(
      {t_.dpkg, "--root=" + R, "--force-script-chrootless", "--purge", "momentkv"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(fs::exists(R + "/usr/bin/momentkvd"));
  EXPECT_FALSE(fs::exists(R + "/etc/momentkv"));
  EXPECT_FALSE(fs::exists(R + "/var/lib/momentkv"));
  EXPECT_FALSE(fs::exists(R + "/run/momentkv"));
}

}  // namespace
}  // namespace momentkv
