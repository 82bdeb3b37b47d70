// Finds stop strings in streamed output. The caller keeps the text; the matcher is fed the decoded
// pieces in order and says, in byte offsets counted from the first byte fed, where a stop string
// completed and how much of the tail must not be shown yet because it may still become one.
//
// Matching is on bytes (a KMP automaton per stop string), so a stop split across pieces, or a
// multi-byte UTF-8 character split across pieces, is found exactly as if the text came in one
// piece. When several stops complete, the first to complete wins (ties: the longest, then the
// lowest index), which makes the result independent of how the text was cut into pieces.
// The held-back tail also covers an incomplete UTF-8 sequence at the end, so the safe prefix
// never ends inside a character. Memory is O(total stop bytes), whatever the length of the text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace momentkv {

class StopMatcher {
 public:
  struct Result {
    bool stopped = false;   // a stop string completed; generation should end
    size_t stop_index = 0;  // which stop string; valid when stopped
    size_t stop_begin = 0;  // offset of its first byte; valid when stopped
    size_t stop_end = 0;    // one past its last byte; any text after it is to be dropped
    size_t hold_back = 0;   // trailing bytes not yet safe to show (0 when stopped)
    size_t emit_end = 0;    // text [0, emit_end) is safe to show: stop_begin, or fed - hold_back
  };

  // Throws Error when a stop string is empty. No stop strings: never stops.
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends `piece` to the text and reports the state after it. Once stopped, further pieces are
  // ignored and the same result is returned.
  Result feed(std::string_view piece);

  // The state after the last feed (all zeros before any).
  const Result& result() const { return result_; }

  // Bytes fed since construction or reset(), including any after a stop.
  size_t n_fed() const { return n_fed_; }

  // Forgets all text; the stop strings stay.
  void reset();

  const std::vector<std::string>& stops() const { return stops_; }

 private:
  void step(unsigned char byte);

  std::vector<std::string> stops_;
  std::vector<std::vector<uint32_t>> failure_;  // [stop][len]: KMP failure function
  std::vector<uint32_t> state_;                 // [stop]: longest suffix matching a prefix of it
  size_t n_fed_ = 0;
  uint32_t utf8_have_ = 0;  // bytes of the trailing incomplete UTF-8 sequence
  uint32_t utf8_need_ = 0;  // continuation bytes it still expects
  Result result_;
};

}  // namespace momentkv
