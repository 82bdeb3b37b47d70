// Editing momentkvd.toml in place: values replaced with comments and columns kept, missing keys
// and tables added where a person would put them, other tables, comments and strings untouched,
// what cannot be edited safely refused; the file is replaced atomically or not at all.
#include "daemon/config_editor.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/daemon_config.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

std::string shipped() {
  return test::read_file(std::string(MOMENTKV_SOURCE_DIR) + "/configs/momentkvd.toml");
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string error_of(const std::string& text, const std::string& table, const ConfigValues& v) {
  try {
    set_config_values(text, table, v);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(ConfigEditor, EditsTheShippedConfigKeepingEverythingElse) {
  const std::string before = shipped();
  const std::string after = set_config_values(
      before, "kv",
      {{"decode_budget", "256"}, {"alpha", "0.95"}, {"policy", "\"h2o\""}, {"normalize", "false"}});
  const auto a = split_lines(before), b = split_lines(after);
  ASSERT_EQ(a.size(), b.size());
  int changed = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;
    ++changed;
    // Only the value moved: same key prefix, same comment at the same column.
    const size_t eq = a[i].find(" = ");
    ASSERT_NE(eq, std::string::npos) << a[i];
    EXPECT_EQ(a[i].substr(0, eq + 3), b[i].substr(0, eq + 3));
    const size_t ca = a[i].find('#'), cb = b[i].find('#');
    ASSERT_NE(ca, std::string::npos);
    EXPECT_EQ(ca, cb) << b[i];
    EXPECT_EQ(a[i].substr(ca), b[i].substr(cb));
  }
  EXPECT_EQ(changed, 4);
  EXPECT_NE(after.find("\ndecode_budget = 256      # generated tokens kept"), std::string::npos);
  EXPECT_NE(after.find("\npolicy = \"h2o\"           # full | moment"), std::string::npos);
  EXPECT_EQ(after.back(), '\n');

  const DaemonConfig c = parse_daemon_config(after, "edited.toml");
  EXPECT_EQ(c.kv.decode_budget, 256);
  EXPECT_FLOAT_EQ(c.kv.alpha, 0.95f);
  EXPECT_EQ(c.kv.policy, "h2o");
  EXPECT_FALSE(c.kv.normalize);
  // Keys of the same name elsewhere are not touched ([server] max_tokens vs a kv key).
  const DaemonConfig orig = parse_daemon_config(before, "shipped.toml");
  EXPECT_EQ(c.max_tokens, orig.max_tokens);
  EXPECT_EQ(c.socket_path, orig.socket_path);
  // Setting the values already there changes nothing.
  EXPECT_EQ(set_config_values(before, "kv", {{"decode_budget", "512"}, {"alpha", "0.9"}}), before);
}

TEST(ConfigEditor, EditsEveryShippedConfig) {
  // Every example configuration takes a tuned [kv] with only the two value lines changed.
  int n_files = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(MOMENTKV_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".toml") continue;
    ++n_files;
    SCOPED_TRACE(e.path().string());
    const std::string before = test::read_file(e.path().string());
    const std::string after =
        set_config_values(before, "kv", {{"decode_budget", "96"}, {"alpha", "0.75"}});
    const auto a = split_lines(before), b = split_lines(after);
    const DaemonConfig c = parse_daemon_config(after, e.path().string());
    EXPECT_EQ(c.kv.decode_budget, 96);
    EXPECT_FLOAT_EQ(c.kv.alpha, 0.75f);
    // Lines differ only where a value was set (a key that was missing is inserted).
    size_t ia = 0, ib = 0;
    int changed = 0;
    while (ia < a.size() || ib < b.size()) {
      if (ia < a.size() && ib < b.size() && a[ia] == b[ib]) {
        ++ia, ++ib;
        continue;
      }
      ASSERT_LT(ib, b.size());
      const std::string line = b[ib].substr(std::min(b[ib].find_first_not_of(' '), b[ib].size()));
      if (line.empty() || line == "[kv]") {
        EXPECT_EQ(before.find("\n[kv]"), std::string::npos) << "[kv] appended";
      } else {
        EXPECT_TRUE(line.rfind("alpha = 0.75", 0) == 0 || line.rfind("decode_budget = 96", 0) == 0)
            << b[ib];
        ++changed;
      }
      ++ib;
      if (ia < a.size() && (ib >= b.size() || a[ia] != b[ib])) ++ia;  // replaced, not inserted
    }
    EXPECT_LE(changed, 2);
  }
  EXPECT_GE(n_files, 1);
}

TEST(ConfigEditor, InsertsAMissingKeyAtTheEndOfItsTable) {
  // The shipped file without its `sinks` line: it comes back after the table's last key, before
  // the blank line that leads into [server].
  std::string before = shipped();
  const size_t at = before.find("sinks = 4");
  ASSERT_NE(at, std::string::npos);
  before.erase(at, before.find('\n', at) + 1 - at);
  const std::string after = set_config_values(before, "kv", {{"sinks", "8"}});
  EXPECT_NE(after.find("snapkv_kernel = 5\nsinks = 8\n\n[server]\n"), std::string::npos) << after;
  EXPECT_EQ(parse_daemon_config(after, "edited.toml").kv.sinks, 8);

  const std::string text =
      "[model]\n"
      "  threads = 0   # c\n"
      "\n"
      "# The memory section\n"
      "[memory]\n"
      "budget = \"1GiB\"\n";
  EXPECT_EQ(set_config_values(text, "model", {{"batch", "32"}, {"threads", "4"}}),
            "[model]\n"
            "  threads = 4   # c\n"
            "  batch = 32\n"
            "\n"
            "# The memory section\n"
            "[memory]\n"
            "budget = \"1GiB\"\n");
  // A table without keys: after the header and the comments right under it.
  EXPECT_EQ(set_config_values("[memory]\n# Bytes.\n# Units.\n\n# next\n[kv]\n", "memory",
                              {{"budget", "\"2GiB\""}}),
            "[memory]\n# Bytes.\n# Units.\nbudget = \"2GiB\"\n\n# next\n[kv]\n");
  // At the end of a file without a final newline.
  EXPECT_EQ(set_config_values("[kv]\npolicy = \"moment\"", "kv", {{"alpha", "0.5"}}),
            "[kv]\npolicy = \"moment\"\nalpha = 0.5");
}

TEST(ConfigEditor, AppendsAMissingTable) {
  EXPECT_EQ(set_config_values("[model]\nthreads = 2\n", "kv",
                              {{"decode_budget", "256"}, {"alpha", "0.8"}}),
            "[model]\nthreads = 2\n\n[kv]\ndecode_budget = 256\nalpha = 0.8\n");
  EXPECT_EQ(set_config_values("[model]\nthreads = 2", "kv", {{"alpha", "0.8"}}),
            "[model]\nthreads = 2\n\n[kv]\nalpha = 0.8\n");
  EXPECT_EQ(set_config_values("", "kv", {{"alpha", "0.8"}}), "[kv]\nalpha = 0.8\n");
  EXPECT_EQ(set_config_values("# only a comment\n\n", "kv", {{"alpha", "0.8"}}),
            "# only a comment\n\n[kv]\nalpha = 0.8\n");
}

TEST(ConfigEditor, FindsTheRightTableAndKey) {
  // Headers with spaces, quotes and comments; sub-tables and arrays of tables are other tables.
  EXPECT_EQ(set_config_values("[ kv ]  # cache\nalpha = 0.9\n", "kv", {{"alpha", "0.1"}}),
            "[ kv ]  # cache\nalpha = 0.1\n");
  EXPECT_EQ(set_config_values("[\"kv\"]\n\"alpha\" = 0.9\n", "kv", {{"alpha", "0.1"}}),
            "[\"kv\"]\n\"alpha\" = 0.1\n");
  EXPECT_EQ(set_config_values("[kv]\nalpha = 0.9\n[kv.sub]\nalpha = 1\n[[kv2]]\nalpha = 2\n", "kv",
                              {{"alpha", "0.1"}}),
            "[kv]\nalpha = 0.1\n[kv.sub]\nalpha = 1\n[[kv2]]\nalpha = 2\n");
  // The same key in another table, in a comment, inside a string.
  EXPECT_EQ(
      set_config_values("[a]\nx = 1\n[b]\n# x = 7\nnote = \"x = 5\"\nx = 2\n", "b", {{"x", "3"}}),
      "[a]\nx = 1\n[b]\n# x = 7\nnote = \"x = 5\"\nx = 3\n");
  EXPECT_EQ(set_config_values("[b]\n# x = 7\n", "b", {{"x", "3"}}), "[b]\n# x = 7\nx = 3\n");
  // A '#' inside a string is not a comment; the real comment keeps its column.
  EXPECT_EQ(set_config_values("[server]\nsocket = \"/tmp/a#b\"  # where\n", "server",
                              {{"socket", "\"/run/x\""}}),
            "[server]\nsocket = \"/run/x\"    # where\n");
  // Never less than one space before a comment that had one; tabs are kept as they are.
  EXPECT_EQ(set_config_values("[kv]\nalpha = 1 # c\n", "kv", {{"alpha", "0.125"}}),
            "[kv]\nalpha = 0.125 # c\n");
  EXPECT_EQ(set_config_values("[kv]\nalpha = 1\t# c\n", "kv", {{"alpha", "0.125"}}),
            "[kv]\nalpha = 0.125\t# c\n");
  // CRLF files stay CRLF.
  EXPECT_EQ(set_config_values("[kv]\r\nalpha = 1\r\n", "kv", {{"alpha", "0.5"}, {"grace", "2"}}),
            "[kv]\r\nalpha = 0.5\r\ngrace = 2\r\n");
}

TEST(ConfigEditor, MultiLineValues) {
  // Lines inside a multi-line array or string are not keys or headers.
  const std::string text =
      "[server]\n"
      "allowed_uids = [\n"
      "  1000,  # alice\n"
      "  1001,\n"
      "]\n"
      "doc = \"\"\"\n"
      "[kv]\n"
      "alpha = 0\n"
      "\"\"\"\n"
      "[kv]\n"
      "alpha = 0.9\n";
  EXPECT_EQ(set_config_values(text, "kv", {{"alpha", "0.5"}}),
            text.substr(0, text.size() - 4) + "0.5\n");
  const std::string added = set_config_values(text, "server", {{"max_tokens", "64"}});
  EXPECT_NE(added.find("\"\"\"\nmax_tokens = 64\n[kv]\n"), std::string::npos) << added;
  const std::string err = error_of(text, "server", {{"allowed_uids", "[1]"}});
  EXPECT_NE(err.find("server.allowed_uids spans several lines"), std::string::npos) << err;
}

TEST(ConfigEditor, RefusesBadEdits) {
  const std::string text = "[kv]\nalpha = 0.9\n";
  for (const auto& [v, what] : std::vector<std::pair<ConfigValues, std::string>>{
           {{{"a.b", "1"}}, "not a bare TOML key"},
           {{{"alpha", "0.5\nbeta = 1"}}, "one TOML value on one line"},
           {{{"alpha", "0.5 # c"}}, "without a comment"},
           {{{"alpha", "[1,"}}, "one TOML value on one line"},
           {{{"alpha", "abc"}}, "not a TOML value"},
           {{{"alpha", ""}}, "one TOML value"},
           {{{"alpha", "1"}, {"alpha", "2"}}, "given twice"},
       }) {
    const std::string err = error_of(text, "kv", v);
    EXPECT_NE(err.find(what), std::string::npos) << err;
  }
  EXPECT_NE(error_of("[kv]\na = 1\n[kv]\nb = 2\n", "kv", {{"a", "2"}}).find("defined twice"),
            std::string::npos);
  EXPECT_NE(error_of(text, "", {{"a", "2"}}).find("not a table name"), std::string::npos);
}

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ConfigEditor, WritesAtomicallyKeepingTheMode) {
  test::TempDir dir("config-editor");
  const std::string path = dir.file("momentkvd.toml");
  const std::string before = shipped();
  std::ofstream(path, std::ios::binary) << before;
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  struct stat st0 {};
  ASSERT_EQ(::stat(path.c_str(), &st0), 0);

  write_config_values(path, "kv", {{"decode_budget", "256"}, {"alpha", "0.8"}});
  EXPECT_EQ(test::read_file(path),
            set_config_values(before, "kv", {{"decode_budget", "256"}, {"alpha", "0.8"}}));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_NE(st.st_ino, st0.st_ino);  // replaced by rename, not rewritten in place
  EXPECT_EQ(dir_entries(dir.file("")), std::vector<std::string>{"momentkvd.toml"});
  const DaemonConfig c = load_daemon_config(path);
  EXPECT_EQ(c.kv.decode_budget, 256);
  EXPECT_FLOAT_EQ(c.kv.alpha, 0.8f);

  // Through a symlink: the target is edited, the link stays a link.
  const std::string link = dir.file("link.toml");
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  write_config_values(link, "kv", {{"decode_budget", "128"}});
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(load_daemon_config(path).kv.decode_budget, 128);
  EXPECT_EQ(dir_entries(dir.file("")), (std::vector<std::string>{"link.toml", "momentkvd.toml"}));
}

TEST(ConfigEditor, InvalidResultLeavesTheFileUntouched) {
  test::TempDir dir("config-editor");
  const std::string path = dir.file("momentkvd.toml");
  const std::string before = shipped();
  std::ofstream(path, std::ios::binary) << before;
  const auto expect_refused = [&](const std::string& table, const ConfigValues& v,
                                  const std::string& what) {
    try {
      write_config_values(path, table, v);
      ADD_FAILURE() << "accepted " << table;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
    EXPECT_EQ(test::read_file(path), before);
    EXPECT_EQ(dir_entries(dir.file("")), std::vector<std::string>{"momentkvd.toml"});
  };
  // Valid TOML, invalid configuration: named by the daemon's own parser.
  expect_refused("kv", {{"decode_budget", "-1"}}, "kv.decode_budget");
  expect_refused("kv", {{"alpha", "1.5"}}, "kv.alpha");
  expect_refused("kv", {{"no_such_key", "1"}}, "unknown key");
  expect_refused("nope", {{"x", "1"}}, "unknown section");
  expect_refused("kv", {{"alpha", "abc"}}, "not a TOML value");
  try {
    write_config_values(dir.file("missing.toml"), "kv", {{"alpha", "0.5"}});
    ADD_FAILURE() << "accepted a missing file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.toml"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace momentkv
