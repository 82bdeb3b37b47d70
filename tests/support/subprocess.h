// Runs a program as a child process (no shell) and collects what it printed, its exit status and
// its peak resident memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace momentkv::test {

struct ProcessResult {
  int exit_code = -1;           // -1 when it did not exit normally
  std::string out, err;         // stdout and stderr
  uint64_t peak_rss_bytes = 0;  // ru_maxrss of the child
};

// Runs argv[0] with the arguments in argv; stdin is /dev/null.
ProcessResult run_process(const std::vector<std::string>& argv);

}  // namespace momentkv::test
