// momentkv run: in-process generation. Text (prompt included, as llama.cpp prints it) goes to
// stdout as it is produced; load time, prompt and decode speed go to stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/engine/generator.h"
#include "core/engine/memory_budget.h"
#include "core/util/process_memory.h"
#include "tools/commands.h"
#include "tools/cuda_support.h"
#include "tools/kv_options.h"
#include "tools/model_options.h"
#include "tools/sampling_options.h"

namespace momentkv::tools {

int cmd_run(int argc, char** argv) {
  ArgParser p("run", "Generate text from a prompt with a GGUF model, in-process.");
  ModelOptions mo;
  mo.add_to(p);
  SamplingOptions so;
  so.add_to(p);
  KvOptions ko;
  ko.add_to(p);
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
  if (auto cfg = preload_config(p, argc, argv)) {
    mo.apply_config(*cfg);
    ko.apply_config(cfg->kv, cfg->memory_budget);
  }
  bool no_display_prompt = false;
  p.add_switch({"--no-display-prompt"}, "do not echo the prompt",
               [&] { no_display_prompt = true; });
  if (!p.parse(argc, argv)) return 0;
  (void)prompt_given;

  const auto t_load = std::chrono::steady_clock::now();
  auto model = Model::load(mo.resolved_model_path());
  auto tokenizer = Tokenizer::create(model->file());
  const SamplingParams sampling = so.params();
  // Reserve exactly what this generation can need: the prompt, the decode region, scratch.
  EngineOptions eo = mo.engine_options();
  const int32_t n_ctx = eo.n_ctx > 0 ? eo.n_ctx : model->config().n_ctx_train;
  const int32_t n_prompt = static_cast<int32_t>(tokenizer->encode(prompt, true, true).size());
  eo.max_prompt = std::max(1, n_prompt);
  eo.kv = ko.config(sampling.max_tokens, n_prompt, n_ctx);
  const bool cuda = mo.backend == "cuda";
  kernels::CpuBackend backend(cuda ? 1 : mo.threads);
  // The budget covers what this generation reserves: the mapped weights and the process, then on
  // the CPU the KV cache and scratch, with CUDA the device arenas (the model's and the
  // sequence's; on Jetson the GPU's memory is the same DRAM).
  const MemoryPlan plan = plan_memory(*model, eo, backend.n_threads(), current_rss_bytes());
  const uint64_t device_bytes =
      cuda ? CudaDevice::model_bytes(*model, eo.n_batch) + CudaDevice::sequence_bytes(*model, eo)
           : 0;
  const uint64_t reserve = cuda ? plan.weights + plan.base + device_bytes : plan.total();
  const std::string what = cuda ? "this generation (" + format_bytes(plan.weights) + " weights + " +
                                      format_bytes(plan.base) + " process + " +
                                      format_bytes(device_bytes) +
                                      " on the device = " + format_bytes(reserve) + ")"
                                : "this generation (" + plan.describe() + ")";
  if (ko.memory_budget()) {
    MemoryBudget budget(*ko.memory_budget());
    if (auto err = budget.try_reserve(reserve, what)) {
      std::fprintf(stderr, "momentkv run: error: %s\n", err->c_str());
      return 1;
    }
  }
  std::unique_ptr<CudaDevice> device;
  std::unique_ptr<Sequence> sequence;
  if (cuda) {
    device = CudaDevice::open(*model, eo.n_batch);
    sequence = device->make_sequence(eo);
  } else {
    sequence = std::make_unique<Engine>(*model, backend, eo);
  }
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count();
  const std::string where = cuda ? "CUDA on " + device->description()
                                 : std::to_string(backend.n_threads()) + " threads, " +
                                       kernels::isa_name(backend.isa()) + " kernels" +
                                       (mo.exact ? ", exact f32 activations" : "");
  std::fprintf(stderr, "model: %s (%s, %d layers, %.1f MiB of weights), %s\n",
               mo.resolved_model_path().c_str(), model->config().arch.c_str(),
               model->config().n_layer, static_cast<double>(model->weight_bytes()) / (1 << 20),
               where.c_str());
  std::fprintf(
      stderr, "loaded in %.1f ms; memory: %s%s\n", load_ms,
      cuda ? what.c_str() : plan.describe().c_str(),
      ko.memory_budget() ? (" (budget " + format_bytes(*ko.memory_budget()) + ")").c_str() : "");

  GenerationRequest req;
  req.prompt = prompt;
  req.sampling = sampling;
  Generator gen(*sequence, *tokenizer);
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
  std::fprintf(stderr, "%s\n", r.compression.to_string().c_str());
  std::fprintf(stderr, "finish: %s, seed %llu, peak RSS %s\n", r.finish_reason.c_str(),
               static_cast<unsigned long long>(r.seed), format_bytes(peak_rss_bytes()).c_str());
  return 0;
}

}  // namespace momentkv::tools
