// momentkv run: in-process generation. Text (prompt included, as llama.cpp prints it) goes to
// stdout as it is produced; load time, prompt and decode speed go to stderr.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/engine/generator.h"
#include "tools/commands.h"
#include "tools/model_options.h"
#include "tools/sampling_options.h"

namespace momentkv::tools {

int cmd_run(int argc, char** argv) {
  ArgParser p("run", "Generate text from a prompt with a GGUF model, in-process.");
  ModelOptions mo;
  mo.add_to(p);
  SamplingOptions so;
  so.add_to(p);
  std::string prompt = "Once upon a time";
  bool prompt_given = false;
  p.add({"-p", "--prompt"}, "TEXT", "prompt (default: \"Once upon a time\")",
        [&](const std::string& v) {
          prompt = v;
          prompt_given = true;
        });
  p.add({"-f", "--file"}, "FILE", "read the prompt from a file", [&](const std::string& v) {
    std::ifstream in(v, std::ios::binary);
    if (!in) throw UsageError("cannot read prompt file '" + v + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    prompt = ss.str();
    prompt_given = true;
  });
  bool no_display_prompt = false;
  p.add_switch({"--no-display-prompt"}, "do not echo the prompt",
               [&] { no_display_prompt = true; });
  if (!p.parse(argc, argv)) return 0;
  (void)prompt_given;

  const auto t_load = std::chrono::steady_clock::now();
  auto model = Model::load(mo.resolved_model_path());
  kernels::CpuBackend backend(mo.threads);
  Engine engine(*model, backend, mo.engine_options());
  auto tokenizer = Tokenizer::create(model->file());
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count();
  std::fprintf(stderr, "model: %s (%s, %d layers, %.1f MiB of weights), %d threads, %s kernels%s\n",
               mo.resolved_model_path().c_str(), model->config().arch.c_str(),
               model->config().n_layer, static_cast<double>(model->weight_bytes()) / (1 << 20),
               backend.n_threads(), kernels::isa_name(backend.isa()),
               mo.exact ? ", exact f32 activations" : "");
  std::fprintf(stderr, "loaded in %.1f ms\n", load_ms);

  GenerationRequest req;
  req.prompt = prompt;
  req.sampling = so.params();
  Generator gen(engine, *tokenizer);
  if (!no_display_prompt) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }
  const auto r = gen.generate(req, [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  std::fflush(stdout);
  const auto& t = r.timings;
  std::fprintf(stderr, "\nprompt: %d tokens in %.1f ms (%.1f tokens/s)\n", t.n_prompt, t.prompt_ms,
               t.prompt_tokens_per_s());
  std::fprintf(stderr, "decode: %d tokens in %.1f ms (%.1f tokens/s)\n", t.n_generated, t.decode_ms,
               t.decode_tokens_per_s());
  std::fprintf(stderr, "finish: %s, seed %llu\n", r.finish_reason.c_str(),
               static_cast<unsigned long long>(r.seed));
  return 0;
}

}  // namespace momentkv::tools
