// What the machine and this process's cgroup can give, for checking `[memory] budget` before a
// daemon commits to it. Free memory is /proc/meminfo MemAvailable (what the kernel can hand out
// without swapping, reclaimable page cache included): on Jetson the CPU and the GPU share one
// DRAM, so this is also what a CUDA allocation draws from, and the CUDA free-memory call would
// not see what the CPU side holds. The cgroup limit is systemd's MemoryMax= (cgroup v2
// memory.max; v1 memory.limit_in_bytes on older JetPack releases).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace momentkv {

// The bytes of `key` (e.g. "MemAvailable") in /proc/meminfo text, whose values are in kB;
// nullopt when the key is absent or its value malformed.
std::optional<uint64_t> parse_meminfo(std::string_view meminfo, std::string_view key);

// This process's cgroup paths from /proc/self/cgroup text: the unified (v2, "0::PATH") path and
// the v1 memory controller's path ("N:memory:PATH" or "N:cpu,memory:PATH"), where present.
struct CgroupPaths {
  std::optional<std::string> unified;
  std::optional<std::string> v1_memory;
};
CgroupPaths parse_proc_cgroup(std::string_view text);

// A memory.max (v2) or memory.limit_in_bytes (v1) file's text in bytes; nullopt for no limit
// ("max", or v1's page-rounded INT64_MAX) and for malformed text.
std::optional<uint64_t> parse_memory_limit(std::string_view text);

// The tightest memory limit that applies to a cgroup, and the file that sets it.
struct CgroupLimit {
  uint64_t bytes = 0;
  std::string file;
};
// Walks from the cgroup of `paths` up to the hierarchy's root under `cgroup_root` (a parent's
// limit binds its children), reading memory.max (v2) and memory/…/memory.limit_in_bytes (v1);
// nullopt when no file sets a limit.
std::optional<CgroupLimit> cgroup_memory_limit(const CgroupPaths& paths,
                                               const std::string& cgroup_root = "/sys/fs/cgroup");

struct SystemMemory {
  std::optional<uint64_t> mem_total;      // MemTotal
  std::optional<uint64_t> mem_available;  // MemAvailable
  std::optional<CgroupLimit> cgroup;      // nullopt: no cgroup memory limit
};
// Reads /proc/meminfo, /proc/self/cgroup and the cgroup's limit files (Linux).
SystemMemory read_system_memory();

// What a cgroup limit must keep free beyond the budget: memory charged to the cgroup that the
// budget does not count (page tables of the mapped weights, socket buffers, allocator slack):
// 64 MiB + 1/64 of the limit.
uint64_t cgroup_headroom(uint64_t limit);
// The smallest cgroup limit (MemoryMax=) under which `budget` fits, rounded up to a MiB.
uint64_t memory_max_for_budget(uint64_t budget);

// nullopt when a budget of `budget` bytes (0: none) can be met; otherwise why not, with the
// numbers: it must not exceed MemAvailable plus `rss` (what this process already holds, which
// the budget counts), nor the cgroup limit minus cgroup_headroom().
std::optional<std::string> check_memory_budget(uint64_t budget, const SystemMemory& memory,
                                               uint64_t rss);
// "MemTotal 23.54 GiB, MemAvailable 23.13 GiB, cgroup limit 2.25 GiB (/sys/fs/cgroup/…/memory.max)"
std::string describe(const SystemMemory& memory);

}  // namespace momentkv
