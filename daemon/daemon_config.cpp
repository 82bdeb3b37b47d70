#include "daemon/daemon_config.h"

#include <toml++/toml.h>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/engine/memory_budget.h"

namespace momentkv {

namespace {

class Reader {
 public:
  Reader(const toml::table& root, std::string source) : root_(root), source_(std::move(source)) {}

  // Rejects sections and keys that are not in `allowed`.
  void check_keys(const std::map<std::string, std::set<std::string>>& allowed) const {
    for (const auto& [section, node] : root_) {
      const std::string name(section.str());
      auto it = allowed.find(name);
      if (it == allowed.end()) fail(name, "unknown section [" + name + "]");
      const auto* table = node.as_table();
      if (!table) fail(name, "must be a table ([" + name + "])");
      for (const auto& [key, value] : *table) {
        (void)value;
        if (!it->second.count(std::string(key.str()))) {
          fail(name + "." + std::string(key.str()), "unknown key");
        }
      }
    }
  }

  template <typename T>
  std::optional<T> get(const std::string& section, const std::string& key) const {
    const auto node = root_[section][key];
    if (!node) return std::nullopt;
    if constexpr (std::is_same_v<T, bool>) {
      if (!node.is_boolean()) fail(section + "." + key, "must be true or false");
      return node.value<bool>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!node.is_string()) fail(section + "." + key, "must be a string");
      return node.value<std::string>();
    } else if constexpr (std::is_same_v<T, double>) {
      if (!node.is_number()) fail(section + "." + key, "must be a number");
      return node.value<double>();
    } else {
      if (!node.is_integer()) fail(section + "." + key, "must be an integer");
      return node.value<int64_t>();
    }
  }

  int32_t get_int(const std::string& section, const std::string& key, int32_t def, int64_t lo,
                  int64_t hi) const {
    const auto v = get<int64_t>(section, key);
    if (!v) return def;
    if (*v < lo || *v > hi) {
      fail(section + "." + key, "= " + std::to_string(*v) + " is out of range [" +
                                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return static_cast<int32_t>(*v);
  }

  std::string get_choice(const std::string& section, const std::string& key, const std::string& def,
                         const std::set<std::string>& allowed) const {
    const auto v = get<std::string>(section, key);
    if (!v) return def;
    if (!allowed.count(*v)) {
      std::string list;
      for (const auto& a : allowed) list.append(list.empty() ? "" : ", ").append(a);
      fail(section + "." + key, "= \"" + *v + "\" is not one of: " + list);
    }
    return *v;
  }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError(source_ + ": " + key + " " + what);
  }

 private:
  const toml::table& root_;
  std::string source_;
};

}  // namespace

DaemonConfig parse_daemon_config(const std::string& text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    throw ConfigError(os.str());
  }
  Reader r(root, source);
  r.check_keys({
      {"model", {"path", "threads", "context", "batch", "exact", "backend"}},
      {"memory", {"budget"}},
      {"server",
       {"socket", "socket_mode", "max_connections", "max_body_bytes", "idle_timeout_ms",
        "output_buffer_bytes", "write_timeout_ms", "queue_length", "decode_batch", "max_tokens",
        "default_max_tokens", "shutdown_deadline_ms", "chat_template", "allowed_uids",
        "allowed_gids"}},
      {"kv",
       {"policy", "alpha", "decode_budget", "type", "scope", "grace", "normalize", "granularity",
        "recent", "sinks", "prefill_budget", "snapkv_window", "snapkv_kernel"}},
      {"telemetry",
       {"enabled", "path", "max_age_days", "max_size", "queue_length", "layer_stats_rate",
        "probe_rate", "probe_max_tokens", "probe_budgets", "probe_alphas"}},
  });
  DaemonConfig c;
  c.model_path = r.get<std::string>("model", "path").value_or("");
  c.threads = r.get_int("model", "threads", 0, 0, 1024);
  c.context = r.get_int("model", "context", 0, 0, 1 << 24);
  c.batch = r.get_int("model", "batch", 64, 1, 4096);
  c.exact = r.get<bool>("model", "exact").value_or(false);
  c.backend = r.get_choice("model", "backend", "cpu", {"cpu", "cuda"});
  if (const auto b = r.get<std::string>("memory", "budget")) {
    const auto bytes = parse_bytes(*b);
    if (!bytes) r.fail("memory.budget", "= \"" + *b + "\" is not a size like \"512MiB\"");
    c.memory_budget = *bytes;
  } else if (root["memory"]["budget"]) {
    r.fail("memory.budget", "must be a string such as \"512MiB\"");
  }
  c.socket_path = r.get<std::string>("server", "socket").value_or(c.socket_path);
  if (c.socket_path.empty() || c.socket_path.size() > 100) {
    r.fail("server.socket", "must be a path of 1 to 100 characters");
  }
  if (const auto m = r.get<std::string>("server", "socket_mode")) {
    size_t used = 0;
    unsigned long mode = 0;
    try {
      mode = std::stoul(*m, &used, 8);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != m->size() || m->empty() || mode > 0777) {
      r.fail("server.socket_mode", "= \"" + *m + "\" is not an octal mode such as \"0660\"");
    }
    c.socket_mode = static_cast<unsigned>(mode);
  }
  c.max_connections = r.get_int("server", "max_connections", c.max_connections, 1, 65536);
  c.max_body_bytes = static_cast<uint64_t>(
      r.get_int("server", "max_body_bytes", static_cast<int32_t>(c.max_body_bytes), 1024, 1 << 30));
  c.idle_timeout_ms = r.get_int("server", "idle_timeout_ms", c.idle_timeout_ms, 100, 3600000);
  c.output_buffer_bytes = static_cast<uint64_t>(r.get_int(
      "server", "output_buffer_bytes", static_cast<int32_t>(c.output_buffer_bytes), 4096, 1 << 30));
  c.write_timeout_ms = r.get_int("server", "write_timeout_ms", c.write_timeout_ms, 100, 3600000);
  c.queue_length = r.get_int("server", "queue_length", c.queue_length, 0, 65536);
  c.decode_batch = r.get_int("server", "decode_batch", c.decode_batch, 1, 256);
  c.max_tokens = r.get_int("server", "max_tokens", c.max_tokens, 1, 1 << 24);
  c.default_max_tokens =
      r.get_int("server", "default_max_tokens", c.default_max_tokens, 1, c.max_tokens);
  c.shutdown_deadline_ms =
      r.get_int("server", "shutdown_deadline_ms", c.shutdown_deadline_ms, 0, 3600000);
  c.chat_template = r.get_choice("server", "chat_template", "auto",
                                 {"auto", "chatml", "llama2", "llama3", "zephyr", "plain"});
  for (const char* key : {"allowed_uids", "allowed_gids"}) {
    const auto node = root["server"][key];
    if (!node) continue;
    const auto* arr = node.as_array();
    if (!arr) r.fail(std::string("server.") + key, "must be an array of integers");
    auto& out = std::string(key) == "allowed_uids" ? c.allowed_uids : c.allowed_gids;
    for (const auto& v : *arr) {
      // Type first: toml++ converts a float to int64_t with a plain cast (undefined beyond its
      // range; the config fuzzer found 1.3e64).
      const auto i = v.is_integer() ? v.value<int64_t>() : std::nullopt;
      if (!i || *i < 0 || *i > 0xFFFFFFFFll) {
        r.fail(std::string("server.") + key, "must hold integers in [0, 4294967295]");
      }
      out.push_back(*i);
    }
  }

  KvConfig& kv = c.kv;
  const KvConfig def = DaemonConfig::recommended_kv();
  kv.policy = r.get_choice("kv", "policy", def.policy,
                           {"full", "moment", "h2o", "tova", "streaming", "scope"});
  if (const auto a = r.get<double>("kv", "alpha")) {
    if (!(*a >= 0.0 && *a <= 1.0))
      r.fail("kv.alpha", "= " + std::to_string(*a) + " is out of range [0, 1]");
    kv.alpha = static_cast<float>(*a);
  }
  kv.decode_budget = r.get_int("kv", "decode_budget", def.decode_budget, 0, 1 << 24);
  kv.type = *parse_kv_type(r.get_choice("kv", "type", "f16", {"f16", "f32", "q8_0"}));
  kv.scope =
      r.get_choice("kv", "scope", kv_scope_name(def.scope), {"decode", "unified"}) == "decode"
          ? KvScope::kDecode
          : KvScope::kUnified;
  kv.grace = r.get_int("kv", "grace", 0, 0, 1 << 20);
  kv.normalize = r.get<bool>("kv", "normalize").value_or(def.normalize);
  kv.granularity = r.get_choice("kv", "granularity", "layer", {"layer", "kv_head"}) == "layer"
                       ? Granularity::kLayer
                       : Granularity::kKvHead;
  kv.recent = r.get_int("kv", "recent", -1, -1, 1 << 24);
  kv.sinks = r.get_int("kv", "sinks", 4, 0, 1 << 20);
  kv.prefill_budget = r.get_int("kv", "prefill_budget", 0, 0, 1 << 24);
  kv.snapkv_window = r.get_int("kv", "snapkv_window", 32, 1, 4096);
  kv.snapkv_kernel = r.get_int("kv", "snapkv_kernel", 5, 1, 63);
  if (auto err = kv.validate()) throw ConfigError(source + ": kv." + *err);

  TelemetryConfig& t = c.telemetry;
  t.enabled = r.get<bool>("telemetry", "enabled").value_or(t.enabled);
  t.path = r.get<std::string>("telemetry", "path").value_or("");
  t.max_age_days = r.get_int("telemetry", "max_age_days", t.max_age_days, 0, 36500);
  if (const auto b = r.get<std::string>("telemetry", "max_size")) {
    const auto bytes = parse_bytes(*b);
    if (!bytes) r.fail("telemetry.max_size", "= \"" + *b + "\" is not a size like \"256MiB\"");
    t.max_size = *bytes;
  }
  t.queue_length = r.get_int("telemetry", "queue_length", t.queue_length, 16, 1 << 20);
  for (auto [key, field] : {std::pair{"layer_stats_rate", &t.layer_stats_rate},
                            std::pair{"probe_rate", &t.probe_rate}}) {
    if (const auto v = r.get<double>("telemetry", key)) {
      if (!(*v >= 0.0 && *v <= 1.0)) {
        r.fail(std::string("telemetry.") + key,
               "= " + std::to_string(*v) + " is out of range [0, 1]");
      }
      *field = *v;
    }
  }
  t.probe_max_tokens = r.get_int("telemetry", "probe_max_tokens", t.probe_max_tokens, 1, 65536);
  if (const auto node = root["telemetry"]["probe_budgets"]) {
    const auto* arr = node.as_array();
    if (!arr) r.fail("telemetry.probe_budgets", "must be an array of integers");
    for (const auto& v : *arr) {
      const auto i = v.is_integer() ? v.value<int64_t>() : std::nullopt;  // type first, as above
      if (!i || *i < 1 || *i > (1 << 24)) {
        r.fail("telemetry.probe_budgets", "must hold integers in [1, 16777216]");
      }
      t.probe_budgets.push_back(static_cast<int32_t>(*i));
    }
  }
  if (const auto node = root["telemetry"]["probe_alphas"]) {
    const auto* arr = node.as_array();
    if (!arr) r.fail("telemetry.probe_alphas", "must be an array of numbers");
    for (const auto& v : *arr) {
      const auto a = v.value<double>();
      if (!v.is_number() || !a || !(*a >= 0.0 && *a <= 1.0)) {
        r.fail("telemetry.probe_alphas", "must hold numbers in [0, 1]");
      }
      t.probe_alphas.push_back(*a);
    }
  }
  return c;
}

std::string TelemetryConfig::resolved_path() const {
  if (!path.empty()) return path;
  // systemd's StateDirectory= (may list several, colon-separated: the first is ours).
  if (const char* state = std::getenv("STATE_DIRECTORY"); state && *state) {
    std::string dir(state);
    dir = dir.substr(0, dir.find(':'));
    return dir + "/telemetry.db";
  }
  return "/var/lib/momentkv/telemetry.db";
}

DaemonConfig load_daemon_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("cannot read config file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_daemon_config(ss.str(), path);
}

}  // namespace momentkv
