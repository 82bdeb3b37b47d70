#include "tools/model_options.h"

#include <cstdlib>

namespace momentkv::tools {

std::string default_model_path() {
  if (const char* env = std::getenv("MOMENTKV_MODEL"); env && *env) return env;
  return MOMENTKV_DEFAULT_MODEL;
}

void ModelOptions::add_to(ArgParser& p) {
  p.add({"-m", "--model"}, "FILE",
        "GGUF model (default: $MOMENTKV_MODEL, else the stories260K test model)",
        [this](const std::string& v) { model_path = v; });
  p.add({"-t", "--threads"}, "N", "threads (default: all CPUs)", [this](const std::string& v) {
    threads = static_cast<int>(ArgParser::to_int("-t", v, 1, 1024));
  });
  p.add({"-c", "--ctx-size"}, "N", "context size in tokens (default: the model's)",
        [this](const std::string& v) {
          n_ctx = static_cast<int32_t>(ArgParser::to_int("-c", v, 1, 1 << 24));
        });
  p.add({"-b", "--batch-size"}, "N", "prompt tokens per forward pass (default 64)",
        [this](const std::string& v) {
          n_batch = static_cast<int32_t>(ArgParser::to_int("-b", v, 1, 4096));
        });
  p.add_switch({"--exact"},
               "keep activations in f32 inside quantized matmuls (slower; reproduces float "
               "references)",
               [this] { exact = true; });
  p.add({"--backend"}, "NAME",
        "compute backend: cpu (default) or cuda (an NVIDIA GPU; a build with CUDA)",
        [this](const std::string& v) {
          if (v != "cpu" && v != "cuda") {
            throw UsageError("--backend expects cpu or cuda, got '" + v + "'");
          }
          backend = v;
        });
}

void ModelOptions::apply_config(const DaemonConfig& c) {
  if (!c.model_path.empty()) model_path = c.model_path;
  threads = c.threads;
  n_ctx = c.context;
  n_batch = c.batch;
  exact = c.exact;
  backend = c.backend;
}

std::optional<DaemonConfig> preload_config(ArgParser& p, int argc, char** argv) {
  p.add({"--config"}, "FILE", "read defaults from a momentkvd.toml file (flags override it)",
        [](const std::string&) {});
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) return load_daemon_config(argv[i + 1]);
    if (a.rfind("--config=", 0) == 0) return load_daemon_config(a.substr(9));
  }
  return std::nullopt;
}

std::string ModelOptions::resolved_model_path() const {
  return model_path.empty() ? default_model_path() : model_path;
}

EngineOptions ModelOptions::engine_options() const {
  EngineOptions o;
  o.n_ctx = n_ctx;
  o.n_batch = n_batch;
  o.precision = exact ? MatmulPrecision::kExact : MatmulPrecision::kFast;
  return o;
}

}  // namespace momentkv::tools
