// momentkvd.toml: the shipped default parses, every key is read, and bad files are errors that
// name the key and the value.
#include <gtest/gtest.h>

#include <cstdlib>

#include "daemon/daemon_config.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_daemon_config(text, "test.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(DaemonConfig, ShippedDefaultParses) {
  const auto c = load_daemon_config(std::string(MOMENTKV_SOURCE_DIR) + "/configs/momentkvd.toml");
  EXPECT_EQ(c.model_path, "/var/lib/momentkv/models/model.gguf");
  EXPECT_EQ(c.memory_budget, 2ull << 30);
  EXPECT_EQ(c.kv.policy, "moment");
  EXPECT_FLOAT_EQ(c.kv.alpha, 0.9f);
  EXPECT_TRUE(c.kv.normalize);
  EXPECT_EQ(c.kv.scope, KvScope::kUnified);
  EXPECT_EQ(c.kv.decode_budget, 512);
  EXPECT_EQ(c.kv.type, KvType::kF16);
}

TEST(DaemonConfig, EmptyFileGivesDefaults) {
  const auto c = parse_daemon_config("", "empty.toml");
  EXPECT_EQ(c.memory_budget, 0u);
  EXPECT_EQ(c.batch, 64);
  EXPECT_EQ(c.backend, "cpu");
  // Missing keys take the evaluated defaults, the same as the shipped file.
  EXPECT_EQ(c.kv.policy, "moment");
  EXPECT_TRUE(c.kv.normalize);
  EXPECT_EQ(c.kv.scope, KvScope::kUnified);
  EXPECT_FLOAT_EQ(c.kv.alpha, 0.9f);
}

TEST(DaemonConfig, EveryKeyIsRead) {
  const auto c = parse_daemon_config(R"(
[model]
path = "/m.gguf"
threads = 3
context = 4096
batch = 32
exact = true
backend = "cuda"
[memory]
budget = "1.5GiB"
[kv]
policy = "moment"
alpha = 0.95
decode_budget = 256
type = "q8_0"
scope = "unified"
grace = 8
normalize = true
granularity = "kv_head"
recent = 16
sinks = 2
prefill_budget = 1024
snapkv_window = 16
snapkv_kernel = 7
)",
                                     "all.toml");
  EXPECT_EQ(c.model_path, "/m.gguf");
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.context, 4096);
  EXPECT_EQ(c.batch, 32);
  EXPECT_TRUE(c.exact);
  EXPECT_EQ(c.backend, "cuda");
  EXPECT_EQ(c.memory_budget, static_cast<uint64_t>(1.5 * (1ull << 30)));
  EXPECT_EQ(c.kv.policy, "moment");
  EXPECT_FLOAT_EQ(c.kv.alpha, 0.95f);
  EXPECT_EQ(c.kv.decode_budget, 256);
  EXPECT_EQ(c.kv.type, KvType::kQ8_0);
  EXPECT_EQ(c.kv.scope, KvScope::kUnified);
  EXPECT_EQ(c.kv.grace, 8);
  EXPECT_TRUE(c.kv.normalize);
  EXPECT_EQ(c.kv.granularity, Granularity::kKvHead);
  EXPECT_EQ(c.kv.recent, 16);
  EXPECT_EQ(c.kv.sinks, 2);
  EXPECT_EQ(c.kv.prefill_budget, 1024);
  EXPECT_EQ(c.kv.snapkv_window, 16);
  EXPECT_EQ(c.kv.snapkv_kernel, 7);
}

TEST(DaemonConfig, ErrorsNameKeyAndValue) {
  struct Case {
    const char* text;
    const char* must_contain;
  };
  for (const Case& c : std::vector<Case>{
           {"[kv]\npolicy = \"lru\"", "kv.policy"},
           {"[model]\nbackend = \"gpu\"", "model.backend"},
           {"[model]\nbackend = \"gpu\"", "cpu, cuda"},
           {"[kv]\npolicy = \"lru\"", "lru"},
           {"[kv]\nalpha = 1.5", "kv.alpha"},
           {"[kv]\nalpha = \"high\"", "must be a number"},
           {"[kv]\ndecode_budget = -3", "-3"},
           {"[kv]\ntype = \"q4_0\"", "kv.type"},
           {"[kv]\nbogus = 1", "kv.bogus"},
           {"[kv]\nbogus = 1", "unknown key"},
           {"[daemon]\nsocket = \"/run/x\"", "unknown section [daemon]"},
           {"[server]\nsocket_mode = \"999\"", "server.socket_mode"},
           {"[server]\nmax_connections = 0", "server.max_connections"},
           {"[server]\nchat_template = \"jinja\"", "server.chat_template"},
           {"[server]\nallowed_uids = [\"root\"]", "server.allowed_uids"},
           {"[server]\nallowed_gids = [1.3e64]", "server.allowed_gids"},  // no float-to-int cast
           {"[server]\nallowed_gids = [1000.0]", "server.allowed_gids"},
           {"[telemetry]\nprobe_budgets = [1e30]", "telemetry.probe_budgets"},
           {"[server]\nqueue = 3", "server.queue"},
           {"[server]\nwrite_timeout_ms = 0", "server.write_timeout_ms"},
           {"[model]\nthreads = \"four\"", "model.threads"},
           {"[model]\nbatch = 0", "model.batch"},
           {"[memory]\nbudget = \"lots\"", "memory.budget"},
           {"[memory]\nbudget = 512", "memory.budget"},
           {"[kv]\npolicy = \"moment\"\ndecode_budget = 0", "decode_budget"},
           {"[kv\npolicy = 1", "test.toml:1"},
           {"[kv]\nnormalize = 1", "kv.normalize"},
       }) {
    const auto err = error_of(c.text);
    EXPECT_NE(err, "accepted") << c.text;
    EXPECT_NE(err.find(c.must_contain), std::string::npos) << c.text << " -> " << err;
  }
}

TEST(DaemonConfig, ServerSection) {
  const auto c = parse_daemon_config(
      "[server]\nsocket = \"/tmp/m.sock\"\nsocket_mode = \"0600\"\nmax_connections = 8\n"
      "queue_length = 2\nallowed_uids = [0, 1000]\nchat_template = \"chatml\"\n"
      "write_timeout_ms = 1500\n",
      "server.toml");
  EXPECT_EQ(c.write_timeout_ms, 1500);
  EXPECT_EQ(c.socket_path, "/tmp/m.sock");
  EXPECT_EQ(c.socket_mode, 0600u);
  EXPECT_EQ(c.max_connections, 8);
  EXPECT_EQ(c.queue_length, 2);
  EXPECT_EQ(c.allowed_uids, (std::vector<int64_t>{0, 1000}));
  EXPECT_EQ(c.chat_template, "chatml");
  const auto d = parse_daemon_config("", "empty.toml");
  EXPECT_EQ(d.socket_path, "/run/momentkv/momentkvd.sock");
  EXPECT_EQ(d.socket_mode, 0660u);
  EXPECT_EQ(d.write_timeout_ms, 30000);
}

TEST(DaemonConfig, MissingFileIsAnError) {
  EXPECT_THROW(load_daemon_config("/nonexistent/momentkvd.toml"), ConfigError);
}

TEST(DaemonConfig, TelemetrySection) {
  const auto c = parse_daemon_config(
      "[telemetry]\nenabled = true\npath = \"/tmp/t.db\"\nmax_age_days = 7\n"
      "max_size = \"64MiB\"\nqueue_length = 128\nlayer_stats_rate = 0.5\nprobe_rate = 0.25\n"
      "probe_max_tokens = 100\nprobe_budgets = [64, 128]\nprobe_alphas = [0.5, 0.9]\n",
      "t.toml");
  EXPECT_EQ(c.telemetry.resolved_path(), "/tmp/t.db");
  EXPECT_EQ(c.telemetry.max_age_days, 7);
  EXPECT_EQ(c.telemetry.max_size, 64ull << 20);
  EXPECT_EQ(c.telemetry.queue_length, 128);
  EXPECT_DOUBLE_EQ(c.telemetry.layer_stats_rate, 0.5);
  EXPECT_DOUBLE_EQ(c.telemetry.probe_rate, 0.25);
  EXPECT_EQ(c.telemetry.probe_max_tokens, 100);
  EXPECT_EQ(c.telemetry.probe_budgets, (std::vector<int32_t>{64, 128}));
  EXPECT_EQ(c.telemetry.probe_alphas, (std::vector<double>{0.5, 0.9}));
  // Defaults: on, under the state directory systemd gives, else /var/lib/momentkv.
  const auto d = parse_daemon_config("", "d.toml");
  EXPECT_TRUE(d.telemetry.enabled);
  unsetenv("STATE_DIRECTORY");
  EXPECT_EQ(d.telemetry.resolved_path(), "/var/lib/momentkv/telemetry.db");
  setenv("STATE_DIRECTORY", "/var/lib/momentkv:/var/lib/other", 1);
  EXPECT_EQ(d.telemetry.resolved_path(), "/var/lib/momentkv/telemetry.db");
  setenv("STATE_DIRECTORY", "/srv/state", 1);
  EXPECT_EQ(d.telemetry.resolved_path(), "/srv/state/telemetry.db");
  unsetenv("STATE_DIRECTORY");
  // Bad values name the key.
  EXPECT_NE(error_of("[telemetry]\nprobe_rate = 1.5\n").find("telemetry.probe_rate"),
            std::string::npos);
  EXPECT_NE(error_of("[telemetry]\nmax_size = \"lots\"\n").find("telemetry.max_size"),
            std::string::npos);
  EXPECT_NE(error_of("[telemetry]\nprobe_budgets = [0]\n").find("telemetry.probe_budgets"),
            std::string::npos);
  EXPECT_NE(error_of("[telemetry]\nprobe_alphas = [\"x\"]\n").find("telemetry.probe_alphas"),
            std::string::npos);
  EXPECT_NE(error_of("[telemetry]\nretention = 3\n").find("unknown key"), std::string::npos);
}

}  // namespace
}  // namespace momentkv
