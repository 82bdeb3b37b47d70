// One generation advanced a token at a time, so that a scheduler can interleave several: the
// prompt is processed by prefill(), each step() samples one token and feeds it, and the text that
// has become safe to show (never part of a stop string or of a UTF-8 character) is returned.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/engine/generation_result.h"
#include "core/engine/sequence.h"
#include "core/sampler/sampler.h"
#include "core/sampler/stop_matcher.h"
#include "core/tokenizer/tokenizer.h"

namespace momentkv {

class GenerationSession {
 public:
  // Tokenizes and validates (throws Error for invalid sampling parameters or a prompt that does
  // not fit the sequence). Resets the sequence; does no model work yet.
  GenerationSession(Sequence& sequence, const Tokenizer& tokenizer,
                    const GenerationRequest& request);

  // Processes the prompt. Precondition: not done().
  void prefill();
  // Samples the next token and feeds it to the model; returns the newly safe text (may be
  // empty). Precondition: prefilled and not done(). Equals sample() followed by feed().
  std::string step();
  // Samples the next token and decides whether the generation goes on; returns the newly safe
  // text. When it goes on, needs_feed() is true and pending_token() must be fed before the next
  // sample(): by feed() alone, or with other sequences through a BatchDecoder and then fed().
  std::string sample();
  bool needs_feed() const { return needs_feed_; }
  int32_t pending_token() const { return pending_; }
  void feed();
  // The logits the batched pass computed for pending_token() (valid until the next sample()).
  void fed(std::span<const float> logits);
  Sequence& sequence() { return sequence_; }
  // Ends the generation with finish reason "cancelled".
  void cancel();
  bool prefilled() const { return prefilled_; }
  bool done() const { return done_; }
  // Text not yet returned by step(): call after done() to flush the held-back tail.
  std::string flush();
  // The result so far (complete once done()).
  const GenerationResult& result() const { return r_; }

 private:
  void finish(const char* reason);

  Sequence& sequence_;
  const Tokenizer& tokenizer_;
  GenerationRequest request_;
  Sampler sampler_;
  StopMatcher stops_;
  GenerationResult r_;
  std::span<const float> logits_;
  size_t shown_ = 0;
  bool prefilled_ = false;
  bool done_ = false;
  bool needs_feed_ = false;
  int32_t pending_ = -1;
  std::chrono::steady_clock::time_point t0_, t_decode_;
};

}  // namespace momentkv
