// A fixed-bucket latency histogram for /metrics (Prometheus `histogram` type). One writer (the
// inference worker) and any number of readers; counters are atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace momentkv::daemon {

class LatencyHistogram {
 public:
  // Upper bounds in milliseconds (the last bucket, +Inf, is implicit).
  static constexpr std::array<double, 13> kBoundsMs = {1,   2,   5,    10,   25,   50,   100,
                                                       250, 500, 1000, 2500, 5000, 10000};
  void observe(double ms);
  // The Prometheus text of this histogram (seconds, as Prometheus expects), with HELP/TYPE.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::array<std::atomic<uint64_t>, kBoundsMs.size() + 1> counts_{};
  std::atomic<uint64_t> n_{0};
  std::atomic<uint64_t> sum_us_{0};
};

}  // namespace momentkv::daemon
