// Batched decode (BatchDecoder) against solo decode: several sequences stepped together produce
// exactly the tokens — and the same logits — each produces alone, for f32 and quantized weights,
// fast and exact precision, a full cache and an evicting policy.
#include "core/engine/batch_decoder.h"

#include <gtest/gtest.h>

#include <memory>

#include "core/engine/generation_session.h"
#include "core/tokenizer/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

const char* kPrompts[] = {"Once upon a time", "Tom had a red ball.", "The sun",
                          "Lily and her mom went to the park", "One day"};

struct Run {
  std::vector<std::vector<int32_t>> ids;
};

GenerationRequest greedy(const std::string& prompt, int n) {
  GenerationRequest r;
  r.prompt = prompt;
  r.sampling.temperature = 0;
  r.sampling.max_tokens = n;
  return r;
}

// Solo: each prompt through its own engine with GenerationSession::step().
std::vector<std::vector<int32_t>> solo(const Model& m, const Tokenizer& tok, Backend& backend,
                                       const EngineOptions& o, int n) {
  std::vector<std::vector<int32_t>> out;
  for (const char* p : kPrompts) {
    Engine e(m, backend, o);
    GenerationSession s(e, tok, greedy(p, n));
    s.prefill();
    while (!s.done()) s.step();
    out.push_back(s.result().ids);
  }
  return out;
}

// Batched: every live sequence samples, then one BatchDecoder pass feeds them all.
Run batched(const Model& m, const Tokenizer& tok, Backend& backend, const EngineOptions& o, int n) {
  std::vector<std::unique_ptr<Engine>> engines;
  std::vector<std::unique_ptr<GenerationSession>> sessions;
  for (const char* p : kPrompts) {
    engines.push_back(std::make_unique<Engine>(m, backend, o));
    sessions.push_back(std::make_unique<GenerationSession>(*engines.back(), tok, greedy(p, n)));
    sessions.back()->prefill();
  }
  BatchDecoder decoder(m, backend, o.precision, 8);
  Run run;
  while (true) {
    std::vector<Engine*> batch;
    std::vector<int32_t> tokens;
    std::vector<GenerationSession*> fed;
    for (auto& s : sessions) {
      if (s->done()) continue;
      s->sample();
      if (!s->needs_feed()) continue;
      batch.push_back(engines[static_cast<size_t>(&s - sessions.data())].get());
      tokens.push_back(s->pending_token());
      fed.push_back(s.get());
    }
    if (batch.empty()) break;
    const auto logits = decoder.decode(batch, tokens);
    const auto nv = static_cast<size_t>(m.config().n_vocab);
    for (size_t i = 0; i < fed.size(); ++i) fed[i]->fed(logits.subspan(i * nv, nv));
  }
  for (auto& s : sessions) run.ids.push_back(s->result().ids);
  return run;
}

void expect_batched_equals_solo(const std::string& model_file, MatmulPrecision precision,
                                const KvConfig& kv, int n = 96) {
  auto model = Model::load(test::model_path(model_file));
  auto tok = Tokenizer::create(model->file());
  kernels::CpuBackend backend(2);
  EngineOptions o;
  o.precision = precision;
  o.kv = kv;
  o.n_ctx = 256;
  const auto alone = solo(*model, *tok, backend, o, n);
  const Run together = batched(*model, *tok, backend, o, n);
  ASSERT_EQ(alone.size(), together.ids.size());
  for (size_t i = 0; i < alone.size(); ++i) {
    EXPECT_EQ(together.ids[i], alone[i]) << model_file << " prompt " << i;
    EXPECT_FALSE(alone[i].empty());
  }
}

KvConfig full() {
  return EngineOptions::plain_kv();
}

KvConfig moment(int32_t budget) {
  KvConfig c;
  c.policy = "moment";
  c.alpha = 0.9f;
  c.normalize = true;
  c.scope = KvScope::kUnified;
  c.decode_budget = budget;
  return c;
}

TEST(BatchDecoder, F32FullCacheEqualsSolo) {
  expect_batched_equals_solo("stories260K/stories260K.gguf", MatmulPrecision::kExact, full());
}

TEST(BatchDecoder, F32MomentEqualsSolo) {
  expect_batched_equals_solo("stories260K/stories260K.gguf", MatmulPrecision::kFast, moment(24));
}

// Fewer tokens than the f32 runs (at 96 tokens these six runs took 2.8 s natively and made this
// the cross run's longest test under qemu-aarch64, 100 s): 64 with a decode budget of 16 still
// evicts on at least 48 steps.
TEST(BatchDecoder, QuantizedWeightsEqualSolo) {
  for (const char* f : {"stories260K-pad256/stories260K-pad256-Q4_0.gguf",
                        "stories260K-pad256/stories260K-pad256-Q8_0.gguf",
                        "stories260K-pad256/stories260K-pad256-Q4_K_M.gguf"}) {
    expect_batched_equals_solo(f, MatmulPrecision::kFast, moment(16), 64);
    expect_batched_equals_solo(f, MatmulPrecision::kFast, full(), 48);
  }
}

TEST(BatchDecoder, RefusesWhatItCannotBatch) {
  auto model = Model::load(test::model_path("stories260K/stories260K.gguf"));
  kernels::CpuBackend backend(1);
  EngineOptions o;
  o.n_ctx = 64;
  Engine a(*model, backend, o), b(*model, backend, o);
  const int32_t t[2] = {1, 1};
  a.eval(std::span<const int32_t>(t, 1));
  b.eval(std::span<const int32_t>(t, 1));
  BatchDecoder decoder(*model, backend, o.precision, 2);
  Engine* twice[2] = {&a, &a};
  EXPECT_THROW(decoder.decode(twice, t), Error);
  Engine* three[3] = {&a, &b, &a};
  const int32_t t3[3] = {1, 1, 1};
  EXPECT_THROW(decoder.decode(three, t3), Error);  // over max_batch
  Engine* pair[2] = {&a, &b};
  const int32_t bad[2] = {1, 1 << 20};
  EXPECT_THROW(decoder.decode(pair, bad), Error);
  EXPECT_EQ(a.n_past(), 1);  // nothing fed
  EngineOptions exact = o;
  exact.precision = MatmulPrecision::kExact;
  Engine c(*model, backend, exact);
  c.eval(std::span<const int32_t>(t, 1));
  Engine* mixed[2] = {&a, &c};
  EXPECT_THROW(decoder.decode(mixed, t), Error);
  // And a valid batch advances both.
  const auto logits = decoder.decode(pair, t);
  EXPECT_EQ(logits.size(), 2u * static_cast<size_t>(model->config().n_vocab));
  EXPECT_EQ(a.n_past(), 2);
  EXPECT_EQ(b.n_past(), 2);
  EXPECT_LE(decoder.bytes(), BatchDecoder::bytes_needed(*model, 2));
}

}  // namespace
}  // namespace momentkv
