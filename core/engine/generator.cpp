#include "core/engine/generator.h"

#include <chrono>

#include "core/sampler/sampler.h"
#include "core/sampler/stop_matcher.h"
#include "core/util/error.h"

namespace momentkv {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

double GenerationTimings::prompt_tokens_per_s() const {
  return prompt_ms > 0 ? n_prompt * 1000.0 / prompt_ms : 0.0;
}
double GenerationTimings::decode_tokens_per_s() const {
  return decode_ms > 0 && n_generated > 1 ? (n_generated - 1) * 1000.0 / decode_ms : 0.0;
}

Generator::Generator(Engine& engine, const Tokenizer& tokenizer)
    : engine_(engine), tokenizer_(tokenizer) {}

GenerationResult Generator::generate(const GenerationRequest& req,
                                     const std::function<bool(std::string_view)>& on_text) {
  if (auto err = req.sampling.validate()) throw Error("invalid sampling parameter: " + *err);
  GenerationResult r;
  r.prompt_ids = tokenizer_.encode(req.prompt, req.add_special, req.parse_special);
  check(!r.prompt_ids.empty(), "the prompt is empty");
  engine_.reset();
  check(engine_.can_eval(static_cast<int32_t>(r.prompt_ids.size()), Region::kPrefill) &&
            static_cast<int64_t>(r.prompt_ids.size()) < engine_.n_ctx(),
        "the prompt has " + std::to_string(r.prompt_ids.size()) +
            " tokens, which does not fit (context " + std::to_string(engine_.n_ctx()) +
            ", prompt reservation " + std::to_string(engine_.max_prompt()) + ")");
  Sampler sampler(req.sampling);
  r.seed = sampler.seed();
  for (int32_t id : r.prompt_ids) sampler.accept(id);
  StopMatcher stops(req.sampling.stop);
  size_t shown = 0;
  bool cancelled = false;
  auto emit = [&](size_t upto) {
    if (upto > shown && !cancelled) {
      if (on_text && !on_text(std::string_view(r.text).substr(shown, upto - shown))) {
        cancelled = true;
      }
      shown = upto;
    }
  };

  r.timings.n_prompt = static_cast<int32_t>(r.prompt_ids.size());
  const auto t0 = std::chrono::steady_clock::now();
  auto logits = engine_.eval(r.prompt_ids);
  r.finish_reason = "length";
  const int32_t max_tokens = req.sampling.max_tokens;
  auto t_decode = std::chrono::steady_clock::now();
  while (max_tokens < 0 || static_cast<int32_t>(r.ids.size()) < max_tokens) {
    const int32_t id = sampler.sample(logits);
    if (r.ids.empty()) {
      r.timings.prompt_ms = ms_since(t0);
      t_decode = std::chrono::steady_clock::now();
    }
    if (tokenizer_.is_eog(id)) {
      r.finish_reason = "stop";
      break;
    }
    sampler.accept(id);
    r.ids.push_back(id);
    r.text += tokenizer_.token_to_piece(id);
    const auto& st = stops.feed(std::string_view(r.text).substr(stops.n_fed()));
    if (st.stopped) {
      r.text.resize(st.stop_begin);
      r.finish_reason = "stop";
      break;
    }
    emit(st.emit_end);
    if (cancelled) {
      r.finish_reason = "cancelled";
      break;
    }
    if (max_tokens >= 0 && static_cast<int32_t>(r.ids.size()) >= max_tokens) break;
    if (!engine_.can_eval(1, Region::kDecode)) break;  // context or KV budget full: "length"
    const int32_t one[1] = {id};
    logits = engine_.eval(one, false, Region::kDecode);
  }
  if (r.ids.empty() && r.timings.prompt_ms == 0.0) r.timings.prompt_ms = ms_since(t0);
  r.timings.decode_ms = r.ids.empty() ? 0.0 : ms_since(t_decode);
  r.timings.n_generated = static_cast<int32_t>(r.ids.size());
  r.compression = CompressionSummary::from(engine_.kv());
  if (!cancelled) emit(r.text.size());
  return r;
}

}  // namespace momentkv
