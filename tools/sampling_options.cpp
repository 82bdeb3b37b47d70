#include "tools/sampling_options.h"

#include <limits>

namespace momentkv::tools {

SamplingOptions::SamplingOptions() {
  params_.max_tokens = 128;
}

void SamplingOptions::add_to(ArgParser& p) {
  p.add({"-n", "--n-predict"}, "N", "tokens to generate (default 128; -1 = until the context ends)",
        [this](const std::string& v) {
          params_.max_tokens = static_cast<int32_t>(ArgParser::to_int("-n", v, -1, 1 << 30));
        });
  p.add({"--temp"}, "T", "temperature (default 0.8; 0 = greedy)", [this](const std::string& v) {
    params_.temperature = static_cast<float>(ArgParser::to_double("--temp", v));
  });
  p.add({"--top-k"}, "N", "top-k (default 40; 0 = off)", [this](const std::string& v) {
    params_.top_k = static_cast<int32_t>(ArgParser::to_int("--top-k", v, 0, 1 << 30));
  });
  p.add({"--top-p"}, "P", "top-p (default 0.95; 1 = off)", [this](const std::string& v) {
    params_.top_p = static_cast<float>(ArgParser::to_double("--top-p", v));
  });
  p.add({"--min-p"}, "P", "min-p (default 0.05; 0 = off)", [this](const std::string& v) {
    params_.min_p = static_cast<float>(ArgParser::to_double("--min-p", v));
  });
  p.add({"--repeat-penalty"}, "X", "repetition penalty (default 1.0 = off)",
        [this](const std::string& v) {
          params_.repeat_penalty = static_cast<float>(ArgParser::to_double("--repeat-penalty", v));
        });
  p.add({"--repeat-last-n"}, "N", "tokens the penalty looks back over (default 64)",
        [this](const std::string& v) {
          params_.repeat_last_n =
              static_cast<int32_t>(ArgParser::to_int("--repeat-last-n", v, 0, 1 << 20));
        });
  p.add({"-s", "--seed"}, "N", "random seed (default: random)", [this](const std::string& v) {
    params_.seed = static_cast<uint64_t>(
        ArgParser::to_int("--seed", v, 0, std::numeric_limits<int64_t>::max()));
  });
  p.add({"--stop"}, "TEXT", "stop when TEXT is generated (repeatable)",
        [this](const std::string& v) { params_.stop.push_back(v); });
}

SamplingParams SamplingOptions::params() const {
  if (auto err = params_.validate()) throw UsageError(*err);
  return params_;
}

}  // namespace momentkv::tools
