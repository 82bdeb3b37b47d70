// momentkv kvbench: what Moment-KV costs per token, and what it saves on long generations.
//  1. Same resident tokens: per-token decode time of `full` holding about R = prompt + budget
//     tokens vs `moment` at steady state holding R (every step scores and evicts). Target
//     overhead <= 3%.
//  2. A generation longer than the budget (default 4x): `full` holds every token, `moment` keeps
//     prompt + budget; tokens/s per quarter of the run and KV bytes of both.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/kv/compression_summary.h"
#include "core/tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/kv_options.h"
#include "tools/model_options.h"

namespace momentkv::tools {

namespace {

using Clock = std::chrono::steady_clock;

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// A prompt of exactly n tokens: BOS plus a story opening, repeated as needed.
std::vector<int32_t> make_prompt(const Tokenizer& tok, int32_t n) {
  const auto text = tok.encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her friends. One day, she saw a big red ball under a tree.",
      false, false);
  std::vector<int32_t> p;
  if (tok.bos() >= 0) p.push_back(tok.bos());
  while (static_cast<int32_t>(p.size()) < n) {
    for (int32_t id : text) {
      if (static_cast<int32_t>(p.size()) < n) p.push_back(id);
    }
  }
  return p;
}

struct RunResult {
  std::vector<double> ms;  // per timed token
  CompressionSummary summary;
};

// Greedy decoding: prefill `prompt`, `n_untimed` generated tokens, then `n_timed` timed ones.
RunResult run(const Model& model, Backend& backend, EngineOptions opt, const KvConfig& kv,
              const std::vector<int32_t>& prompt, int32_t n_untimed, int32_t n_timed) {
  opt.kv = kv;
  opt.max_prompt = static_cast<int32_t>(prompt.size());
  Engine engine(model, backend, opt);
  auto logits = engine.eval(prompt, false, Region::kPrefill);
  RunResult r;
  r.ms.reserve(static_cast<size_t>(n_timed));
  for (int32_t i = 0; i < n_untimed + n_timed; ++i) {
    const int32_t one[1] = {argmax(logits)};
    const auto t0 = Clock::now();
    logits = engine.eval(one, false, Region::kDecode);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (i >= n_untimed) r.ms.push_back(ms);
  }
  r.summary = CompressionSummary::from(engine.kv());
  return r;
}

double mean(const std::vector<double>& v, size_t begin, size_t end) {
  double s = 0;
  for (size_t i = begin; i < end; ++i) s += v[i];
  return end > begin ? s / static_cast<double>(end - begin) : 0.0;
}

}  // namespace

int cmd_kvbench(int argc, char** argv) {
  ArgParser p("kvbench",
              "Per-token cost of Moment-KV vs a full cache at equal resident tokens, and a "
              "generation longer than the budget.");
  ModelOptions mo;
  mo.add_to(p);
  KvOptions ko;
  ko.add_to(p);
  int32_t n_prompt = 32, n_gen = 0, n_timed = 64, reps = 3;
  p.add({"-p", "--n-prompt"}, "N", "prompt tokens (default 32)", [&](const std::string& v) {
    n_prompt = static_cast<int32_t>(ArgParser::to_int("-p", v, 1, 1 << 20));
  });
  p.add({"-n", "--n-gen"}, "N", "tokens of the long generation (default 4 x decode budget)",
        [&](const std::string& v) {
          n_gen = static_cast<int32_t>(ArgParser::to_int("-n", v, 1, 1 << 24));
        });
  p.add({"--timed"}, "N", "decode tokens timed in part 1 (default 64)", [&](const std::string& v) {
    n_timed = static_cast<int32_t>(ArgParser::to_int("--timed", v, 2, 1 << 20));
  });
  p.add({"-r", "--repetitions"}, "N", "repetitions of part 1, best kept (default 3)",
        [&](const std::string& v) {
          reps = static_cast<int32_t>(ArgParser::to_int("-r", v, 1, 100));
        });
  if (!p.parse(argc, argv)) return 0;

  std::string cmdline = "momentkv kvbench";
  for (int i = 0; i < argc; ++i) cmdline.append(" ").append(argv[i]);
  auto model = Model::load(mo.resolved_model_path());
  auto tok = Tokenizer::create(model->file());
  kernels::CpuBackend backend(mo.threads);
  EngineOptions base = mo.engine_options();
  KvConfig moment = ko.config(-1, n_prompt, 1 << 24);
  if (moment.policy == "full") moment.policy = "moment";
  const int32_t budget = moment.decode_budget;
  if (n_gen == 0) n_gen = 4 * budget;
  const int32_t need_ctx = n_prompt + n_gen + 1;
  if (base.n_ctx < need_ctx) base.n_ctx = std::max(need_ctx, model->config().n_ctx_train);
  const auto prompt = make_prompt(*tok, n_prompt);

  std::printf("command: %s\n", cmdline.c_str());
  std::printf("model: %s (%d layers, %d KV heads x %d), %d threads, %s kernels, KV %s\n",
              mo.resolved_model_path().c_str(), model->config().n_layer, model->config().n_head_kv,
              model->config().head_dim, backend.n_threads(), kernels::isa_name(backend.isa()),
              kv_type_name(moment.type));
  if (need_ctx > model->config().n_ctx_train) {
    std::printf(
        "note: positions up to %d exceed the model's trained context of %d (RoPE uses the "
        "true position)\n",
        need_ctx, model->config().n_ctx_train);
  }

  // Part 1: equal resident tokens. full is filled to R - timed/2 so that its mean resident count
  // over the timed tokens equals moment's steady-state R.
  KvConfig full = moment;
  full.policy = "full";
  full.decode_budget = budget + n_timed;
  double best_full = 1e30, best_moment = 1e30;
  for (int32_t r = 0; r < reps; ++r) {
    const auto f = run(*model, backend, base, full, prompt, budget - n_timed / 2, n_timed);
    const auto m = run(*model, backend, base, moment, prompt, budget, n_timed);
    best_full = std::min(best_full, mean(f.ms, 0, f.ms.size()));
    best_moment = std::min(best_moment, mean(m.ms, 0, m.ms.size()));
  }
  std::printf("\n1. equal resident tokens (prompt %d + budget %d), %d decode tokens, best of %d\n",
              n_prompt, budget, n_timed, reps);
  std::printf("| policy | ms/token | tokens/s |\n|---|---|---|\n");
  std::printf("| full | %.4f | %.1f |\n", best_full, 1000.0 / best_full);
  std::printf("| moment (alpha %.2f) | %.4f | %.1f |\n", static_cast<double>(moment.alpha),
              best_moment, 1000.0 / best_moment);
  std::printf("moment overhead vs full: %+.2f%% (target <= 3%%)\n",
              100.0 * (best_moment - best_full) / best_full);

  // Part 2: a long generation.
  full.decode_budget = n_gen;
  const auto f = run(*model, backend, base, full, prompt, 0, n_gen);
  const auto m = run(*model, backend, base, moment, prompt, 0, n_gen);
  std::printf("\n2. generation of %d tokens (%.1fx the decode budget %d)\n", n_gen,
              static_cast<double>(n_gen) / budget, budget);
  std::printf("| policy | tokens/s | q1 | q2 | q3 | q4 | resident at end | KV bytes reserved |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const auto* r : {&f, &m}) {
    const size_t n = r->ms.size();
    std::printf("| %s | %.1f", r->summary.policy.c_str(), 1000.0 / mean(r->ms, 0, n));
    for (size_t q = 0; q < 4; ++q)
      std::printf(" | %.1f", 1000.0 / mean(r->ms, q * n / 4, (q + 1) * n / 4));
    std::printf(" | %d | %llu |\n", r->summary.resident_peak,
                static_cast<unsigned long long>(r->summary.kv_bytes_reserved));
  }
  const double speedup = mean(f.ms, 0, f.ms.size()) / mean(m.ms, 0, m.ms.size());
  std::printf(
      "moment vs full over the whole generation: %.2fx the speed, %.1f%% of the KV bytes "
      "(target: at least as fast, flat KV memory)\n",
      speedup,
      100.0 * static_cast<double>(m.summary.kv_bytes_reserved) /
          static_cast<double>(f.summary.kv_bytes_reserved));
  return 0;
}

}  // namespace momentkv::tools
