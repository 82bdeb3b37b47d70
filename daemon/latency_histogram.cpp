#include "daemon/latency_histogram.h"

#include <cstdio>

namespace momentkv::daemon {

void LatencyHistogram::observe(double ms) {
  size_t b = 0;
  while (b < kBoundsMs.size() && ms > kBoundsMs[b]) ++b;
  counts_[b].fetch_add(1, std::memory_order_relaxed);
  n_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(ms * 1000.0), std::memory_order_relaxed);
}

std::string LatencyHistogram::render(const std::string& name, const std::string& help) const {
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  char buf[160];
  for (size_t b = 0; b <= kBoundsMs.size(); ++b) {
    cumulative += counts_[b].load(std::memory_order_relaxed);
    if (b < kBoundsMs.size()) {
      std::snprintf(buf, sizeof buf, "%s_bucket{le=\"%g\"} %llu\n", name.c_str(),
                    kBoundsMs[b] / 1000.0, static_cast<unsigned long long>(cumulative));
    } else {
      std::snprintf(buf, sizeof buf, "%s_bucket{le=\"+Inf\"} %llu\n", name.c_str(),
                    static_cast<unsigned long long>(cumulative));
    }
    out.append(buf);
  }
  std::snprintf(buf, sizeof buf, "%s_sum %.6f\n%s_count %llu\n", name.c_str(),
                static_cast<double>(sum_us_.load()) / 1e6, name.c_str(),
                static_cast<unsigned long long>(n_.load()));
  out.append(buf);
  return out;
}

}  // namespace momentkv::daemon
