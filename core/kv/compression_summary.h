// What compression did to one generation, as every result reports it:
// compression: {policy, alpha, decode_budget, evicted, context_altered} (+ scope and KV bytes).
#pragma once

#include <cstdint>
#include <string>

#include "core/kv/kv_cache.h"
#include "core/kv/kv_config.h"

namespace momentkv {

struct CompressionSummary {
  std::string policy;
  std::string scope;   // "decode" or "unified"
  float alpha = 0.0f;  // meaningful for moment
  int32_t decode_budget = 0;
  int64_t evicted = 0;         // generated (or, unified, any) tokens dropped from the cache
  int64_t prompt_evicted = 0;  // prompt tokens dropped by snapkv prefill compression
  bool context_altered = false;
  int32_t resident_peak = 0;  // most tokens resident in a lane
  uint64_t kv_bytes_reserved = 0;
  uint64_t kv_bytes_peak = 0;  // bytes of the rows that were ever occupied at once

  static CompressionSummary from(const KvCache& cache);
  // One line for stderr.
  std::string to_string() const;
};

}  // namespace momentkv
