// The fidelity probe on stories260K: a candidate that cannot evict agrees exactly with the full
// cache, an aggressive one does not; its figures equal the Evaluator's teacher-forced ones on the
// same tokens; one advance() is one forward pass; bytes_needed() covers what the engines hold.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "core/eval/evaluator.h"
#include "core/eval/fidelity_probe.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/test_paths.h"

namespace momentkv::eval {
namespace {

constexpr int32_t kGen = 120;

class FidelityProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load(test::model_path("stories260K/stories260K.gguf")).release();
    tok_ = Tokenizer::create(model_->file()).release();
    backend_ = new kernels::CpuBackend(1);
    EvalOptions o = eval_options(64);
    Evaluator ev(*model_, *tok_, *backend_, o);
    ref_ = new Reference(ev.reference("Once upon a time, there was a little girl named Lily."));
  }
  static void TearDownTestSuite() {
    delete ref_;
    delete backend_;
    delete tok_;
    delete model_;
  }
  static EvalOptions eval_options(int32_t n_batch) {
    EvalOptions o;
    o.n_gen = kGen;
    o.engine.precision = MatmulPrecision::kExact;
    o.engine.n_batch = n_batch;
    o.kv_type = KvType::kF32;
    return o;
  }
  static EngineOptions base(int32_t n_batch) {
    EngineOptions o = eval_options(n_batch).engine;
    o.kv.type = KvType::kF32;
    return o;
  }
  static KvConfig config(const std::string& policy, int32_t budget, KvScope scope) {
    KvConfig c;
    c.policy = policy;
    c.decode_budget = budget;
    c.scope = scope;
    c.type = KvType::kF32;
    return c;
  }
  static FidelityProbe probe(const std::vector<KvConfig>& candidates, int32_t n_batch = 64,
                             int32_t max_tokens = kGen, const Reference* ref = nullptr) {
    if (!ref) ref = ref_;
    return FidelityProbe(*model_, *backend_, base(n_batch), ref->prompt, ref->tokens, candidates,
                         max_tokens);
  }
  static int64_t run(FidelityProbe& p) {
    int64_t calls = 1;
    while (!p.advance()) ++calls;
    return calls;
  }

  static Model* model_;
  static Tokenizer* tok_;
  static kernels::CpuBackend* backend_;
  static Reference* ref_;
};

Model* FidelityProbeTest::model_ = nullptr;
Tokenizer* FidelityProbeTest::tok_ = nullptr;
kernels::CpuBackend* FidelityProbeTest::backend_ = nullptr;
Reference* FidelityProbeTest::ref_ = nullptr;

TEST_F(FidelityProbeTest, ReferenceIsLongEnough) {
  // The other tests need an output that a budget of 8 cannot hold many times over.
  ASSERT_GE(ref_->tokens.size(), 100u);
}

TEST_F(FidelityProbeTest, CandidatesThatCannotEvictAgreeExactly) {
  auto p = probe({config("full", kGen, KvScope::kDecode), config("moment", 1000, KvScope::kDecode),
                  config("h2o", 1000, KvScope::kUnified)});
  run(p);
  ASSERT_TRUE(p.done());
  for (const auto& r : p.results()) {
    SCOPED_TRACE(r.kv.policy);
    EXPECT_EQ(r.n_tokens, static_cast<int32_t>(ref_->tokens.size()));
    EXPECT_EQ(r.kl_mean, 0.0);
    EXPECT_EQ(r.kl_max, 0.0);
    EXPECT_EQ(r.top1_agreement, 1.0);
    EXPECT_EQ(r.evicted, 0);
  }
  EXPECT_EQ(p.results()[1].kv.decode_budget, 1000);  // reported as given
}

TEST_F(FidelityProbeTest, SampledOutputComparesArgmaxes) {
  // An output that is not the greedy continuation (as a sampled one): the candidate is compared
  // with the full cache's argmax, not with the token, so a cache that cannot evict still agrees
  // everywhere, while the output tokens themselves mostly differ from the argmax.
  std::vector<int32_t> output(ref_->tokens.rbegin(), ref_->tokens.rend());
  FidelityProbe p(
      *model_, *backend_, base(64), ref_->prompt, output,
      {config("moment", 1000, KvScope::kUnified), config("moment", 8, KvScope::kDecode)}, kGen);
  run(p);
  EXPECT_EQ(p.results()[0].top1_agreement, 1.0);
  EXPECT_EQ(p.results()[0].kl_mean, 0.0);
  EXPECT_LT(p.results()[1].top1_agreement, 1.0);
  EXPECT_GT(p.results()[1].kl_mean, 0.0);
}

TEST_F(FidelityProbeTest, AggressiveCandidateDiverges) {
  auto p = probe({config("moment", 8, KvScope::kDecode), config("streaming", 8, KvScope::kDecode)});
  run(p);
  for (const auto& r : p.results()) {
    SCOPED_TRACE(r.kv.policy);
    EXPECT_GT(r.kl_mean, 0.0);
    EXPECT_GE(r.kl_max, r.kl_mean);
    EXPECT_LT(r.top1_agreement, 1.0);
    EXPECT_GT(r.top1_agreement, 0.0);
    // One eviction per generated token fed past the budget.
    EXPECT_EQ(r.evicted, static_cast<int64_t>(ref_->tokens.size()) - 1 - 8);
  }
  std::printf("probe: %zu prompt + %zu output tokens, 1 + 2 engines: %.1f ms\n",
              ref_->prompt.size(), ref_->tokens.size(), p.elapsed_ms());
}

TEST_F(FidelityProbeTest, EqualsEvaluatorTeacherForced) {
  // A batch of 5 cuts the prompt into several chunks on both sides.
  for (int32_t n_batch : {5, 64}) {
    SCOPED_TRACE(n_batch);
    Evaluator ev(*model_, *tok_, *backend_, eval_options(n_batch));
    const Reference ref = ev.reference("Tom had a red ball and a blue kite. He went to the park.");
    ASSERT_GT(ref.tokens.size(), 32u);
    const std::vector<KvConfig> kvs = {
        config("moment", 16, KvScope::kDecode), config("h2o", 24, KvScope::kUnified),
        config("tova", 8, KvScope::kUnified), config("moment", 500, KvScope::kUnified)};
    auto p = probe(kvs, n_batch, kGen, &ref);
    run(p);
    for (size_t k = 0; k < kvs.size(); ++k) {
      SCOPED_TRACE(kvs[k].policy + " " + std::to_string(kvs[k].decode_budget));
      const PromptResult e = ev.evaluate(ref, kvs[k]);
      const ProbeCandidateResult& r = p.results()[k];
      ASSERT_EQ(r.n_tokens, e.n_tokens);
      const double kl = e.kl_sum / e.n_tokens, top1 = e.top1_sum / e.n_tokens;
      EXPECT_NEAR(r.kl_mean, kl, 1e-9 * std::max(kl, 1e-300));
      EXPECT_NEAR(r.top1_agreement, top1, 1e-9 * top1);
    }
  }
}

TEST_F(FidelityProbeTest, OneAdvanceIsOneForwardPass) {
  const auto n_prompt = static_cast<int32_t>(ref_->prompt.size());
  for (int32_t n_batch : {4, 64}) {
    for (int32_t max_tokens : {kGen, 50, 1}) {
      SCOPED_TRACE(std::to_string(n_batch) + " " + std::to_string(max_tokens));
      auto p = probe({config("moment", 8, KvScope::kDecode), config("tova", 8, KvScope::kUnified),
                      config("full", 8, KvScope::kDecode)},
                     n_batch, max_tokens);
      const int32_t n = std::min(max_tokens, static_cast<int32_t>(ref_->tokens.size()));
      const int64_t expected = 4 * ((n_prompt + n_batch - 1) / n_batch + n - 1);
      EXPECT_EQ(p.passes_total(), expected);
      EXPECT_EQ(FidelityProbe::passes_needed(n_prompt, n, 3, n_batch), expected);
      EXPECT_FALSE(p.done());
      // Partway, each candidate has scored only the positions it reached.
      for (int64_t i = 0; i < expected / 2; ++i) EXPECT_FALSE(p.advance());
      EXPECT_EQ(p.passes_done(), expected / 2);
      EXPECT_LE(p.results()[0].n_tokens, n);
      const int64_t rest = run(p);
      EXPECT_EQ(expected / 2 + rest, expected);
      EXPECT_TRUE(p.done());
      EXPECT_TRUE(p.advance());  // nothing left: no pass
      EXPECT_EQ(p.passes_done(), expected);
      for (const auto& r : p.results()) EXPECT_EQ(r.n_tokens, n);
      EXPECT_GT(p.elapsed_ms(), 0.0);
    }
  }
}

TEST_F(FidelityProbeTest, BytesNeededCoversTheEngines) {
  const auto n_prompt = static_cast<int32_t>(ref_->prompt.size());
  const auto n = static_cast<int32_t>(ref_->tokens.size());
  const std::vector<KvConfig> kvs = {config("moment", 8, KvScope::kDecode),
                                     config("h2o", 64, KvScope::kUnified)};
  auto p = probe(kvs);
  run(p);  // the log-softmax rows are allocated on the first passes
  const uint64_t need = FidelityProbe::bytes_needed(*model_, base(64), n_prompt, n, kvs, 1);
  EXPECT_GE(need, p.state_bytes());
  // The engines hold at least the three caches' K/V rows, so the check above is not vacuous.
  const ModelConfig& c = model_->config();
  KvConfig full = config("full", n, KvScope::kDecode);
  uint64_t kv_rows = KvCache::bytes_needed(c.n_layer, c.n_head_kv, c.head_dim, n_prompt, full);
  for (const auto& kv : kvs) {
    kv_rows += KvCache::bytes_needed(c.n_layer, c.n_head_kv, c.head_dim, n_prompt, kv);
  }
  EXPECT_GT(p.state_bytes(), kv_rows);
  // A budget the output cannot fill costs what the output length costs; more candidates cost
  // more.
  const auto need_for = [&](const std::vector<KvConfig>& cs) {
    return FidelityProbe::bytes_needed(*model_, base(64), n_prompt, n, cs, 1);
  };
  EXPECT_EQ(need_for({config("moment", 100000, KvScope::kDecode)}),
            need_for({config("moment", n, KvScope::kDecode)}));
  EXPECT_GT(
      need_for({config("moment", 8, KvScope::kDecode), config("moment", 16, KvScope::kDecode)}),
      need_for({config("moment", 8, KvScope::kDecode)}));
}

TEST_F(FidelityProbeTest, EmptyOutputAndBadInput) {
  FidelityProbe p(*model_, *backend_, base(64), ref_->prompt, {},
                  {config("moment", 8, KvScope::kDecode)}, kGen);
  EXPECT_TRUE(p.done());
  EXPECT_TRUE(p.advance());
  EXPECT_EQ(p.passes_total(), 0);
  ASSERT_EQ(p.results().size(), 1u);
  EXPECT_EQ(p.results()[0].n_tokens, 0);
  EXPECT_THROW(FidelityProbe(*model_, *backend_, base(64), {}, ref_->tokens, {}, kGen), Error);
  EXPECT_THROW(FidelityProbe(*model_, *backend_, base(64), ref_->prompt, ref_->tokens,
                             {config("moment", 0, KvScope::kDecode)}, kGen),
               Error);
  EXPECT_THROW(FidelityProbe(*model_, *backend_, base(64), ref_->prompt, ref_->tokens, {}, -1),
               Error);
}

}  // namespace
}  // namespace momentkv::eval
