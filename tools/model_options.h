// Options every model-running subcommand shares: the model path (-m, else $MOMENTKV_MODEL, else
// the stories260K test model in ../shared/models), threads (-t), context (-c), batch (-b) and the
// matmul precision (--exact), the compute backend (--backend cpu|cuda).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/engine/engine.h"
#include "core/model/model.h"
#include "daemon/daemon_config.h"
#include "kernels/cpu/cpu_backend.h"
#include "tools/args.h"

namespace momentkv::tools {

struct ModelOptions {
  std::string model_path;
  int threads = 0;  // 0: all CPUs
  int32_t n_ctx = 0;
  int32_t n_batch = 64;
  bool exact = false;
  std::string backend = "cpu";  // cpu | cuda

  // Registers -m, -t, -c, -b, --exact, --backend on `p`.
  void add_to(ArgParser& p);
  // Takes the [model] values of a config file as defaults (flags given later override them).
  void apply_config(const DaemonConfig& c);
  // The model path after defaults: -m, $MOMENTKV_MODEL, or the bundled test model.
  std::string resolved_model_path() const;
  EngineOptions engine_options() const;
};

// The default model: $MOMENTKV_MODEL or ../shared/models/stories260K/stories260K.gguf.
std::string default_model_path();

// Loads the file named by `--config FILE` (or --config=FILE) in argv, if any, so that its values
// become defaults before the flags are parsed; also registers --config on `p`. Throws
// ConfigError for a bad file.
std::optional<DaemonConfig> preload_config(ArgParser& p, int argc, char** argv);

}  // namespace momentkv::tools
