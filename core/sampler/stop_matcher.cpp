#include "core/sampler/stop_matcher.h"

#include <algorithm>
#include <utility>

#include "core/util/error.h"

namespace momentkv {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  failure_.resize(stops_.size());
  for (size_t s = 0; s < stops_.size(); ++s) {
    const std::string& pat = stops_[s];
    check(!pat.empty(), "StopMatcher: stop string " + std::to_string(s) + " is empty");
    check(pat.size() < UINT32_MAX, "StopMatcher: stop string " + std::to_string(s) + " too long");
    // failure[i]: length of the longest proper prefix of pat[0..i] that is also its suffix.
    std::vector<uint32_t>& fail = failure_[s];
    fail.assign(pat.size(), 0);
    uint32_t k = 0;
    for (size_t i = 1; i < pat.size(); ++i) {
      while (k > 0 && pat[i] != pat[k]) k = fail[k - 1];
      if (pat[i] == pat[k]) ++k;
      fail[i] = k;
    }
  }
  state_.assign(stops_.size(), 0);
}

void StopMatcher::reset() {
  std::fill(state_.begin(), state_.end(), 0u);
  n_fed_ = 0;
  utf8_have_ = 0;
  utf8_need_ = 0;
  result_ = Result{};
}

StopMatcher::Result StopMatcher::feed(std::string_view piece) {
  if (result_.stopped) {
    n_fed_ += piece.size();
    return result_;
  }
  size_t i = 0;
  while (i < piece.size() && !result_.stopped) step(static_cast<unsigned char>(piece[i++]));
  if (result_.stopped) {
    n_fed_ += piece.size() - i;  // the rest of the piece is dropped, but was fed
    return result_;
  }
  uint32_t hold = utf8_need_ > 0 ? utf8_have_ : 0;
  for (uint32_t q : state_) hold = std::max(hold, q);
  result_.hold_back = hold;
  result_.emit_end = n_fed_ - hold;
  return result_;
}

void StopMatcher::step(unsigned char byte) {
  ++n_fed_;
  // Track an incomplete UTF-8 sequence at the end of the text: lead bytes 110xxxxx, 1110xxxx and
  // 11110xxx expect 1, 2 and 3 continuation bytes 10xxxxxx.
  if (utf8_need_ > 0 && (byte & 0xC0u) == 0x80u) {
    --utf8_need_;
    utf8_have_ = utf8_need_ == 0 ? 0 : utf8_have_ + 1;
  } else {
    // ASCII, or a stray byte that cannot start a character, expects nothing.
    utf8_need_ = (byte & 0xE0u) == 0xC0u   ? 1
                 : (byte & 0xF0u) == 0xE0u ? 2
                 : (byte & 0xF8u) == 0xF0u ? 3
                                           : 0;
    utf8_have_ = utf8_need_ > 0 ? 1 : 0;
  }

  const char c = static_cast<char>(byte);
  size_t best = stops_.size();
  for (size_t s = 0; s < stops_.size(); ++s) {
    const std::string& pat = stops_[s];
    uint32_t q = state_[s];
    while (q > 0 && pat[q] != c) q = failure_[s][q - 1];
    if (pat[q] == c) ++q;
    state_[s] = q;
    if (q == pat.size() && (best == stops_.size() || pat.size() > stops_[best].size())) best = s;
  }
  if (best == stops_.size()) return;
  result_.stopped = true;
  result_.stop_index = best;
  result_.stop_end = n_fed_;
  result_.stop_begin = n_fed_ - stops_[best].size();
  result_.hold_back = 0;
  result_.emit_end = result_.stop_begin;
}

}  // namespace momentkv
