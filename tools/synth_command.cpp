// momentkv synth: writes a random-weight GGUF of a known model shape, for speed benchmarks (see
// tools/model_synth.h for what the weights are and how memory stays bounded).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "tools/args.h"
#include "tools/commands.h"
#include "tools/model_synth.h"

namespace momentkv::tools {

int cmd_synth(int argc, char** argv) {
  ArgParser p("synth", "Write a random-weight GGUF model of a known shape (for benchmarks).");
  std::string shape_name, type_name_arg = "Q4_0", out;
  SynthOptions opt;
  opt.n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  p.add({"--shape"}, "NAME", "one of " + ModelSynth::shape_names(),
        [&](const std::string& v) { shape_name = v; });
  p.add({"--type"}, "TYPE", "weight type (default Q4_0): " + ModelQuantizer::spec_names(),
        [&](const std::string& v) { type_name_arg = v; });
  p.add({"-o", "--output"}, "FILE", "GGUF file to write", [&](const std::string& v) { out = v; });
  p.add({"--vocab"}, "FILE",
        "GGUF whose tokenizer.ggml.* keys are copied (default: a fitting one in "
        "../shared/models/vocab); n_vocab becomes its token count",
        [&](const std::string& v) { opt.vocab_path = v; });
  p.add({"--seed"}, "N", "random seed (default 1)", [&](const std::string& v) {
    opt.seed = static_cast<uint64_t>(ArgParser::to_int("--seed", v, 0, INT64_MAX));
  });
  p.add({"--layers"}, "N", "number of layers (default: the shape's)", [&](const std::string& v) {
    opt.n_layer = static_cast<int32_t>(ArgParser::to_int("--layers", v, 1, 512));
  });
  p.add({"-t", "--threads"}, "N", "threads (default: all CPUs)", [&](const std::string& v) {
    opt.n_threads = static_cast<int>(ArgParser::to_int("-t", v, 1, 1024));
  });
  if (!p.parse(argc, argv)) return 0;
  if (shape_name.empty() || out.empty()) {
    throw UsageError("--shape and -o are required\n" + p.usage());
  }
  const auto shape = ModelSynth::find_shape(shape_name);
  if (!shape) {
    throw UsageError("unknown shape '" + shape_name + "' (one of " + ModelSynth::shape_names() +
                     ")");
  }
  const auto spec = ModelQuantizer::parse_spec(type_name_arg);
  if (!spec) {
    throw UsageError("unknown --type '" + type_name_arg + "' (one of " +
                     ModelQuantizer::spec_names() + ")");
  }
  opt.shape = *shape;
  opt.spec = *spec;

  const auto t0 = std::chrono::steady_clock::now();
  ModelSynth synth(opt);
  synth.write(out);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& n : synth.notes()) std::fprintf(stderr, "note: %s\n", n.c_str());
  uint64_t params = 0, bytes = 0;
  int n_fallback = 0;
  for (const auto& t : synth.tensors()) {
    params += t.from_bytes / 4;
    bytes += t.to_bytes;
    if (!t.fallback.empty()) {
      ++n_fallback;
      std::fprintf(stderr, "fallback: %s: %s\n", t.name.c_str(), t.fallback.c_str());
    }
  }
  std::printf(
      "%s: %s %s, %zu tensors, %.3f B parameters, %.1f MiB, %d fallbacks, %.1f s (%d "
      "threads)\n",
      out.c_str(), shape->name.c_str(), spec->name.c_str(), synth.tensors().size(),
      static_cast<double>(params) * 1e-9, static_cast<double>(bytes) / (1 << 20), n_fallback, s,
      opt.n_threads);
  return 0;
}

}  // namespace momentkv::tools
