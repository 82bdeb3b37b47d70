#include "core/engine/generation_session.h"

#include "core/util/error.h"

namespace momentkv {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
const SamplingParams& validated(const SamplingParams& p) {
  if (auto err = p.validate()) throw Error("invalid sampling parameter: " + *err);
  return p;
}
}  // namespace

GenerationSession::GenerationSession(Sequence& sequence, const Tokenizer& tokenizer,
                                     const GenerationRequest& request)
    : sequence_(sequence),
      tokenizer_(tokenizer),
      request_(request),
      sampler_(validated(request.sampling)),
      stops_(request.sampling.stop) {
  r_.prompt_ids = tokenizer_.encode(request_.prompt, request_.add_special, request_.parse_special);
  check(!r_.prompt_ids.empty(), "the prompt is empty");
  sequence_.reset();
  check(sequence_.can_eval(static_cast<int32_t>(r_.prompt_ids.size()), Region::kPrefill) &&
            static_cast<int64_t>(r_.prompt_ids.size()) < sequence_.n_ctx(),
        "the prompt has " + std::to_string(r_.prompt_ids.size()) +
            " tokens, which does not fit (context " + std::to_string(sequence_.n_ctx()) +
            ", prompt reservation " + std::to_string(sequence_.max_prompt()) + ")");
  r_.seed = sampler_.seed();
  for (int32_t id : r_.prompt_ids) sampler_.accept(id);
  r_.timings.n_prompt = static_cast<int32_t>(r_.prompt_ids.size());
  r_.finish_reason = "length";
  if (request_.sampling.max_tokens == 0) done_ = true;
}

void GenerationSession::prefill() {
  check(!prefilled_ && !done_, "GenerationSession::prefill called twice or after the end");
  t0_ = std::chrono::steady_clock::now();
  logits_ = sequence_.eval(r_.prompt_ids, false, Region::kPrefill);
  prefilled_ = true;
}

void GenerationSession::finish(const char* reason) {
  done_ = true;
  r_.finish_reason = reason;
  if (r_.timings.prompt_ms == 0.0) r_.timings.prompt_ms = ms_since(t0_);
  r_.timings.decode_ms = r_.ids.empty() ? 0.0 : ms_since(t_decode_);
  r_.timings.n_generated = static_cast<int32_t>(r_.ids.size());
  r_.compression = sequence_.compression();
}

void GenerationSession::cancel() {
  if (!done_) finish("cancelled");
}

std::string GenerationSession::step() {
  std::string out = sample();
  if (needs_feed_) feed();
  return out;
}

void GenerationSession::feed() {
  check(needs_feed_, "GenerationSession::feed without a sampled token");
  const int32_t one[1] = {pending_};
  logits_ = sequence_.eval(one, false, Region::kDecode);
  needs_feed_ = false;
}

void GenerationSession::fed(std::span<const float> logits) {
  check(needs_feed_ && logits.size() == static_cast<size_t>(sequence_.n_vocab()),
        "GenerationSession::fed without a sampled token or with logits of another size");
  logits_ = logits;
  needs_feed_ = false;
}

std::string GenerationSession::sample() {
  check(prefilled_ && !done_ && !needs_feed_,
        "GenerationSession::sample before prefill, after the end or before the last token was fed");
  const int32_t id = sampler_.sample(logits_);
  if (r_.ids.empty()) {
    r_.timings.prompt_ms = ms_since(t0_);
    t_decode_ = std::chrono::steady_clock::now();
  }
  if (tokenizer_.is_eog(id)) {
    finish("stop");
    return "";
  }
  sampler_.accept(id);
  r_.ids.push_back(id);
  r_.text += tokenizer_.token_to_piece(id);
  const auto& st = stops_.feed(std::string_view(r_.text).substr(stops_.n_fed()));
  if (st.stopped) {
    r_.text.resize(st.stop_begin);
    finish("stop");
    return "";
  }
  std::string out;
  if (st.emit_end > shown_) {
    out = r_.text.substr(shown_, st.emit_end - shown_);
    shown_ = st.emit_end;
  }
  const int32_t max_tokens = request_.sampling.max_tokens;
  if (max_tokens >= 0 && static_cast<int32_t>(r_.ids.size()) >= max_tokens) {
    finish("length");
  } else if (!sequence_.can_eval(1, Region::kDecode)) {
    finish("length");  // context or KV budget full
  } else {
    pending_ = id;
    needs_feed_ = true;
  }
  return out;
}

std::string GenerationSession::flush() {
  if (r_.finish_reason == "cancelled" || shown_ >= r_.text.size()) return "";
  std::string out = r_.text.substr(shown_);
  shown_ = r_.text.size();
  return out;
}

}  // namespace momentkv
