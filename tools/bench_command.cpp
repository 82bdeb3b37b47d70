// momentkv bench: llama-bench-like speed figures. Prompt processing (pp) feeds -p token ids as one
// batch into an empty context; decode (tg) then feeds -n ids one at a time after the prompt. Each
// figure is the best and the mean of -r timed repetitions after one untimed warm-up. Beside each
// figure it prints the weight bytes the pass had to read per second and the machine's measured
// streaming read bandwidth (tools/memory_bandwidth.h): decode is bound by that ceiling.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/engine/batch_decoder.h"
#include "tools/commands.h"
#include "tools/cuda_support.h"
#include "tools/memory_bandwidth.h"
#include "tools/model_options.h"
#include "tools/timed_backend.h"

namespace momentkv::tools {

namespace {

// Weight bytes one forward pass reads, split by where they come from.
struct WeightTraffic {
  uint64_t matrices = 0;  // every layer matrix (q, k, v, o, gate, up, down) in full
  uint64_t output = 0;    // the output matrix in full (also when it is the embedding table)
  uint64_t embd_row = 0;  // one row of token_embd: a pass reads one row per token fed
  uint64_t vectors = 0;   // f32 norm weights and biases
  uint64_t per_pass(int64_t n_tokens) const {
    return matrices + output + vectors + embd_row * static_cast<uint64_t>(n_tokens);
  }
};

WeightTraffic weight_traffic(const Model& m) {
  const ModelConfig& c = m.config();
  WeightTraffic t;
  const auto f32 = [](const std::vector<float>& v) { return v.size() * sizeof(float); };
  for (int32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = m.layer(l);
    for (const WeightView* v : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down}) {
      t.matrices += v->n_bytes();
    }
    t.vectors += f32(w.attn_norm) + f32(w.ffn_norm) + f32(w.bq) + f32(w.bk) + f32(w.bv);
  }
  t.vectors += f32(m.output_norm());
  t.output = m.output().n_bytes();
  t.embd_row = m.token_embd().row_bytes;
  return t;
}

struct TypeShare {
  int n_tensors = 0;
  uint64_t bytes = 0;
};

// Tensors and bytes per storage type, largest share first.
std::vector<std::pair<std::string, TypeShare>> type_mix(const Model& m) {
  std::map<std::string, TypeShare> by_type;
  for (const auto& t : m.file().tensors()) {
    TypeShare& s = by_type[type_name(t.type)];
    ++s.n_tensors;
    s.bytes += t.n_bytes;
  }
  std::vector<std::pair<std::string, TypeShare>> v(by_type.begin(), by_type.end());
  std::sort(v.begin(), v.end(),
            [](const auto& a, const auto& b) { return a.second.bytes > b.second.bytes; });
  return v;
}

// Quotes an argument for a POSIX shell when it holds anything but plain characters.
std::string shell_quote(const std::string& s) {
  const bool plain = !s.empty() && s.find_first_not_of(
                                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
                                       "QRSTUVWXYZ0123456789-_./=:+,@%") == std::string::npos;
  if (plain) return s;
  std::string q = "'";
  for (char ch : s) {
    if (ch == '\'') {
      q.append("'\\''");
    } else {
      q.push_back(ch);
    }
  }
  q.push_back('\'');
  return q;
}

// Fixed pseudo-random token ids (splitmix64), the same on every run and machine.
std::vector<int32_t> bench_tokens(int64_t n, int32_t n_vocab, uint64_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) {
    seed += 0x9e3779b97f4a7c15ull;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    id = static_cast<int32_t>(z % static_cast<uint64_t>(n_vocab));
  }
  return ids;
}

struct Figure {
  std::string test;         // "pp128", "tg64"
  int64_t n_tokens = 0;     // tokens per repetition
  int64_t n_passes = 0;     // forward passes per repetition
  uint64_t pass_bytes = 0;  // weight bytes read per pass
  std::vector<double> tokens_per_s;

  double best() const { return *std::max_element(tokens_per_s.begin(), tokens_per_s.end()); }
  double mean() const {
    double s = 0;
    for (double x : tokens_per_s) s += x;
    return s / static_cast<double>(tokens_per_s.size());
  }
  // Weight bytes per second at the best rate, in GB/s (1e9).
  double weight_gb_per_s() const {
    const double passes_per_s =
        best() * static_cast<double>(n_passes) / static_cast<double>(n_tokens);
    return static_cast<double>(pass_bytes) * passes_per_s / 1e9;
  }
};

// K and V bytes one cached token takes in every layer.
uint64_t kv_bytes_per_token(const ModelConfig& c, KvConfig kv) {
  kv.decode_budget = 0;  // a plain cache of one prompt token
  return KvCache::bytes_needed(c.n_layer, c.n_head_kv, c.head_dim, 1, kv);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double mib(uint64_t b) {
  return static_cast<double>(b) / (1 << 20);
}

// Decode steps of one token each; returns tokens per second.
double time_decode(Sequence& seq, const std::vector<int32_t>& gen, int64_t n) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    seq.eval_greedy(std::span<const int32_t>(&gen[static_cast<size_t>(i % std::ssize(gen))], 1),
                    Region::kDecode);
  }
  return static_cast<double>(n) / seconds_since(t0);
}

// momentkv bench --backend cuda: the same pp/tg figures on the CUDA engine (greedy tokens chosen
// on the device), weight GB/s beside the device's copy bandwidth, tg again with each step's
// kernels launched one by one instead of as a CUDA graph (whether the graph pays), and
// Moment-KV's cost: tg with `moment` at decode budget B = -n (every timed step evicts, prompt +
// B tokens resident) against `full` timed over the same span of resident tokens on average.
int bench_cuda(const Model& model, const std::string& path, EngineOptions eo, int64_t n_prompt,
               int64_t n_gen, int reps) {
  const ModelConfig& c = model.config();
  const WeightTraffic traffic = weight_traffic(model);
  std::printf("model: %s (%s, %d layers, %.2f MiB of weights)\n", path.c_str(), c.arch.c_str(),
              c.n_layer, mib(model.weight_bytes()));
  auto device = CudaDevice::open(model, eo.n_batch);
  std::printf("device: %s\n", device->description().c_str());
  const double bw = device->copy_bandwidth_gb_per_s();
  std::printf("device copy bandwidth: %.1f GB/s (device to device, read + write)\n", bw);
  const std::vector<int32_t> prompt = bench_tokens(std::max<int64_t>(n_prompt, 1), c.n_vocab, 1);
  const std::vector<int32_t> gen = bench_tokens(std::max<int64_t>(n_gen, 1), c.n_vocab, 2);
  const int64_t budget = std::max<int64_t>(n_gen, 1);
  eo.n_ctx = static_cast<int32_t>(n_prompt + 2 * budget + 1);
  eo.kv = EngineOptions::plain_kv();
  eo.kv.type = KvType::kF16;
  auto full = device->make_sequence(eo);
  EngineOptions lo = eo;
  lo.cuda_graph = false;
  auto launches = device->make_sequence(lo);
  EngineOptions mo = eo;
  mo.kv.policy = "moment";
  mo.kv.decode_budget = static_cast<int32_t>(budget);
  mo.max_prompt = static_cast<int32_t>(std::max<int64_t>(n_prompt, 1));
  auto moment = device->make_sequence(mo);
  std::printf(
      "device arenas: %.1f MiB model (weights, GEMM, activations), sequences %.1f MiB (full), "
      "%.1f MiB (moment, budget %lld)\n",
      mib(CudaDevice::model_bytes(model, eo.n_batch)), mib(CudaDevice::sequence_bytes(model, eo)),
      mib(CudaDevice::sequence_bytes(model, mo)), static_cast<long long>(budget));

  Figure pp{"pp" + std::to_string(n_prompt), n_prompt, 1, traffic.per_pass(n_prompt), {}};
  Figure tg{"tg" + std::to_string(n_gen), n_gen, n_gen, traffic.per_pass(1), {}};
  Figure tg_launches{"tg-nograph", n_gen, n_gen, traffic.per_pass(1), {}};
  Figure tg_full{"full@B", n_gen, n_gen, traffic.per_pass(1), {}};
  Figure tg_moment{"moment@B", n_gen, n_gen, traffic.per_pass(1), {}};
  for (int rep = -1; rep < reps; ++rep) {
    full->reset();
    if (n_prompt > 0) {
      const auto t0 = std::chrono::steady_clock::now();
      full->eval_greedy(prompt);
      if (rep >= 0) pp.tokens_per_s.push_back(static_cast<double>(n_prompt) / seconds_since(t0));
    }
    if (n_gen > 0) {
      const double r = time_decode(*full, gen, n_gen);
      if (rep >= 0) tg.tokens_per_s.push_back(r);
      launches->reset();
      if (n_prompt > 0) launches->eval_greedy(prompt);
      const double rl = time_decode(*launches, gen, n_gen);
      if (rep >= 0) tg_launches.tokens_per_s.push_back(rl);
      // full, continuing: from prompt + n_gen to prompt + 2 n_gen resident, B + n/2 on average
      // when the untimed part brings it to prompt + B / 2 first.
      full->reset();
      full->eval_greedy(prompt);
      time_decode(*full, gen, budget / 2);
      const double rf = time_decode(*full, gen, n_gen);
      moment->reset();
      moment->eval_greedy(prompt);
      time_decode(*moment, gen, budget);
      const double rm = time_decode(*moment, gen, n_gen);
      if (rep >= 0) {
        tg_full.tokens_per_s.push_back(rf);
        tg_moment.tokens_per_s.push_back(rm);
      }
    }
  }
  std::printf("\n%-8s | %10s | %10s | %9s | %11s | %17s | %10s\n", "test", "tokens/s", "mean t/s",
              "ms/token", "weight GB/s", "device copy GB/s", "% of limit");
  std::printf(
      "---------|------------|------------|-----------|-------------|-------------------|"
      "-----------\n");
  for (const Figure* f : {&pp, &tg, &tg_launches, &tg_full, &tg_moment}) {
    if (f->n_tokens == 0) continue;
    std::printf("%-8s | %10.2f | %10.2f | %9.3f | %11.2f | %17.2f | %9.1f%%\n", f->test.c_str(),
                f->best(), f->mean(), 1000.0 / f->best(), f->weight_gb_per_s(), bw,
                100.0 * f->weight_gb_per_s() / bw);
  }
  std::printf(
      "(best of %d after one warm-up; tg chooses each token on the device; tg-nograph launches "
      "each step's kernels one by one)\n",
      reps);
  std::printf("decode steps: %s\n", device->decode_graphs(*full).c_str());
  if (n_gen > 0) {
    std::printf(
        "moment overhead at %lld resident tokens: %+.2f%% time per token (moment, budget %lld, "
        "evicting every step, vs full over the same resident span)\n",
        static_cast<long long>(n_prompt + budget),
        100.0 * (tg_full.best() / tg_moment.best() - 1.0), static_cast<long long>(budget));
  }
  return 0;
}

// Every timed decode step of one context: its wall time and the part of it spent in attention.
struct StepTimes {
  std::vector<double> ms, attention_ms;
};

// Decode steps of one token each, each timed on its own; returns tokens per second.
double time_decode_steps(Sequence& seq, TimedBackend& timed, const std::vector<int32_t>& gen,
                         int64_t n, StepTimes& times) {
  double total_s = 0;
  for (int64_t i = 0; i < n; ++i) {
    timed.take_attention_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    seq.eval_greedy(std::span<const int32_t>(&gen[static_cast<size_t>(i % std::ssize(gen))], 1),
                    Region::kDecode);
    const double s = seconds_since(t0);
    total_s += s;
    times.ms.push_back(1000.0 * s);
    times.attention_ms.push_back(1000.0 * timed.take_attention_seconds());
  }
  return static_cast<double>(n) / total_s;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// momentkv bench --context-pair SHORT,LONG: what a long context costs per decode token against
// what it reads. Two sequences hold prompts of SHORT and LONG tokens (prefilled untimed); then
// -r rounds each time -n decode steps on both, in alternating order (short first in even rounds,
// long first in odd ones), so that a host whose speed drifts affects both alike. Per round: ms
// per token of each and the extra time of the long one; then the medians, and the extra bytes a
// step reads at the long context (KV of the extra resident tokens) relative to the weight bytes a
// step reads. A ratio of 1.0 means the long context costs exactly its bytes at the weights' rate.
// Each step is also timed on its own, with its attention: the median step of each context is
// the figure a shared host's stalls (a step now and then taking several times as long, whichever
// context it falls in) do not move, and it says how much of the extra time is attention's.
int bench_context_pair(const Model& model, Backend& backend, EngineOptions eo, int32_t n_short,
                       int32_t n_long, int64_t n_gen, int reps) {
  const ModelConfig& c = model.config();
  const int64_t steps = std::max<int64_t>(n_gen, 1);
  const int64_t warm = std::max<int64_t>(steps / 4, 1);
  eo.n_ctx = static_cast<int32_t>(n_long + warm + steps * reps + 1);
  if (eo.n_batch == 0) eo.n_batch = std::min(n_long, 512);
  TimedBackend timed(backend);
  Engine short_seq(model, timed, eo), long_seq(model, timed, eo);
  const std::vector<int32_t> gen = bench_tokens(steps, c.n_vocab, 2);
  const uint64_t kv_token = kv_bytes_per_token(c, eo.kv);
  const uint64_t weights = weight_traffic(model).per_pass(1);
  std::printf("context pair: %d and %d prompt tokens, %lld decode steps per round, %d rounds\n",
              n_short, n_long, static_cast<long long>(steps), reps);
  std::printf("per step: weight bytes %llu, KV bytes per resident token %llu\n",
              static_cast<unsigned long long>(weights), static_cast<unsigned long long>(kv_token));
  std::fflush(stdout);
  Engine* seqs[2] = {&short_seq, &long_seq};
  const int32_t lengths[2] = {n_short, n_long};
  for (int i = 0; i < 2; ++i) {
    seqs[i]->eval_greedy(bench_tokens(std::max(lengths[i], 1), c.n_vocab, 1));
    time_decode(*seqs[i], gen, warm);  // untimed: caches and the pool warm
  }
  // Both sequences advance by the same steps, so the extra resident tokens stay n_long - n_short.
  const double bytes_extra = static_cast<double>(n_long - n_short) * static_cast<double>(kv_token) /
                             static_cast<double>(weights);
  std::vector<double> ms[2], extra, ratio;
  StepTimes step_times[2];
  std::printf("\n%-6s | %-26s | %-26s | %10s | %10s\n", "round", "short: resident, ms/token",
              "long: resident, ms/token", "extra time", "extra bytes");
  std::printf(
      "-------|----------------------------|----------------------------|------------|"
      "-----------\n");
  for (int r = 0; r < reps; ++r) {
    double t[2] = {0, 0}, resident[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      const int i = (r % 2 == 0) ? k : 1 - k;
      // Step j attends over n_past + 1 slots (the new token's included).
      resident[i] =
          static_cast<double>(seqs[i]->n_past()) + 1.0 + static_cast<double>(steps - 1) / 2;
      t[i] = 1000.0 / time_decode_steps(*seqs[i], timed, gen, steps, step_times[i]);
    }
    const double time_extra = t[1] / t[0] - 1.0;
    ms[0].push_back(t[0]);
    ms[1].push_back(t[1]);
    extra.push_back(time_extra);
    ratio.push_back(time_extra / bytes_extra);
    std::printf("%-6d | %8.0f, %15.3f | %8.0f, %15.3f | %+9.2f%% | %+9.2f%%\n", r + 1, resident[0],
                t[0], resident[1], t[1], 100.0 * time_extra, 100.0 * bytes_extra);
  }
  std::printf(
      "\nmedian over %d rounds: %.3f ms/token at %d prompt tokens, %.3f at %d; extra time %+.2f%%; "
      "extra time / extra bytes %.2f (1.00: the long context costs exactly the bytes it reads)\n",
      reps, median_of(ms[0]), n_short, median_of(ms[1]), n_long, 100.0 * median_of(extra),
      median_of(ratio));
  double step[2], attn[2];
  size_t stalls = 0;
  for (int i = 0; i < 2; ++i) {
    step[i] = median_of(step_times[i].ms);
    attn[i] = median_of(step_times[i].attention_ms);
    for (const double x : step_times[i].ms) stalls += x > 2.0 * step[i] ? 1 : 0;
  }
  const double step_extra = step[1] / step[0] - 1.0;
  std::printf(
      "median step (%zu timed steps per context; %zu took over twice their context's median): "
      "%.3f ms at %d prompt tokens (attention %.3f), %.3f at %d (attention %.3f); extra time "
      "%+.2f%% (attention %+.3f ms, the rest %+.3f ms); extra time / extra bytes %.2f\n",
      step_times[0].ms.size(), stalls, step[0], n_short, attn[0], step[1], n_long, attn[1],
      100.0 * step_extra, attn[1] - attn[0], (step[1] - attn[1]) - (step[0] - attn[0]),
      step_extra / bytes_extra);
  return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  ArgParser p("bench",
              "Prompt-processing and decode tokens/s, with the weight bytes read per second "
              "beside the machine's measured read bandwidth.");
  ModelOptions mo;
  mo.add_to(p);
  mo.n_batch = 0;  // 0: the whole prompt in one batch (as llama-bench)
  int64_t n_prompt = 128;
  int64_t n_gen = 64;
  int reps = 3;
  bool markdown = false;
  p.add({"-p", "--n-prompt"}, "N", "prompt tokens, one batch from an empty context (default 128)",
        [&](const std::string& v) { n_prompt = ArgParser::to_int("-p", v, 0, 4096); });
  p.add({"-n", "--n-gen"}, "N", "tokens decoded one at a time after the prompt (default 64)",
        [&](const std::string& v) { n_gen = ArgParser::to_int("-n", v, 0, 1 << 20); });
  p.add(
      {"-r", "--repetitions"}, "N", "timed repetitions after one warm-up (default 3)",
      [&](const std::string& v) { reps = static_cast<int>(ArgParser::to_int("-r", v, 1, 1000)); });
  uint64_t bw_bytes = 0;
  p.add({"--bw-buffer"}, "SIZE",
        "buffer for the read-bandwidth measurement (default: 8x last-level cache, 256 MiB..1 GiB)",
        [&](const std::string& v) { bw_bytes = ArgParser::to_bytes("--bw-buffer", v); });
  p.add_switch({"--markdown"}, "also print the figures as markdown table rows (docs/results.md)",
               [&] { markdown = true; });
  KvType cache_type = KvType::kF16;
  p.add({"-ctk", "--cache-type"}, "TYPE", "KV cache element type: f16 (default), f32, q8_0",
        [&](const std::string& v) {
          const auto t = parse_kv_type(v);
          if (!t) throw UsageError("--cache-type expects f16, f32 or q8_0, got '" + v + "'");
          cache_type = *t;
        });
  int32_t pair[2] = {0, 0};
  p.add({"--context-pair"}, "SHORT,LONG",
        "instead: decode -n tokens at SHORT and at LONG resident tokens in alternating rounds (-r) "
        "and compare the time per token with the extra KV bytes read",
        [&](const std::string& v) {
          const size_t comma = v.find(',');
          if (comma == std::string::npos) {
            throw UsageError("--context-pair expects SHORT,LONG, got '" + v + "'");
          }
          pair[0] = static_cast<int32_t>(
              ArgParser::to_int("--context-pair", v.substr(0, comma), 1, 1 << 16));
          pair[1] = static_cast<int32_t>(
              ArgParser::to_int("--context-pair", v.substr(comma + 1), 1, 1 << 16));
          if (pair[1] <= pair[0]) throw UsageError("--context-pair: LONG must exceed SHORT");
        });
  std::vector<int32_t> batches;
  p.add({"--batch"}, "B[,B...]",
        "also decode B sequences together (BatchDecoder, one pass over the weights per step) and "
        "report their aggregate tokens/s",
        [&](const std::string& v) {
          size_t at = 0;
          while (at <= v.size()) {
            const size_t end = std::min(v.find(',', at), v.size());
            batches.push_back(
                static_cast<int32_t>(ArgParser::to_int("--batch", v.substr(at, end - at), 1, 64)));
            at = end + 1;
          }
        });
  if (!p.parse(argc, argv)) return 0;
  if (n_prompt + n_gen == 0) throw UsageError("nothing to measure: -p and -n are both 0");

  std::string command = "momentkv bench";
  for (int i = 0; i < argc; ++i) {
    command.push_back(' ');
    command.append(shell_quote(argv[i]));
  }
  std::printf("command: %s\n", command.c_str());

  const std::string path = mo.resolved_model_path();
  auto model = Model::load(path);
  const ModelConfig& c = model->config();
  EngineOptions eo = mo.engine_options();
  if (eo.n_ctx == 0) eo.n_ctx = static_cast<int32_t>(n_prompt + n_gen);
  if (eo.n_ctx < n_prompt + n_gen) {
    throw UsageError("-c " + std::to_string(eo.n_ctx) +
                     " is smaller than -p + -n = " + std::to_string(n_prompt + n_gen));
  }
  if (eo.n_batch == 0) eo.n_batch = static_cast<int32_t>(std::max<int64_t>(n_prompt, 1));
  eo.kv.type = cache_type;
  if (mo.backend == "cuda") {
    if (!batches.empty()) throw UsageError("--batch runs on the cpu backend only");
    if (pair[1] > 0) throw UsageError("--context-pair runs on the cpu backend only");
    return bench_cuda(*model, path, eo, n_prompt, n_gen, reps);
  }
  kernels::CpuBackend backend(mo.threads);
  if (pair[1] > 0) {
    if (!batches.empty()) throw UsageError("--context-pair and --batch are separate runs");
    std::printf("threads: %d, ISA: %s, KV cache %s\n", backend.n_threads(),
                kernels::isa_name(backend.isa()), kv_type_name(cache_type));
    EngineOptions po = mo.engine_options();
    po.kv.type = cache_type;
    return bench_context_pair(*model, backend, po, pair[0], pair[1], n_gen, reps);
  }
  Engine engine(*model, backend, eo);

  const WeightTraffic traffic = weight_traffic(*model);
  std::string label = c.arch;
  if (!c.name.empty() && c.name != c.arch) label.append(" \"" + c.name + "\"");
  std::printf("model: %s (%s, %d layers, n_embd %d, n_ff %d, n_vocab %d)\n", path.c_str(),
              label.c_str(), c.n_layer, c.n_embd, c.n_ff, c.n_vocab);
  std::string mix;
  for (const auto& [name, share] : type_mix(*model)) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s%s x%d (%.2f MiB)", mix.empty() ? "" : ", ", name.c_str(),
                  share.n_tensors, mib(share.bytes));
    mix.append(buf);
  }
  std::printf("type mix: %s\n", mix.c_str());
  std::printf("weight bytes: %llu in the file (%.2f MiB)\n",
              static_cast<unsigned long long>(model->weight_bytes()), mib(model->weight_bytes()));
  std::printf(
      "weight bytes read per decode token: %llu = layer matrices %llu + output %llu%s + "
      "token_embd one row %llu + f32 norms/biases %llu\n",
      static_cast<unsigned long long>(traffic.per_pass(1)),
      static_cast<unsigned long long>(traffic.matrices),
      static_cast<unsigned long long>(traffic.output),
      model->output().data == model->token_embd().data ? " (tied: the embedding table)" : "",
      static_cast<unsigned long long>(traffic.embd_row),
      static_cast<unsigned long long>(traffic.vectors));
  std::printf(
      "threads: %d, ISA: %s, matmul: %s, n_ctx %d, n_batch %d, KV cache %s (%llu bytes "
      "per token)\n",
      backend.n_threads(), kernels::isa_name(backend.isa()),
      mo.exact ? "exact (f32 activations)" : "fast (quantized activations)", eo.n_ctx, eo.n_batch,
      kv_type_name(cache_type), static_cast<unsigned long long>(kv_bytes_per_token(c, eo.kv)));
  std::fflush(stdout);

  // Measured before and again after the timed runs (best of both kept): on a shared machine one
  // short window can be disturbed.
  ReadBandwidth bw = measure_read_bandwidth(backend.pool(), bw_bytes);
  const double bw_before = bw.gb_per_s;

  const std::vector<int32_t> prompt = bench_tokens(n_prompt, c.n_vocab, 1);
  const std::vector<int32_t> gen = bench_tokens(n_gen, c.n_vocab, 2);
  Figure pp{"pp" + std::to_string(n_prompt), n_prompt, 1, traffic.per_pass(n_prompt), {}};
  Figure tg{"tg" + std::to_string(n_gen), n_gen, n_gen, traffic.per_pass(1), {}};
  for (int rep = -1; rep < reps; ++rep) {
    engine.reset();
    if (n_prompt > 0) {
      const auto t0 = std::chrono::steady_clock::now();
      engine.eval(prompt);
      const double s = seconds_since(t0);
      if (rep >= 0) pp.tokens_per_s.push_back(static_cast<double>(n_prompt) / s);
    }
    if (n_gen > 0) {
      const auto t0 = std::chrono::steady_clock::now();
      for (const int32_t& id : gen) engine.eval(std::span<const int32_t>(&id, 1));
      const double s = seconds_since(t0);
      if (rep >= 0) tg.tokens_per_s.push_back(static_cast<double>(n_gen) / s);
    }
  }

  // Batched decode: B sequences from empty contexts, n_gen steps of one token each.
  std::vector<Figure> batched;
  if (n_gen > 0) {
    for (const int32_t b : batches) {
      EngineOptions bo = eo;
      bo.n_batch = 1;
      std::vector<std::unique_ptr<Engine>> seqs;
      std::vector<Engine*> ptrs;
      for (int32_t i = 0; i < b; ++i) {
        seqs.push_back(std::make_unique<Engine>(*model, backend, bo));
        ptrs.push_back(seqs.back().get());
      }
      BatchDecoder decoder(*model, backend, bo.precision, b);
      Figure f{"tg" + std::to_string(n_gen) + "x" + std::to_string(b),
               n_gen * b,
               n_gen,
               traffic.per_pass(b),
               {}};
      std::vector<int32_t> tokens(static_cast<size_t>(b));
      for (int rep = -1; rep < reps; ++rep) {
        for (auto& e : seqs) e->reset();
        const auto t0 = std::chrono::steady_clock::now();
        for (int64_t t = 0; t < n_gen; ++t) {
          for (int32_t i = 0; i < b; ++i) {
            tokens[static_cast<size_t>(i)] = gen[static_cast<size_t>((t + i) % n_gen)];
          }
          if (b == 1) {
            seqs[0]->eval(std::span<const int32_t>(tokens.data(), 1), false, Region::kDecode);
          } else {
            decoder.decode(ptrs, tokens);
          }
        }
        const double s = seconds_since(t0);
        if (rep >= 0) f.tokens_per_s.push_back(static_cast<double>(n_gen * b) / s);
      }
      batched.push_back(std::move(f));
    }
  }

  const ReadBandwidth bw_after = measure_read_bandwidth(backend.pool(), bw_bytes);
  bw.mean_gb_per_s = (bw.mean_gb_per_s + bw_after.mean_gb_per_s) / 2;
  bw.gb_per_s = std::max(bw.gb_per_s, bw_after.gb_per_s);
  bw.n_runs += bw_after.n_runs;
  std::printf(
      "machine read bandwidth: %.2f GB/s best (%.2f before, %.2f after the timed runs), %.2f GB/s "
      "mean (%d threads summing %.0f MiB, %d runs; last-level cache %.0f MiB)\n",
      bw.gb_per_s, bw_before, bw_after.gb_per_s, bw.mean_gb_per_s, bw.n_threads,
      mib(bw.buffer_bytes), bw.n_runs, mib(last_level_cache_bytes()));

  std::vector<const Figure*> figures;
  if (n_prompt > 0) figures.push_back(&pp);
  if (n_gen > 0) figures.push_back(&tg);
  for (const Figure& f : batched) figures.push_back(&f);
  std::printf("\n%-8s | %10s | %10s | %9s | %11s | %17s | %10s\n", "test", "tokens/s", "mean t/s",
              "ms/token", "weight GB/s", "machine read GB/s", "% of limit");
  std::printf(
      "---------|------------|------------|-----------|-------------|-------------------|"
      "-----------\n");
  for (const Figure* f : figures) {
    std::printf("%-8s | %10.2f | %10.2f | %9.3f | %11.2f | %17.2f | %9.1f%%\n", f->test.c_str(),
                f->best(), f->mean(), 1000.0 / f->best(), f->weight_gb_per_s(), bw.gb_per_s,
                100.0 * f->weight_gb_per_s() / bw.gb_per_s);
  }
  std::printf(
      "(best of %d after one warm-up; weight GB/s = weight bytes read per pass x passes/s)\n",
      reps);
  for (const Figure& f : batched) {
    std::printf("%s: %d sequences decoded together: %.2f tokens/s aggregate, %.2fx %s\n",
                f.test.c_str(), static_cast<int>(f.n_tokens / std::max<int64_t>(n_gen, 1)),
                f.best(), f.best() / tg.best(), tg.test.c_str());
  }
  const bool fits_in_cache = traffic.per_pass(1) <= last_level_cache_bytes();
  if (fits_in_cache) {
    std::printf(
        "note: the weights fit in the last-level cache, so decode is not bound by the "
        "memory read bandwidth\n");
  } else if (n_gen > 0 && tg.weight_gb_per_s() > bw.gb_per_s) {
    std::printf(
        "warning: decode read weights faster than the measured bandwidth: the bandwidth "
        "runs were disturbed (busy machine?); repeat when it is quiet\n");
  }
  if (markdown) {
    std::string file = path.substr(path.find_last_of('/') + 1);
    const auto mix_v = type_mix(*model);
    std::printf(
        "\n| model | main type | weights MiB | threads | ISA | test | tokens/s | ms/token | "
        "weight GB/s | read GB/s | %% of limit |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const Figure* f : figures) {
      std::printf("| %s | %s | %.1f | %d | %s | %s | %.2f | %.3f | %.2f | %.2f | %.1f%% |\n",
                  file.c_str(), mix_v.front().first.c_str(), mib(model->weight_bytes()),
                  backend.n_threads(), kernels::isa_name(backend.isa()), f->test.c_str(), f->best(),
                  1000.0 / f->best(), f->weight_gb_per_s(), bw.gb_per_s,
                  100.0 * f->weight_gb_per_s() / bw.gb_per_s);
    }
  }
  return 0;
}

}  // namespace momentkv::tools
