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

// About the resident bytes a sanitizer runtime adds to a freshly started momentkv/momentkvd
// (measured with stories260K: 5.7 MiB plain, 36 MiB under ASan+UBSan, 18 MiB under TSan); 0 in a
// plain build. Tests add it to memory budgets that are meant to be tight, keeping what fits and
// what does not as in the plain build.
inline constexpr uint64_t kSanitizerRssSlack = kAddressSanitizer  ? (40ull << 20)
                                               : kThreadSanitizer ? (16ull << 20)
                                                                  : 0;

}  // namespace momentkv::test
