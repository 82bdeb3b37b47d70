#include "core/util/system_memory.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/engine/memory_budget.h"

namespace momentkv {

namespace {

constexpr uint64_t kMiB = 1ull << 20;
// cgroup v1 reports "no limit" as INT64_MAX rounded down to a page; anything this large is none.
constexpr uint64_t kUnlimited = 1ull << 62;

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Lines of `text`, without their '\n'.
std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

// The tightest limit set by `file_name` in the cgroup directory root + cgroup and its parents up
// to `root`, merged into `best`.
void tightest(const std::string& root, const std::string& cgroup, const std::string& file_name,
              std::optional<CgroupLimit>& best) {
  std::string rel = cgroup;
  while (true) {
    while (!rel.empty() && rel.back() == '/') rel.pop_back();
    const std::string file = root + rel + "/" + file_name;
    if (const auto text = read_text(file)) {
      if (const auto bytes = parse_memory_limit(*text)) {
        if (!best || *bytes < best->bytes) best = CgroupLimit{*bytes, file};
      }
    }
    if (rel.empty()) break;
    rel.erase(rel.rfind('/'));
  }
}

std::string bytes_and_unit(uint64_t b) {
  return format_bytes(b) + " (" + std::to_string(b) + " bytes)";
}

}  // namespace

std::optional<uint64_t> parse_meminfo(std::string_view meminfo, std::string_view key) {
  for (std::string_view line : lines(meminfo)) {
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') {
      continue;
    }
    std::string_view value = trim(line.substr(key.size() + 1));
    uint64_t scale = 1;
    if (value.size() > 2 && value.substr(value.size() - 2) == "kB") {
      scale = 1024;
      value = trim(value.substr(0, value.size() - 2));
    }
    const auto v = parse_u64(value);
    if (!v || *v > UINT64_MAX / scale) return std::nullopt;
    return *v * scale;
  }
  return std::nullopt;
}

CgroupPaths parse_proc_cgroup(std::string_view text) {
  CgroupPaths p;
  for (std::string_view line : lines(text)) {
    const auto c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    const auto c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, c1);
    const std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    const std::string path(trim(line.substr(c2 + 1)));
    if (path.empty() || path[0] != '/') continue;
    if (id == "0" && controllers.empty()) {
      p.unified = path;
      continue;
    }
    std::string_view rest = controllers;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      if (rest.substr(0, comma) == "memory") p.v1_memory = path;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return p;
}

std::optional<uint64_t> parse_memory_limit(std::string_view text) {
  const auto v = parse_u64(trim(text));
  if (!v || *v >= kUnlimited) return std::nullopt;
  return v;
}

std::optional<CgroupLimit> cgroup_memory_limit(const CgroupPaths& paths,
                                               const std::string& cgroup_root) {
  std::optional<CgroupLimit> best;
  if (paths.unified) tightest(cgroup_root, *paths.unified, "memory.max", best);
  if (paths.v1_memory) {
    tightest(cgroup_root + "/memory", *paths.v1_memory, "memory.limit_in_bytes", best);
  }
  return best;
}

SystemMemory read_system_memory() {
  SystemMemory m;
  if (const auto meminfo = read_text("/proc/meminfo")) {
    m.mem_total = parse_meminfo(*meminfo, "MemTotal");
    m.mem_available = parse_meminfo(*meminfo, "MemAvailable");
  }
  if (const auto cgroup = read_text("/proc/self/cgroup")) {
    m.cgroup = cgroup_memory_limit(parse_proc_cgroup(*cgroup));
  }
  return m;
}

uint64_t cgroup_headroom(uint64_t limit) {
  return 64 * kMiB + limit / 64;
}

uint64_t memory_max_for_budget(uint64_t budget) {
  // The smallest m with m - (64 MiB + m / 64) >= budget, searched upward from the closed form
  // because of the integer division.
  uint64_t m = (budget + 64 * kMiB) / 63 * 64;
  m = (m + kMiB - 1) / kMiB * kMiB;
  while (m - cgroup_headroom(m) < budget) m += kMiB;
  return m;
}

std::optional<std::string> check_memory_budget(uint64_t budget, const SystemMemory& memory,
                                               uint64_t rss) {
  if (budget == 0) return std::nullopt;
  if (memory.mem_available && budget > *memory.mem_available + rss) {
    return "memory budget " + bytes_and_unit(budget) +
           " cannot be met: MemAvailable in /proc/meminfo is " +
           bytes_and_unit(*memory.mem_available) + " and this process holds " +
           bytes_and_unit(rss) + ", together " + bytes_and_unit(*memory.mem_available + rss) +
           "; lower [memory] budget or free memory";
  }
  if (memory.cgroup) {
    const uint64_t limit = memory.cgroup->bytes;
    const uint64_t headroom = cgroup_headroom(limit);
    const uint64_t ceiling = limit > headroom ? limit - headroom : 0;
    if (budget > ceiling) {
      return "memory budget " + bytes_and_unit(budget) + " does not fit the cgroup limit " +
             bytes_and_unit(limit) + " (" + memory.cgroup->file + ", systemd's MemoryMax=) minus " +
             bytes_and_unit(headroom) + " headroom = " + bytes_and_unit(ceiling) +
             "; set MemoryMax=" + std::to_string(memory_max_for_budget(budget) / kMiB) +
             "M or more, or lower [memory] budget";
    }
  }
  return std::nullopt;
}

std::string describe(const SystemMemory& memory) {
  auto opt = [](const std::optional<uint64_t>& v) {
    return v ? format_bytes(*v) : std::string("unknown");
  };
  std::string s = "MemTotal " + opt(memory.mem_total) + ", MemAvailable " +
                  opt(memory.mem_available) + ", cgroup limit ";
  s += memory.cgroup ? format_bytes(memory.cgroup->bytes) + " (" + memory.cgroup->file + ")"
                     : std::string("none");
  return s;
}

}  // namespace momentkv
