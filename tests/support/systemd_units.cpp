#include "tests/support/systemd_units.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "tests/support/subprocess.h"
#include "tests/support/test_paths.h"

namespace momentkv::test {

namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

UnitFile UnitFile::parse(const std::string& text) {
  UnitFile u;
  std::istringstream in(text);
  std::string line, section, pending;
  while (std::getline(in, line)) {
    line = trim(line);
    if (pending.empty() && (line.empty() || line[0] == '#' || line[0] == ';')) continue;
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    line = pending + line;
    pending.clear();
    if (line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    u.values_[section][trim(line.substr(0, eq))].push_back(trim(line.substr(eq + 1)));
  }
  return u;
}

UnitFile UnitFile::load(const std::string& path) {
  return parse(read_file(path));
}

std::string UnitFile::get(const std::string& section, const std::string& key) const {
  const auto v = all(section, key);
  return v.empty() ? "" : v.back();
}

std::vector<std::string> UnitFile::all(const std::string& section, const std::string& key) const {
  const auto s = values_.find(section);
  if (s == values_.end()) return {};
  const auto k = s->second.find(key);
  return k == s->second.end() ? std::vector<std::string>{} : k->second;
}

std::vector<std::string> split_command(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool quoted = false, in_word = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
      in_word = true;
    } else if (!quoted && std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(word);
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

uint64_t parse_timespan_us(const std::string& text) {
  static const std::vector<std::pair<std::string, uint64_t>> kUnits = {{"usec", 1},
                                                                       {"us", 1},
                                                                       {"msec", 1000},
                                                                       {"ms", 1000},
                                                                       {"seconds", 1000000},
                                                                       {"second", 1000000},
                                                                       {"sec", 1000000},
                                                                       {"s", 1000000},
                                                                       {"minutes", 60000000},
                                                                       {"minute", 60000000},
                                                                       {"min", 60000000},
                                                                       {"m", 60000000},
                                                                       {"hours", 3600000000ull},
                                                                       {"hour", 3600000000ull},
                                                                       {"hr", 3600000000ull},
                                                                       {"h", 3600000000ull}};
  uint64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i == text.size()) break;
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    EXPECT_GT(j, i) << "bad time span '" << text << "'";
    if (j == i) return 0;
    const uint64_t n = std::stoull(text.substr(i, j - i));
    size_t k = j;
    while (k < text.size() && std::isalpha(static_cast<unsigned char>(text[k]))) ++k;
    const std::string unit = text.substr(j, k - j);
    uint64_t scale = 1000000;  // a bare number is seconds
    if (!unit.empty()) {
      scale = 0;
      for (const auto& [name, us] : kUnits) {
        if (unit == name) scale = us;
      }
      EXPECT_NE(scale, 0u) << "unknown time unit in '" << text << "'";
    }
    total += n * scale;
    i = k;
  }
  return total;
}

uint64_t parse_systemd_bytes(const std::string& text) {
  size_t used = 0;
  const uint64_t n = std::stoull(text, &used);
  const std::string unit = trim(text.substr(used));
  if (unit.empty()) return n;
  const std::string units = "KMGTPE";
  const auto pos = units.find(unit[0]);
  EXPECT_TRUE(pos != std::string::npos && unit.size() == 1) << "bad size '" << text << "'";
  return n << (10 * (pos + 1));
}

std::string find_program(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/" + program;
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* sbin : {"/usr/sbin", "/sbin"}) {  // not on every user's PATH
    const std::string candidate = std::string(sbin) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string cmake_cache(const std::string& key) {
  std::istringstream in(read_file(std::string(MOMENTKV_BINARY_DIR) + "/CMakeCache.txt"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    const auto eq = line.find('=');
    if (eq != std::string::npos) return line.substr(eq + 1);
  }
  return "";
}

std::string install_into(const std::string& destdir) {
  const std::string cmake = cmake_cache("CMAKE_COMMAND");
  EXPECT_FALSE(cmake.empty());
  const auto r =
      run_process({"/usr/bin/env", "DESTDIR=" + destdir, cmake, "--install", MOMENTKV_BINARY_DIR});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.out;
}

}  // namespace momentkv::test
