#include "core/kv/kv_config.h"

#include <cmath>

namespace momentkv {

const char* kv_scope_name(KvScope s) {
  return s == KvScope::kDecode ? "decode" : "unified";
}
const char* granularity_name(Granularity g) {
  return g == Granularity::kLayer ? "layer" : "kv_head";
}

int32_t KvConfig::effective_recent() const {
  if (recent >= 0) return recent;
  if (policy == "h2o" || policy == "scope") return decode_budget / 2;
  return 0;
}

std::optional<std::string> KvConfig::validate() const {
  if (policy != "full" && policy != "moment" && policy != "h2o" && policy != "tova" &&
      policy != "streaming" && policy != "scope") {
    return "policy = '" + policy + "': must be one of full, moment, h2o, tova, streaming, scope";
  }
  if (decode_budget < 0 || decode_budget > (1 << 24)) {
    return "decode_budget = " + std::to_string(decode_budget) + ": must be in [0, 16777216]";
  }
  if (evicts() && decode_budget < 1) {
    return "decode_budget = 0: policy '" + policy + "' needs a budget of at least 1";
  }
  if (!(alpha >= 0.0f && alpha <= 1.0f)) {
    return "alpha = " + std::to_string(alpha) + ": must be in [0, 1]";
  }
  if (grace < 0) return "grace = " + std::to_string(grace) + ": must be >= 0";
  if (recent > decode_budget) {
    return "recent = " + std::to_string(recent) + ": must not exceed decode_budget " +
           std::to_string(decode_budget);
  }
  if (sinks < 0 ||
      (policy == "streaming" && scope == KvScope::kUnified && sinks >= decode_budget)) {
    return "sinks = " + std::to_string(sinks) + ": must be in [0, decode_budget)";
  }
  if (prefill_budget < 0) return "prefill_budget = " + std::to_string(prefill_budget);
  if (prefill_budget > 0 && prefill_budget <= snapkv_window) {
    return "prefill_budget = " + std::to_string(prefill_budget) +
           ": must exceed the snapkv observation window " + std::to_string(snapkv_window);
  }
  if (snapkv_window < 1 || snapkv_kernel < 1 || snapkv_kernel % 2 == 0) {
    return "snapkv_window / snapkv_kernel: window >= 1 and an odd kernel >= 1";
  }
  return std::nullopt;
}

}  // namespace momentkv
