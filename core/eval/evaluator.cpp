#include "core/eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_set>

#include "core/eval/metrics.h"
#include "core/kv/compression_summary.h"
#include "core/util/error.h"

namespace momentkv::eval {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
}  // namespace

const std::vector<int32_t>& Evaluator::age_buckets() {
  static const std::vector<int32_t> kBuckets = {16, 32, 64, 128, 256, 512, 1024};
  return kBuckets;
}

Evaluator::Evaluator(const Model& model, const Tokenizer& tokenizer, Backend& backend,
                     EvalOptions options)
    : model_(model), tokenizer_(tokenizer), backend_(backend), options_(options) {}

EngineOptions Evaluator::engine_options(const KvConfig& kv, int32_t n_prompt) const {
  EngineOptions o = options_.engine;
  o.kv = kv;
  o.kv.type = options_.kv_type;
  o.max_prompt = n_prompt;
  const int32_t need = n_prompt + options_.n_gen + 1;
  if (o.n_ctx < need) o.n_ctx = std::max(need, model_.config().n_ctx_train);
  return o;
}

Reference Evaluator::reference(const std::string& prompt) {
  Reference ref;
  ref.prompt = tokenizer_.encode(prompt, true, true);
  check(!ref.prompt.empty(), "empty prompt");
  KvConfig full;
  full.policy = "full";
  full.decode_budget = options_.n_gen;
  EngineOptions o = engine_options(full, static_cast<int32_t>(ref.prompt.size()));
  o.probe_attention = true;
  Engine engine(model_, backend_, o);
  const int32_t n_layer = model_.config().n_layer;
  auto logits = engine.eval(ref.prompt, false, Region::kPrefill);
  std::vector<double> lp;
  const auto t0 = Clock::now();
  for (int32_t t = 0; t < options_.n_gen; ++t) {
    const int32_t next = argmax(logits);
    if (tokenizer_.is_eog(next)) break;
    ref.tokens.push_back(next);
    log_softmax(logits, lp);
    ref.logprobs.insert(ref.logprobs.end(), lp.begin(), lp.end());
    if (t + 1 == options_.n_gen) break;
    const int32_t one[1] = {next};
    logits = engine.eval(one, false, Region::kDecode);
    // The full cache never evicts, so slot order is position order: store by position.
    auto& step = ref.attention.emplace_back(static_cast<size_t>(n_layer));
    for (int32_t l = 0; l < n_layer; ++l) {
      const auto& probe = engine.attention_probe(l);
      auto& row = step[static_cast<size_t>(l)];
      row.assign(static_cast<size_t>(engine.n_past()), 0.0f);
      for (size_t i = 0; i < probe.pos.size(); ++i) {
        row[static_cast<size_t>(probe.pos[i])] = probe.prob[i];
      }
    }
  }
  const double s = seconds_since(t0);
  ref.decode_tokens_per_s = s > 0 ? static_cast<double>(ref.tokens.size()) / s : 0.0;
  return ref;
}

PromptResult Evaluator::evaluate(const Reference& ref, const KvConfig& kv) {
  PromptResult r;
  const int32_t n_vocab = model_.config().n_vocab;
  const int32_t n_layer = model_.config().n_layer;
  const int32_t n = static_cast<int32_t>(ref.tokens.size());
  const auto n_buckets = static_cast<size_t>((n + options_.bucket - 1) / options_.bucket);
  r.kl_bucket.assign(n_buckets, 0.0);
  r.top1_bucket.assign(n_buckets, 0.0);
  r.bucket_count.assign(n_buckets, 0);
  r.age_histogram.assign(age_buckets().size() + 1, 0);
  const std::vector<bool> copy = copy_positions(ref.prompt, ref.tokens);

  // Teacher-forced replay of y* through the compressed cache.
  {
    EngineOptions o = engine_options(kv, static_cast<int32_t>(ref.prompt.size()));
    o.probe_attention = true;
    Engine engine(model_, backend_, o);
    auto logits = engine.eval(ref.prompt, false, Region::kPrefill);
    std::vector<double> lq;
    for (int32_t t = 0; t < n; ++t) {
      log_softmax(logits, lq);
      const double* lp =
          ref.logprobs.data() + static_cast<size_t>(t) * static_cast<size_t>(n_vocab);
      const std::span<const double> p(lp, static_cast<size_t>(n_vocab));
      const double kl = kl_divergence(p, lq);
      const int32_t y = ref.tokens[static_cast<size_t>(t)];
      const double top1 = argmax(logits) == y ? 1.0 : 0.0;
      r.kl_sum += kl;
      r.top1_sum += top1;
      r.delta_nll_sum += lp[y] - lq[static_cast<size_t>(y)];
      if (copy[static_cast<size_t>(t)]) {
        r.copy_top1_sum += top1;
        ++r.n_copy;
      }
      const auto b = static_cast<size_t>(t / options_.bucket);
      r.kl_bucket[b] += kl;
      r.top1_bucket[b] += top1;
      ++r.bucket_count[b];
      ++r.n_tokens;
      if (t + 1 == n) break;
      const int32_t one[1] = {y};
      logits = engine.eval(one, false, Region::kDecode);
      // Retained attention mass: the full cache's attention on the positions this cache held
      // when it attended (before this step's eviction), averaged over layers.
      const auto& full_step = ref.attention[static_cast<size_t>(t)];
      double mass = 0.0;
      for (int32_t l = 0; l < n_layer; ++l) {
        const auto& probe = engine.attention_probe(l);
        const auto& full_row = full_step[static_cast<size_t>(l)];
        for (int32_t pos : probe.pos) {
          if (pos >= 0 && static_cast<size_t>(pos) < full_row.size()) {
            mass += full_row[static_cast<size_t>(pos)];
          }
        }
      }
      r.retained_mass_sum += mass / n_layer;
      ++r.n_retained;
    }
    // Ages of the generated tokens kept at the end (layer 0, KV head 0).
    const KvCells& cells = engine.kv().cells(0, 0);
    const auto& bounds = age_buckets();
    for (int32_t s = 0; s < cells.n_used(); ++s) {
      if (cells.region(s) != Region::kDecode) continue;
      const int64_t age = engine.kv().step() - cells.birth(s);
      size_t b = 0;
      while (b < bounds.size() && age >= bounds[b]) ++b;
      ++r.age_histogram[b];
    }
  }

  // Free-running greedy generation with the compressed cache.
  {
    Engine engine(model_, backend_, engine_options(kv, static_cast<int32_t>(ref.prompt.size())));
    auto logits = engine.eval(ref.prompt, false, Region::kPrefill);
    std::vector<int32_t> out;
    const auto t0 = Clock::now();
    for (int32_t t = 0; t < options_.n_gen; ++t) {
      const int32_t next = argmax(logits);
      if (tokenizer_.is_eog(next)) break;
      out.push_back(next);
      if (t + 1 == options_.n_gen || !engine.can_eval(1, Region::kDecode)) break;
      const int32_t one[1] = {next};
      logits = engine.eval(one, false, Region::kDecode);
    }
    const double s = seconds_since(t0);
    r.tokens_per_s = s > 0 ? static_cast<double>(out.size()) / s : 0.0;
    r.first_divergence = first_divergence(out, ref.tokens);
    r.token_agreement = token_agreement(out, ref.tokens);
    r.rouge_l = rouge_l(out, ref.tokens);
    r.repetition_rate = repetition_rate(out);
    r.reference_repetition_rate = repetition_rate(ref.tokens);
    r.length_ratio = ref.tokens.empty()
                         ? 1.0
                         : static_cast<double>(out.size()) / static_cast<double>(ref.tokens.size());
    const auto summary = CompressionSummary::from(engine.kv());
    r.peak_kv_bytes = summary.kv_bytes_peak;
    r.evicted = summary.evicted;
  }
  return r;
}

}  // namespace momentkv::eval
