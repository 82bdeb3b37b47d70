#include "core/sampler/stop_matcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/error.h"

namespace momentkv {
namespace {

// Feeds `pieces` in order and returns the result after each.
std::vector<StopMatcher::Result> feed_all(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::vector<StopMatcher::Result> out;
  for (const auto& p : pieces) out.push_back(m.feed(p));
  return out;
}

TEST(StopMatcher, FindsAStopInsideOnePiece) {
  StopMatcher m({"</s>"});
  const auto r = m.feed("Hello</s>world");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 0u);
  EXPECT_EQ(r.stop_begin, 5u);
  EXPECT_EQ(r.stop_end, 9u);
  EXPECT_EQ(r.emit_end, 5u);
  EXPECT_EQ(r.hold_back, 0u);
  EXPECT_EQ(m.n_fed(), 14u);
}

TEST(StopMatcher, FindsAStopSplitAcrossPiecesAndHoldsItsStartBack) {
  StopMatcher m({"</s>"});
  const auto r = feed_all(m, {"Hel", "lo<", "/", "s", ">tail"});
  EXPECT_FALSE(r[0].stopped);
  EXPECT_EQ(r[0].hold_back, 0u);
  EXPECT_EQ(r[0].emit_end, 3u);
  EXPECT_EQ(r[1].hold_back, 1u);  // "<"
  EXPECT_EQ(r[1].emit_end, 5u);
  EXPECT_EQ(r[2].hold_back, 2u);  // "</"
  EXPECT_EQ(r[3].hold_back, 3u);  // "</s"
  EXPECT_EQ(r[3].emit_end, 5u);
  EXPECT_TRUE(r[4].stopped);
  EXPECT_EQ(r[4].stop_begin, 5u);
  EXPECT_EQ(r[4].stop_end, 9u);
  EXPECT_EQ(r[4].emit_end, 5u);
}

TEST(StopMatcher, ReleasesAHeldPrefixOnceItCannotMatch) {
  StopMatcher m({"</s>"});
  EXPECT_EQ(m.feed("a</").hold_back, 2u);
  const auto r = m.feed("x");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.hold_back, 0u);
  EXPECT_EQ(r.emit_end, 4u);
}

TEST(StopMatcher, OverlappingPrefixes) {
  // "ab" in "aab": the first 'a' is released when the second arrives, the second is held.
  StopMatcher m({"ab"});
  const auto r = feed_all(m, {"a", "a", "b"});
  EXPECT_EQ(r[0].hold_back, 1u);
  EXPECT_EQ(r[0].emit_end, 0u);
  EXPECT_EQ(r[1].hold_back, 1u);
  EXPECT_EQ(r[1].emit_end, 1u);
  EXPECT_TRUE(r[2].stopped);
  EXPECT_EQ(r[2].stop_begin, 1u);

  // Self-overlapping stop: "abac" in "ababac" must fall back from "aba" to "ab", not restart.
  StopMatcher k({"abac"});
  const auto q = feed_all(k, {"ab", "ab", "ac"});
  EXPECT_EQ(q[0].hold_back, 2u);
  EXPECT_EQ(q[1].hold_back, 2u);  // "abab": the tail "ab" may still start "abac"
  EXPECT_EQ(q[1].emit_end, 2u);
  EXPECT_TRUE(q[2].stopped);
  EXPECT_EQ(q[2].stop_begin, 2u);

  StopMatcher aa({"aab"});
  const auto a = feed_all(aa, {"a", "a", "a", "b"});
  EXPECT_EQ(a[2].hold_back, 2u);
  EXPECT_EQ(a[2].emit_end, 1u);
  EXPECT_TRUE(a[3].stopped);
  EXPECT_EQ(a[3].stop_begin, 1u);
}

TEST(StopMatcher, FirstStopToCompleteWinsThenLongest) {
  {
    StopMatcher m({"abcd", "bc"});
    const auto r = m.feed("xabcd");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.stop_index, 1u);
    EXPECT_EQ(r.stop_begin, 2u);
  }
  {
    StopMatcher m({"c", "abc", "bc"});
    const auto r = m.feed("abc");
    EXPECT_EQ(r.stop_index, 1u);
    EXPECT_EQ(r.stop_begin, 0u);
  }
  {
    StopMatcher m({"\n\n", "User:"});
    const auto r = feed_all(m, {"Sure.", "\n", "User", ":"});
    EXPECT_EQ(r[1].hold_back, 1u);
    EXPECT_EQ(r[2].hold_back, 4u);  // "User" may start "User:"; the "\n" cannot continue now
    EXPECT_EQ(r[2].emit_end, 6u);
    EXPECT_TRUE(r[3].stopped);
    EXPECT_EQ(r[3].stop_index, 1u);
    EXPECT_EQ(r[3].stop_begin, 6u);
  }
}

TEST(StopMatcher, MultiByteUtf8) {
  // "。" is E3 80 82: fed a byte at a time it is held, then matched.
  {
    StopMatcher m({"\xE3\x80\x82"});
    const auto r = feed_all(m, {"\xE6\x97\xA5", "\xE3", "\x80", "\x82"});
    EXPECT_EQ(r[0].hold_back, 0u);
    EXPECT_EQ(r[1].hold_back, 1u);
    EXPECT_EQ(r[2].hold_back, 2u);
    EXPECT_TRUE(r[3].stopped);
    EXPECT_EQ(r[3].stop_begin, 3u);
  }
  // Several characters in one piece, stop in the middle.
  {
    StopMatcher m({"本"});
    const auto r = m.feed("日本語");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.stop_begin, 3u);
    EXPECT_EQ(r.stop_end, 6u);
  }
  // A stop ending in ASCII after a split character.
  {
    StopMatcher m({"é!"});
    const auto r = feed_all(m, {"caf\xC3", "\xA9", "!"});
    EXPECT_EQ(r[0].hold_back, 1u);
    EXPECT_EQ(r[1].hold_back, 2u);
    EXPECT_TRUE(r[2].stopped);
    EXPECT_EQ(r[2].stop_begin, 3u);
  }
  // With no stops, only an incomplete character is held back.
  {
    StopMatcher m({});
    const auto r = feed_all(m, {"ab\xF0\x9F", "\x98", "\x80x", "\xC3"});
    EXPECT_EQ(r[0].hold_back, 2u);
    EXPECT_EQ(r[1].hold_back, 3u);
    EXPECT_EQ(r[2].hold_back, 0u);
    EXPECT_EQ(r[2].emit_end, 7u);
    EXPECT_EQ(r[3].hold_back, 1u);
    EXPECT_FALSE(r[3].stopped);
  }
  // A stray continuation byte or a broken sequence is not held forever.
  {
    StopMatcher m({});
    EXPECT_EQ(m.feed("\x80").hold_back, 0u);
    EXPECT_EQ(m.feed("\xE3\x80").hold_back, 2u);
    EXPECT_EQ(m.feed("a").hold_back, 0u);
  }
}

TEST(StopMatcher, IgnoresPiecesAfterAStopAndResets) {
  StopMatcher m({"!"});
  const auto first = m.feed("hi!there");
  ASSERT_TRUE(first.stopped);
  const auto again = m.feed("more!");
  EXPECT_TRUE(again.stopped);
  EXPECT_EQ(again.stop_begin, 2u);
  EXPECT_EQ(m.n_fed(), 13u);
  m.reset();
  EXPECT_FALSE(m.result().stopped);
  EXPECT_EQ(m.n_fed(), 0u);
  const auto r = m.feed("ok!");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_begin, 2u);
}

TEST(StopMatcher, RejectsEmptyStopStrings) {
  EXPECT_THROW(StopMatcher({"a", ""}), Error);
  StopMatcher none({});
  EXPECT_FALSE(none.feed("anything at all").stopped);
}

// Reference: over the whole text so far, the stop that ends first (then the longest, then the
// lowest index), and the longest suffix that is a proper prefix of some stop.
struct Reference {
  bool stopped = false;
  size_t index = 0, begin = 0, hold = 0;
};

Reference reference(const std::string& text, const std::vector<std::string>& stops) {
  Reference r;
  for (size_t end = 1; end <= text.size() && !r.stopped; ++end) {
    for (size_t s = 0; s < stops.size(); ++s) {
      const std::string& st = stops[s];
      if (st.size() > end || text.compare(end - st.size(), st.size(), st) != 0) continue;
      if (!r.stopped || st.size() > stops[r.index].size()) {
        r.stopped = true;
        r.index = s;
        r.begin = end - st.size();
      }
    }
  }
  if (r.stopped) return r;
  for (const auto& st : stops) {
    for (size_t len = std::min(st.size() - 1, text.size()); len > 0; --len) {
      if (text.compare(text.size() - len, len, st, 0, len) == 0) {
        r.hold = std::max(r.hold, len);
        break;
      }
    }
  }
  return r;
}

// Random texts over a small alphabet, random stops and random cuts into pieces: every result
// matches the reference, emit_end never moves back, and nothing shown is ever part of the stop.
TEST(StopMatcher, MatchesReferenceOnRandomStreams) {
  std::mt19937_64 rng(12345);
  const auto random_string = [&](size_t max_len) {
    std::string s(1 + rng() % max_len, 'a');
    for (char& c : s) c = static_cast<char>('a' + rng() % 3);
    return s;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::string> stops;
    const size_t n_stops = rng() % 4;
    for (size_t i = 0; i < n_stops; ++i) stops.push_back(random_string(5));
    const std::string text = random_string(40);
    StopMatcher m(stops);
    std::string fed;
    size_t shown = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t len = 1 + rng() % 6;
      const std::string piece = text.substr(pos, len);
      pos += piece.size();
      fed += piece;
      const auto r = m.feed(piece);
      const auto want = reference(fed, stops);
      ASSERT_EQ(r.stopped, want.stopped) << "trial " << trial << " text " << fed;
      ASSERT_GE(r.emit_end, shown) << "trial " << trial;
      shown = r.emit_end;
      if (r.stopped) {
        EXPECT_EQ(r.stop_index, want.index) << "trial " << trial;
        EXPECT_EQ(r.stop_begin, want.begin) << "trial " << trial;
        EXPECT_EQ(r.stop_end, want.begin + stops[want.index].size());
        EXPECT_EQ(r.emit_end, r.stop_begin);
        break;
      }
      ASSERT_EQ(r.hold_back, want.hold) << "trial " << trial << " text " << fed;
      ASSERT_EQ(r.emit_end, fed.size() - want.hold);
    }
  }
}

}  // namespace
}  // namespace momentkv
