// Shared by the systemd and packaging tests (tests/systemd): unit files read the way systemd
// reads them, systemd's value syntaxes, the build installed into a scratch root, and the external
// tools those tests run.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace momentkv::test {

// A unit file: every assignment of every key, per section, in file order (systemd keeps list
// settings such as SystemCallFilter= and DeviceAllow= as repeated keys). Comments (# ;) and
// blank lines are skipped; a trailing backslash continues a line.
class UnitFile {
 public:
  static UnitFile parse(const std::string& text);
  // Reads and parses `path` (fails the test when it cannot be read).
  static UnitFile load(const std::string& path);
  // The last assignment of `key` in `section` (the one systemd uses); "" when absent.
  std::string get(const std::string& section, const std::string& key) const;
  // Every assignment of `key` in `section`, in order.
  std::vector<std::string> all(const std::string& section, const std::string& key) const;

 private:
  std::map<std::string, std::map<std::string, std::vector<std::string>>> values_;
};

// Splits a command line (ExecStart=) at whitespace; double quotes group words.
std::vector<std::string> split_command(const std::string& line);
// A systemd time span ("60s", "5min", "1min 30s", "250ms", "20") in microseconds.
uint64_t parse_timespan_us(const std::string& text);
// A systemd byte size ("2304M", "50G", "1024K", "4096") in bytes (base 1024).
uint64_t parse_systemd_bytes(const std::string& text);

// Absolute path of `program` found on $PATH, or "" when it is not installed.
std::string find_program(const std::string& program);
// A value of the build's CMakeCache.txt (e.g. "CMAKE_COMMAND"); "" when absent.
std::string cmake_cache(const std::string& key);
// `DESTDIR=destdir cmake --install <build>`; returns its output and fails the test on error.
std::string install_into(const std::string& destdir);

}  // namespace momentkv::test
