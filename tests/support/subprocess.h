// Runs a program as a child process (no shell) and collects what it printed, its exit status and
// its peak resident memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace momentkv::test {

struct ProcessResult {
  int exit_code = -1;    // -1 when it did not exit normally
  std::string out, err;  // stdout and stderr
  // ru_maxrss of the child. The kernel counts the forked copy of this process before exec too, so
  // the figure is at least this process's resident anonymous memory when it forked (a few MiB in
  // a plain build, the sanitizer runtime's ~40 MiB under ASan: below what the child reaches).
  uint64_t peak_rss_bytes = 0;
};

// Runs argv[0] with the arguments in argv; stdin is /dev/null.
ProcessResult run_process(const std::vector<std::string>& argv);

}  // namespace momentkv::test
