// The process's resident memory, read from /proc/self/status (Linux).
#pragma once

#include <cstdint>

namespace momentkv {

// Current resident set (VmRSS) in bytes; 0 if unknown.
uint64_t current_rss_bytes();
// Peak resident set (VmHWM) in bytes; 0 if unknown.
uint64_t peak_rss_bytes();

}  // namespace momentkv
