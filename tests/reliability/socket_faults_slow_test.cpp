// RELIABILITY.md §2.3 at its full sizes where they differ from the CI-sized integration test:
// 500 slowloris connections against a 10 s request-read deadline, a 1 MiB frame cap, a 30 s
// write-progress deadline with a 1 MiB output cap, max_connections 64 + 100. Each test prints
// `FIGURE US-n: ...`.
#include "tests/reliability/socket_fault_scenarios.h"

namespace momentkv::test::socket_faults {
namespace {

TEST(SocketFaultsFull, Us3FrameCaps) {
  frame_caps({.cap = 1 << 20, .rss_connections = 64, .endless_limit = size_t{1} << 30});
}

TEST(SocketFaultsFull, Us4Slowloris) {
  slowloris({.connections = 500, .read_deadline_ms = 10000});
}

TEST(SocketFaultsFull, Us5SlowReader) {
  slow_reader({.max_tokens = 4096,
               .output_cap = 1 << 20,
               .write_timeout_ms = 30000,
               .stuck_readers = 4,
               .rate_samples = 15});
}

TEST(SocketFaultsFull, Us6MaxConnections) {
  max_connections({.max_connections = 64, .extra = 100, .extra_threads = 4});
}

TEST(SocketFaultsFull, Us11IdleTimeout) {
  idle_timeout(60000);
}

}  // namespace
}  // namespace momentkv::test::socket_faults
