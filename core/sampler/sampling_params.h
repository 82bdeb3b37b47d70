// How the next token is chosen from the logits, and when generation stops. Defaults follow
// llama.cpp's command line (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no repetition
// penalty over the last 64 tokens).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace momentkv {

// Seed value meaning "pick one from the clock and std::random_device".
inline constexpr uint64_t kRandomSeed = std::numeric_limits<uint64_t>::max();

struct SamplingParams {
  // Caps that keep a request from asking for unbounded memory.
  static constexpr int32_t kMaxRepeatLastN = 1 << 20;
  static constexpr size_t kMaxStopStrings = 64;
  static constexpr size_t kMaxStopBytes = 1024;

  float temperature = 0.8f;     // <= 0: greedy argmax
  int32_t top_k = 40;           // <= 0: disabled
  float top_p = 0.95f;          // in (0, 1]; 1: disabled
  float min_p = 0.05f;          // in [0, 1]; 0: disabled
  float repeat_penalty = 1.0f;  // > 0; 1: disabled
  int32_t repeat_last_n = 64;   // tokens of history the penalty looks at; 0: disabled
  uint64_t seed = kRandomSeed;
  int32_t max_tokens = -1;        // tokens to generate; -1: until a stop or the context is full
  std::vector<std::string> stop;  // non-empty byte strings that end generation

  // Why these parameters are unusable (naming the field and value), or nullopt when they are fine.
  std::optional<std::string> validate() const {
    const auto bad = [](const char* field, const std::string& value, const std::string& want) {
      return std::optional<std::string>(std::string(field) + " = " + value + ": " + want);
    };
    const auto num = [](float v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
      return std::string(buf);
    };
    if (!std::isfinite(temperature) || temperature < 0.0f) {
      return bad("temperature", num(temperature), "must be finite and >= 0");
    }
    if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f) {
      return bad("top_p", num(top_p), "must be in (0, 1]");
    }
    if (!std::isfinite(min_p) || min_p < 0.0f || min_p > 1.0f) {
      return bad("min_p", num(min_p), "must be in [0, 1]");
    }
    if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0.0f) {
      return bad("repeat_penalty", num(repeat_penalty), "must be finite and > 0");
    }
    if (repeat_last_n < 0 || repeat_last_n > kMaxRepeatLastN) {
      return bad("repeat_last_n", std::to_string(repeat_last_n),
                 "must be in [0, " + std::to_string(kMaxRepeatLastN) + "]");
    }
    if (max_tokens < -1) {
      return bad("max_tokens", std::to_string(max_tokens), "must be -1 (no limit) or >= 0");
    }
    if (stop.size() > kMaxStopStrings) {
      return bad("stop", std::to_string(stop.size()) + " strings",
                 "at most " + std::to_string(kMaxStopStrings) + " allowed");
    }
    for (size_t i = 0; i < stop.size(); ++i) {
      if (stop[i].empty() || stop[i].size() > kMaxStopBytes) {
        return bad("stop",
                   "[" + std::to_string(i) + "] of " + std::to_string(stop[i].size()) + " bytes",
                   "each must be 1 to " + std::to_string(kMaxStopBytes) + " bytes");
      }
    }
    return std::nullopt;
  }
};

}  // namespace momentkv
