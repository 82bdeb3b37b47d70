// A small fidelity sweep on stories260K asserting what must hold: the full cache has KL 0 and
// agreement 1 with itself; every metric is finite; with a budget that never fills, every policy
// equals full; a small budget alters the context and scores below full.
#include <gtest/gtest.h>

#include <cmath>

#include "core/eval/eval_report.h"
#include "core/eval/evaluator.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/test_paths.h"

namespace momentkv::eval {
namespace {

class EvalSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(test::model_path("stories260K/stories260K.gguf"));
    tok_ = Tokenizer::create(model_->file());
    backend_ = std::make_unique<kernels::CpuBackend>(1);
    EvalOptions o;
    o.n_gen = 96;
    o.bucket = 32;
    o.engine.precision = MatmulPrecision::kExact;
    evaluator_ = std::make_unique<Evaluator>(*model_, *tok_, *backend_, o);
  }
  ConfigRecord run(const KvConfig& kv) {
    std::vector<PromptResult> results;
    for (const auto& r : refs()) results.push_back(evaluator_->evaluate(r, kv));
    return aggregate(kv, results, 32);
  }
  const std::vector<Reference>& refs() {
    if (refs_.empty()) {
      for (const char* p : {"Once upon a time, there was a little girl named Lily.",
                            "Tom had a red ball and a blue kite. He went to the park with Sue."}) {
        refs_.push_back(evaluator_->reference(p));
      }
    }
    return refs_;
  }
  static KvConfig config(const std::string& policy, int32_t budget, KvScope scope) {
    KvConfig c;
    c.policy = policy;
    c.decode_budget = budget;
    c.scope = scope;
    return c;
  }
  static void expect_finite(const ConfigRecord& r) {
    for (double v : {r.tf_top1_agreement, r.tf_kl_mean, r.tf_delta_nll, r.tf_copy_top1_agreement,
                     r.fr_first_divergence_mean, r.fr_token_agreement, r.rouge_l, r.repetition_rate,
                     r.output_length_ratio, r.retained_attention_mass, r.tokens_per_s}) {
      EXPECT_TRUE(std::isfinite(v)) << r.label;
    }
    for (double v : r.kl_by_bucket) EXPECT_TRUE(std::isfinite(v)) << r.label;
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<kernels::CpuBackend> backend_;
  std::unique_ptr<Evaluator> evaluator_;
  std::vector<Reference> refs_;
};

TEST_F(EvalSweep, FullCacheAgreesWithItself) {
  const auto r = run(config("full", 96, KvScope::kDecode));
  expect_finite(r);
  EXPECT_EQ(r.tf_kl_mean, 0.0);
  EXPECT_EQ(r.tf_top1_agreement, 1.0);
  EXPECT_EQ(r.tf_delta_nll, 0.0);
  EXPECT_EQ(r.fr_token_agreement, 1.0);
  EXPECT_EQ(r.rouge_l, 1.0);
  EXPECT_NEAR(r.retained_attention_mass, 1.0, 1e-6);  // probabilities summed in f32
  EXPECT_EQ(r.fr_first_divergence_mean, 96.0);
}

TEST_F(EvalSweep, BudgetThatNeverFillsEqualsFull) {
  for (const char* policy : {"moment", "h2o", "tova", "streaming", "scope"}) {
    for (KvScope scope : {KvScope::kDecode, KvScope::kUnified}) {
      const auto r = run(config(policy, 200, scope));
      expect_finite(r);
      EXPECT_EQ(r.tf_kl_mean, 0.0) << r.label;
      EXPECT_EQ(r.tf_top1_agreement, 1.0) << r.label;
      EXPECT_EQ(r.fr_token_agreement, 1.0) << r.label;
      EXPECT_EQ(r.evicted_mean, 0.0) << r.label;
    }
  }
}

TEST_F(EvalSweep, SmallBudgetAltersContext) {
  for (const char* policy : {"moment", "h2o", "tova", "streaming", "scope"}) {
    const auto r = run(config(policy, 16, KvScope::kDecode));
    expect_finite(r);
    EXPECT_GT(r.evicted_mean, 0.0) << r.label;
    EXPECT_GT(r.tf_kl_mean, 0.0) << r.label;
    EXPECT_LE(r.tf_top1_agreement, 1.0) << r.label;
    EXPECT_LT(r.retained_attention_mass, 1.0) << r.label;
    EXPECT_GT(r.retained_attention_mass, 0.0) << r.label;
    EXPECT_LT(r.peak_kv_bytes, run(config("full", 96, KvScope::kDecode)).peak_kv_bytes) << r.label;
  }
}

TEST_F(EvalSweep, ReportsAreWellFormed) {
  std::vector<ConfigRecord> recs = {run(config("full", 96, KvScope::kDecode)),
                                    run(config("moment", 16, KvScope::kUnified))};
  const auto json = to_json(recs);
  EXPECT_EQ(json.front(), '[');
  for (const char* key :
       {"\"policy\"", "\"scope\"", "\"alpha\"", "\"decode_budget\"", "\"tf_top1_agreement\"",
        "\"tf_kl_mean\"", "\"tf_delta_nll\"", "\"fr_first_divergence_mean\"",
        "\"fr_token_agreement\"", "\"rouge_l\"", "\"repetition_rate\"",
        "\"retained_attention_mass\"", "\"tokens_per_s\"", "\"peak_kv_bytes\"", "\"n_prompts\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
  const auto csv = to_csv(recs);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_NE(to_markdown(recs).find("| moment a=0.9 unified B=16 |"), std::string::npos);
}

}  // namespace
}  // namespace momentkv::eval
