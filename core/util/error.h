// Errors. Broken invariants and bad input files throw momentkv::Error with the source location and
// the offending value; expected outcomes (budget full, cancelled) are returned as values instead.
#pragma once

#include <source_location>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace momentkv {

#if defined(__cpp_lib_source_location)
using SourceLocation = std::source_location;
#else
// clang 14 with libstdc++ 12 (the fuzz build, scripts/test-fuzz.sh) has no std::source_location:
// libstdc++'s needs __builtin_source_location, which clang gained in 15. The same two fields from
// the builtins both compilers have.
class SourceLocation {
 public:
  static SourceLocation current(const char* file = __builtin_FILE(),
                                unsigned line = __builtin_LINE()) {
    SourceLocation loc;
    loc.file_ = file;
    loc.line_ = line;
    return loc;
  }
  const char* file_name() const { return file_; }
  unsigned line() const { return line_; }

 private:
  const char* file_ = "";
  unsigned line_ = 0;
};
#endif

// An error with a message that names what was wrong; `where()` is "file:line".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, SourceLocation loc = SourceLocation::current());
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

// Throws Error(message) when `cond` is false.
inline void check(bool cond, const std::string& message,
                  SourceLocation loc = SourceLocation::current()) {
  if (!cond) throw Error(message, loc);
}

// The same for a literal message, which then becomes a string only when `cond` is false.
inline void check(bool cond, const char* message, SourceLocation loc = SourceLocation::current()) {
  if (!cond) [[unlikely]] {
    throw Error(message, loc);
  }
}

// The same with the message built only when `cond` is false (make_message returns it): for checks
// on every token or in loops, where building the string each time would cost more than the test.
template <typename MakeMessage>
requires std::is_invocable_r_v<std::string, MakeMessage&>
inline void check(bool cond, MakeMessage&& make_message,
                  SourceLocation loc = SourceLocation::current()) {
  if (!cond) [[unlikely]] {
    throw Error(make_message(), loc);
  }
}

}  // namespace momentkv
