// The machine's streaming read bandwidth: the ceiling for decode, which reads every weight once
// per token. Measured, not looked up, with the same threads the benchmark uses.
#pragma once

#include <cstdint>

#include "core/util/thread_pool.h"

namespace momentkv::tools {

struct ReadBandwidth {
  double gb_per_s = 0;        // best run, 1e9 bytes per second
  double mean_gb_per_s = 0;   // mean over the timed runs
  uint64_t buffer_bytes = 0;  // bytes read per run
  int n_threads = 0;
  int n_runs = 0;
};

// Bytes of the last-level cache of CPU 0 (sysfs index3, else index2), or 0 when unknown.
uint64_t last_level_cache_bytes();

// Default buffer size: 8x the last-level cache, at least 256 MiB, at most 1 GiB.
uint64_t default_bandwidth_buffer_bytes();

// Sums a buffer of `buffer_bytes` (0: the default) split across `pool`'s threads, once to warm up
// and then `n_runs` timed times (n_runs >= 1); returns the best and mean read rate.
ReadBandwidth measure_read_bandwidth(ThreadPool& pool, uint64_t buffer_bytes = 0, int n_runs = 5);

}  // namespace momentkv::tools
