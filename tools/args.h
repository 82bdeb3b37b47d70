// A small command-line parser for the momentkv subcommands. Flags follow llama.cpp's names where
// one exists (-m, -p, -f, -n, -t, --temp, ...). Every flag has a help line; a bad value or an
// unknown flag is a clear error (exit status 2).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace momentkv::tools {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ArgParser {
 public:
  ArgParser(std::string command, std::string summary);

  // Registers a flag with a value; `names` like {"-n", "--n-predict"}.
  void add(std::vector<std::string> names, std::string metavar, std::string help,
           std::function<void(const std::string&)> set);
  // Registers a flag without a value.
  void add_switch(std::vector<std::string> names, std::string help, std::function<void()> set);
  // Positional arguments (after flags); `set` gets each one in order.
  void positional(std::string metavar, std::string help,
                  std::function<void(const std::string&)> set);

  // Parses argv[0..argc); throws UsageError. Returns false when --help was given (usage printed).
  bool parse(int argc, char** argv);
  std::string usage() const;

  // Typed value helpers for the setters; throw UsageError naming the flag.
  static int64_t to_int(const std::string& flag, const std::string& v, int64_t lo, int64_t hi);
  static double to_double(const std::string& flag, const std::string& v);
  // "512MiB", "2G", "1000000" -> bytes.
  static uint64_t to_bytes(const std::string& flag, const std::string& v);

 private:
  struct Flag {
    std::vector<std::string> names;
    std::string metavar;
    std::string help;
    std::function<void(const std::string&)> set;
    std::function<void()> set_switch;
  };
  std::string command_, summary_;
  std::vector<Flag> flags_;
  std::string pos_metavar_, pos_help_;
  std::function<void(const std::string&)> pos_set_;
};

}  // namespace momentkv::tools
