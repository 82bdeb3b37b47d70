// The /metrics latency histogram: cumulative buckets, sum and count in seconds.
#include <gtest/gtest.h>

#include "daemon/latency_histogram.h"

namespace momentkv::daemon {
namespace {

TEST(LatencyHistogram, CumulativeBucketsInSeconds) {
  LatencyHistogram h;
  for (double ms : {0.5, 3.0, 3.0, 40.0, 20000.0}) h.observe(ms);
  const std::string t = h.render("x_seconds", "test");
  EXPECT_NE(t.find("# TYPE x_seconds histogram\n"), std::string::npos);
  EXPECT_NE(t.find("x_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{le=\"0.002\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{le=\"0.005\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{le=\"0.05\"} 4\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{le=\"10\"} 4\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{le=\"+Inf\"} 5\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_count 5\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_sum 20.046500\n"), std::string::npos) << t;
}

}  // namespace
}  // namespace momentkv::daemon
