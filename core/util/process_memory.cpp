#include "core/util/process_memory.h"

#include <cstdio>
#include <cstring>

namespace momentkv {

namespace {
uint64_t status_kib(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kib = 0;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, key, n) == 0) {
      unsigned long long v = 0;
      if (std::sscanf(line + n, "%llu", &v) == 1) kib = v;
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}
}  // namespace

uint64_t current_rss_bytes() {
  return status_kib("VmRSS:");
}
uint64_t peak_rss_bytes() {
  return status_kib("VmHWM:");
}

}  // namespace momentkv
