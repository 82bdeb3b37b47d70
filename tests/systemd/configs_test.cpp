// Every file in configs/ (the default and the board profiles) passes `momentkvd --check-config`,
// listens where the socket unit does, and names in its comments a MemoryMax= under which its
// memory budget fits with the headroom momentkvd demands (so the daemon would not refuse to
// start under it), with the stated minimum equal to what momentkvd computes.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>

#include "core/util/system_memory.h"
#include "daemon/daemon_config.h"
#include "tests/support/daemon_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/systemd_units.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> config_files() {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(std::string(MOMENTKV_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() == ".toml") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The comment lines of a TOML file joined into one text ("# " prefixes dropped).
std::string comments(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto hash = line.find('#');
    if (hash == std::string::npos) continue;
    out += line.substr(hash + 1) + " ";
  }
  return out;
}

TEST(Configs, TheDefaultAndEveryBoardProfileArePresent) {
  std::set<std::string> names;
  for (const auto& f : config_files()) names.insert(fs::path(f).filename().string());
  for (const char* expected :
       {"momentkvd.toml", "orin-nano-8gb.toml", "agx-orin-64gb.toml", "cpu-server.toml"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
}

TEST(Configs, EveryFilePassesCheckConfig) {
  for (const auto& file : config_files()) {
    const auto r = test::run_process({test::momentkvd_binary(), "--check-config", file});
    EXPECT_EQ(r.exit_code, 0) << file << ": " << r.err;
    EXPECT_EQ(r.out, file + ": ok\n");
  }
}

TEST(Configs, EveryFileListensWhereTheSocketUnitDoes) {
  const auto unit =
      test::UnitFile::load(std::string(MOMENTKV_SOURCE_DIR) + "/systemd/momentkvd.socket");
  for (const auto& file : config_files()) {
    EXPECT_EQ(load_daemon_config(file).socket_path, unit.get("Socket", "ListenStream")) << file;
  }
}

TEST(Configs, EveryFileNamesAMemoryMaxItsBudgetFits) {
  const std::regex memory_max(R"(MemoryMax=([0-9]+[KMG]?))");
  const std::regex at_least(R"(at\s+least\s+([0-9]+)M\b)");
  const std::regex needs(R"(needs\s+>=\s+([0-9]+)M\b)");
  for (const auto& file : config_files()) {
    SCOPED_TRACE(file);
    const DaemonConfig cfg = load_daemon_config(file);
    ASSERT_GT(cfg.memory_budget, 0u) << "every shipped config sets [memory] budget";
    const std::string text = comments(test::read_file(file));
    int named = 0;
    for (std::sregex_iterator it(text.begin(), text.end(), memory_max), end; it != end; ++it) {
      ++named;
      const uint64_t limit = test::parse_systemd_bytes((*it)[1]);
      SystemMemory under;
      under.cgroup = CgroupLimit{limit, "memory.max"};
      EXPECT_EQ(check_memory_budget(cfg.memory_budget, under, 0), std::nullopt)
          << "MemoryMax=" << (*it)[1] << " is too small for the budget";
    }
    EXPECT_GE(named, 1) << "no MemoryMax= named in the comments";
    std::smatch m;
    if (std::regex_search(text, m, at_least) || std::regex_search(text, m, needs)) {
      EXPECT_EQ(std::stoull(m[1]) << 20, memory_max_for_budget(cfg.memory_budget))
          << "the stated minimum MemoryMax= is not what momentkvd computes";
    } else {
      ADD_FAILURE() << "no minimum MemoryMax= stated";
    }
  }
}

}  // namespace
}  // namespace momentkv
