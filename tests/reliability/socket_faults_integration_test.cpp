// RELIABILITY.md §2.3 US-2 … US-11 against the real momentkvd, sized for CI (2 cores, also run
// under ASan+UBSan): fewer slowloris connections with a 2 s request-read deadline, a 3 s
// write-progress deadline, 1 s idle timeout. The full sizes are in socket_faults_slow_test.cpp.
// Each test prints `FIGURE US-n: ...`.
#include "tests/reliability/socket_fault_scenarios.h"

namespace momentkv::test::socket_faults {
namespace {

TEST(SocketFaults, Us2StaleSocketAndSecondInstance) {
  stale_socket_and_second_instance();
}

TEST(SocketFaults, Us3FrameCaps) {
  frame_caps({.cap = 256 << 10, .rss_connections = 16, .endless_limit = size_t{1} << 30});
}

TEST(SocketFaults, Us4Slowloris) {
  slowloris({.connections = 150, .read_deadline_ms = 2000});
}

TEST(SocketFaults, Us5SlowReader) {
  slow_reader(
      {.max_tokens = 4096, .output_cap = 64 << 10, .write_timeout_ms = 3000, .stuck_readers = 2});
}

TEST(SocketFaults, Us6MaxConnections) {
  max_connections({.max_connections = 32, .extra = 100, .extra_threads = 4});
}

TEST(SocketFaults, Us7DisconnectStorm) {
  disconnect_storm({.disconnects = 1000, .threads = 8});
}

TEST(SocketFaults, Us8SigtermUnderLoad) {
  sigterm_under_load({.streams = 50, .shutdown_deadline_ms = 500});
}

TEST(SocketFaults, Us9SighupStorm) {
  sighup_storm({.reloads = 100, .client_threads = 3});
}

TEST(SocketFaults, Us10PipelinedOrdering) {
  pipelined_ordering(100);
}

TEST(SocketFaults, Us11IdleTimeout) {
  idle_timeout(1000);
}

}  // namespace
}  // namespace momentkv::test::socket_faults
