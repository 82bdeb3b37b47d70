#include "core/kv/compression_summary.h"

#include <cstdio>

namespace momentkv {

CompressionSummary CompressionSummary::from(const KvCache& cache) {
  const KvConfig& c = cache.config();
  const KvStats& s = cache.stats();
  CompressionSummary r;
  r.policy = c.policy;
  r.scope = kv_scope_name(c.scope);
  r.alpha = c.alpha;
  r.decode_budget = c.decode_budget;
  r.evicted = s.evicted_tokens;
  r.prompt_evicted = s.prompt_evicted;
  r.context_altered = s.context_altered();
  r.resident_peak = s.resident_peak;
  r.kv_bytes_reserved = s.kv_bytes;
  const uint64_t lanes = static_cast<uint64_t>(cache.n_layer()) * cache.n_head_kv();
  r.kv_bytes_peak =
      2 * cache.storage().row_bytes() * lanes * static_cast<uint64_t>(s.resident_peak);
  return r;
}

std::string CompressionSummary::to_string() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "compression: policy %s, scope %s, alpha %.3g, decode_budget %d: %lld tokens "
                "evicted (+%lld prompt tokens by snapkv), %d resident at peak, KV %.1f KiB peak of "
                "%.1f KiB reserved, context altered: %s",
                policy.c_str(), scope.c_str(), static_cast<double>(alpha), decode_budget,
                static_cast<long long>(evicted), static_cast<long long>(prompt_evicted),
                resident_peak, static_cast<double>(kv_bytes_peak) / 1024,
                static_cast<double>(kv_bytes_reserved) / 1024, context_altered ? "yes" : "no");
  return buf;
}

}  // namespace momentkv
