// libFuzzer target FZ-2 (RELIABILITY.md §4.5): arbitrary text through the momentkvd TOML
// configuration parser and validator. A bad file must throw ConfigError (or another Error); a
// crash, a sanitizer report, a leak or a hang is a finding. Seeds: tests/fuzz/corpus/config.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

#include "daemon/daemon_config.h"

namespace {

constexpr size_t kMaxInput = 16 << 10;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return -1;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const momentkv::DaemonConfig c = momentkv::parse_daemon_config(text, "fuzz");
    (void)c.telemetry.resolved_path();
  } catch (const std::exception&) {
    // Rejected with a message naming the key: expected.
  }
  return 0;
}
