// Errors. Broken invariants and bad input files throw momentkv::Error with the source location and
// the offending value; expected outcomes (budget full, cancelled) are returned as values instead.
#pragma once

#include <source_location>
#include <stdexcept>
#include <string>

namespace momentkv {

// An error with a message that names what was wrong; `where()` is "file:line".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message,
                 std::source_location loc = std::source_location::current());
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

// Throws Error(message) when `cond` is false.
inline void check(bool cond, const std::string& message,
                  std::source_location loc = std::source_location::current()) {
  if (!cond) throw Error(message, loc);
}

}  // namespace momentkv
