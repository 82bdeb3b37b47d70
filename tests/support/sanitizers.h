// What a sanitizer build (-DMOMENTKV_SANITIZE, scripts/test-sanitize.sh) changes for tests that
// measure the process: the runtime's shadow memory and allocator metadata are resident, so
// memory budgets, which count the process's own RSS, need that much more room.
#pragma once

#include <cstdint>

namespace momentkv::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

// Whether a sanitizer instruments this build: everything runs several times slower and a thread
// is preempted for longer, so bounds on latency get more room (what they guard against stays
// far outside it).
inline constexpr bool kSanitizer = kAddressSanitizer || kThreadSanitizer;

// About the resident bytes a sanitizer runtime adds to a freshly started momentkv/momentkvd
// (measured with stories260K: 5.7 MiB plain, 36 MiB under ASan+UBSan, 18 MiB under TSan; on
// 2026-12-02 `momentkv run` reported 6.35 MiB plain and 45 MiB under ASan+UBSan); 0 in a plain
// build. Tests add it to memory budgets that are meant to be tight, keeping what fits and
// what does not as in the plain build.
inline constexpr uint64_t kSanitizerRssSlack = kAddressSanitizer  ? (40ull << 20)
                                               : kThreadSanitizer ? (16ull << 20)
                                                                  : 0;

// What ASan adds on top of that by the end of a run, counted only by a measurement from outside
// after the process has ended (ru_maxrss, as tests/support/subprocess.h reports): freed blocks
// held in its quarantine and the redzones of live ones grow as a run goes on, and LeakSanitizer's
// scan at exit runs after the program's last word. Measured for a 400-token stories260K
// generation (`momentkv run`, /usr/bin/time -v): peak 7.5 MiB plain; under ASan+UBSan 45 MiB
// after loading, 55.7 MiB at the end (the process's own VmHWM) and 66 MB with the leak check
// (10 MB less with detect_leaks=0). TSan runs only the daemon tests, which read a live
// process's VmHWM.
inline constexpr uint64_t kSanitizerExitRssSlack = kAddressSanitizer ? (24ull << 20) : 0;

}  // namespace momentkv::test
