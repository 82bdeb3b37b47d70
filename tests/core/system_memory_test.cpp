// System memory for the budget check: /proc/meminfo and /proc/self/cgroup text as Linux writes
// it (a Jetson Orin Nano's meminfo, cgroup v2 and v1/hybrid files), a fake cgroup tree where a
// parent's limit binds, the MemoryMax= a budget needs, and the refusal messages with numbers.
#include "core/util/system_memory.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/support/temp_dir.h"

namespace momentkv {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

// /proc/meminfo of a Jetson Orin Nano 8 GB (JetPack 6, headless), abridged.
constexpr const char* kOrinNanoMeminfo =
    "MemTotal:        7802036 kB\n"
    "MemFree:         5904856 kB\n"
    "MemAvailable:    6897264 kB\n"
    "Buffers:           25420 kB\n"
    "Cached:          1002464 kB\n"
    "SwapCached:            0 kB\n"
    "HugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n";

TEST(SystemMemory, ParsesMeminfoFieldsInBytes) {
  EXPECT_EQ(parse_meminfo(kOrinNanoMeminfo, "MemTotal"), 7802036ull * 1024);
  EXPECT_EQ(parse_meminfo(kOrinNanoMeminfo, "MemAvailable"), 6897264ull * 1024);
  EXPECT_EQ(parse_meminfo(kOrinNanoMeminfo, "HugePages_Total"), 0u);  // no unit: a count
  // "MemFree" must not match a prefix of another key, nor a key match a prefix of it.
  EXPECT_EQ(parse_meminfo(kOrinNanoMeminfo, "Mem"), std::nullopt);
  EXPECT_EQ(parse_meminfo(kOrinNanoMeminfo, "Cache"), std::nullopt);
  EXPECT_EQ(parse_meminfo(kOrinNanoMeminfo, "MemShared"), std::nullopt);
  EXPECT_EQ(parse_meminfo("MemAvailable:  lots kB\n", "MemAvailable"), std::nullopt);
  EXPECT_EQ(parse_meminfo("MemAvailable:   12 kB", "MemAvailable"), 12u * 1024);  // no newline
  EXPECT_EQ(parse_meminfo("", "MemAvailable"), std::nullopt);
}

TEST(SystemMemory, ParsesProcSelfCgroup) {
  // cgroup v2 only (Debian 12, JetPack 6).
  auto p = parse_proc_cgroup("0::/system.slice/momentkvd.service\n");
  EXPECT_EQ(p.unified, "/system.slice/momentkvd.service");
  EXPECT_EQ(p.v1_memory, std::nullopt);
  // Hybrid (JetPack 5, Ubuntu 20.04): the memory controller is on v1.
  p = parse_proc_cgroup(
      "12:cpuset:/\n"
      "11:memory:/system.slice/momentkvd.service\n"
      "3:cpu,cpuacct:/system.slice/momentkvd.service\n"
      "1:name=systemd:/system.slice/momentkvd.service\n"
      "0::/system.slice/momentkvd.service\n");
  EXPECT_EQ(p.unified, "/system.slice/momentkvd.service");
  EXPECT_EQ(p.v1_memory, "/system.slice/momentkvd.service");
  // A co-mounted controller list, and garbage lines ignored.
  p = parse_proc_cgroup("7:cpu,memory:/a/b\nnonsense\n5:blkio\n");
  EXPECT_EQ(p.v1_memory, "/a/b");
  EXPECT_EQ(p.unified, std::nullopt);
}

TEST(SystemMemory, ParsesMemoryLimits) {
  EXPECT_EQ(parse_memory_limit("2415919104\n"), 2415919104u);
  EXPECT_EQ(parse_memory_limit("max\n"), std::nullopt);
  EXPECT_EQ(parse_memory_limit("9223372036854771712\n"), std::nullopt);  // v1 "unlimited"
  EXPECT_EQ(parse_memory_limit("12abc"), std::nullopt);
  EXPECT_EQ(parse_memory_limit(""), std::nullopt);
}

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(SystemMemory, CgroupLimitIsTheTightestOnThePathToTheRoot) {
  test::TempDir root("mkv-cgroup");
  const std::string r = root.file("");
  // v2: the service allows 2304M, its slice only 2 GiB; an unrelated sibling is tighter still.
  write(r + "/system.slice/momentkvd.service/memory.max", "2415919104\n");
  write(r + "/system.slice/memory.max", std::to_string(2 * kGiB) + "\n");
  write(r + "/system.slice/other.service/memory.max", "1048576\n");
  write(r + "/user.slice/memory.max", "max\n");
  CgroupPaths paths;
  paths.unified = "/system.slice/momentkvd.service";
  auto limit = cgroup_memory_limit(paths, r);
  ASSERT_TRUE(limit.has_value());
  EXPECT_EQ(limit->bytes, 2 * kGiB);
  EXPECT_EQ(limit->file, r + "/system.slice/memory.max");
  // No limit anywhere on the path ("max", missing files): none.
  paths.unified = "/user.slice/user-1000.slice/session-1.scope";
  EXPECT_FALSE(cgroup_memory_limit(paths, r).has_value());
  // The root of a container's cgroup namespace ("0::/") has its own memory.max.
  write(r + "/memory.max", std::to_string(512 * kMiB) + "\n");
  paths.unified = "/";
  limit = cgroup_memory_limit(paths, r);
  ASSERT_TRUE(limit.has_value());
  EXPECT_EQ(limit->bytes, 512 * kMiB);
  // v1: memory/<path>/memory.limit_in_bytes.
  CgroupPaths v1;
  v1.v1_memory = "/system.slice/momentkvd.service";
  write(r + "/memory/system.slice/momentkvd.service/memory.limit_in_bytes", "3221225472\n");
  write(r + "/memory/memory.limit_in_bytes", "9223372036854771712\n");
  limit = cgroup_memory_limit(v1, r);
  ASSERT_TRUE(limit.has_value());
  EXPECT_EQ(limit->bytes, 3 * kGiB);
  EXPECT_FALSE(cgroup_memory_limit(CgroupPaths{}, r).has_value());
}

TEST(SystemMemory, MemoryMaxForBudgetIsTheSmallestThatFits) {
  for (uint64_t budget : {1 * kMiB, 64 * kMiB, 2 * kGiB, 5 * kGiB, 48 * kGiB, 1000 * kGiB + 7}) {
    const uint64_t m = memory_max_for_budget(budget);
    EXPECT_EQ(m % kMiB, 0u);
    EXPECT_GE(m - cgroup_headroom(m), budget) << budget;
    const uint64_t less = m - kMiB;
    EXPECT_LT(less - cgroup_headroom(less), budget) << budget;
  }
  // The shipped unit: MemoryMax=2304M above the default 2 GiB budget.
  EXPECT_EQ(memory_max_for_budget(2 * kGiB), 2146 * kMiB);
  EXPECT_EQ(cgroup_headroom(2304 * kMiB), 100 * kMiB);
}

TEST(SystemMemory, RefusesABudgetLargerThanMemAvailablePlusRss) {
  SystemMemory m;
  m.mem_total = 8 * kGiB;
  m.mem_available = 6 * kGiB;
  EXPECT_EQ(check_memory_budget(0, m, 0), std::nullopt);  // no budget: nothing to check
  EXPECT_EQ(check_memory_budget(6 * kGiB, m, 0), std::nullopt);
  EXPECT_EQ(check_memory_budget(6 * kGiB + 10 * kMiB, m, 10 * kMiB), std::nullopt);
  const auto err = check_memory_budget(7 * kGiB, m, 10 * kMiB);
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("7.00 GiB (7516192768 bytes)"), std::string::npos) << *err;
  EXPECT_NE(err->find("MemAvailable"), std::string::npos) << *err;
  EXPECT_NE(err->find("6.00 GiB (6442450944 bytes)"), std::string::npos) << *err;
  EXPECT_NE(err->find("10.00 MiB (10485760 bytes)"), std::string::npos) << *err;
  // Unknown MemAvailable (not Linux): only the cgroup is checked.
  m.mem_available.reset();
  EXPECT_EQ(check_memory_budget(100 * kGiB, m, 0), std::nullopt);
}

TEST(SystemMemory, RefusesABudgetAboveTheCgroupLimitMinusHeadroom) {
  SystemMemory m;
  m.mem_available = 60 * kGiB;
  m.cgroup = CgroupLimit{2304 * kMiB, "/sys/fs/cgroup/system.slice/momentkvd.service/memory.max"};
  EXPECT_EQ(check_memory_budget(2 * kGiB, m, 0), std::nullopt);
  EXPECT_EQ(check_memory_budget(2204 * kMiB, m, 0), std::nullopt);  // 2304 - 100 MiB headroom
  const auto err = check_memory_budget(2205 * kMiB, m, 0);
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("memory.max"), std::string::npos) << *err;
  EXPECT_NE(err->find("2.25 GiB (2415919104 bytes)"), std::string::npos) << *err;
  EXPECT_NE(err->find("100.00 MiB"), std::string::npos) << *err;
  EXPECT_NE(err->find("set MemoryMax=2306M"), std::string::npos) << *err;
  // A limit smaller than its headroom leaves nothing.
  m.cgroup->bytes = 32 * kMiB;
  EXPECT_TRUE(check_memory_budget(1, m, 0).has_value());
}

TEST(SystemMemory, ReadsThisMachine) {
  const SystemMemory m = read_system_memory();
  ASSERT_TRUE(m.mem_total.has_value());
  ASSERT_TRUE(m.mem_available.has_value());
  EXPECT_GT(*m.mem_total, 0u);
  EXPECT_LE(*m.mem_available, *m.mem_total);
  EXPECT_NE(describe(m).find("MemAvailable"), std::string::npos);
}

}  // namespace
}  // namespace momentkv
