// `momentkv synth` through the built binary, on small variants of the shapes (--layers 2): the
// files load, evaluate, have the shape's hyper-parameters, and are deterministic for a seed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/type_kernels.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

// Runs `momentkv synth <args> -o out`; returns the exit status and the combined output.
std::pair<int, std::string> synth(const TempDir& dir, const std::string& args,
                                  const std::string& out) {
  const std::string log = dir.file("log.txt");
  const std::string cmd = "'" + test::momentkv_binary() + "' synth -t 2 " + args + " -o '" + out +
                          "' > '" + log + "' 2>&1";
  const int status = std::system(cmd.c_str());
  return {status, test::read_file(log)};
}

// Evaluates a few tokens; every logit must be finite.
void expect_runs(const Model& model) {
  kernels::CpuBackend backend(2);
  EngineOptions opt;
  opt.n_ctx = 64;
  Engine engine(model, backend, opt);
  const std::vector<int32_t> prompt = {1, 100, 200, 300};
  auto logits = engine.eval(prompt);
  ASSERT_EQ(static_cast<int32_t>(logits.size()), model.config().n_vocab);
  for (int step = 0; step < 3; ++step) {
    for (float v : logits) ASSERT_TRUE(std::isfinite(v));
    const int32_t one[1] = {7 + step};
    logits = engine.eval(one);
  }
  EXPECT_EQ(engine.n_past(), 7);
}

TEST(Synth, Stories15mLoadsRunsAndIsDeterministic) {
  TempDir dir;
  const std::string a = dir.file("a.gguf"), b = dir.file("b.gguf"), c = dir.file("c.gguf");
  const std::string args = "--shape stories15m --layers 2 --type Q8_0";
  auto [sa, la] = synth(dir, args + " --seed 7", a);
  ASSERT_EQ(sa, 0) << la;
  auto [sb, lb] = synth(dir, args + " --seed 7", b);
  ASSERT_EQ(sb, 0) << lb;
  auto [sc, lc] = synth(dir, args + " --seed 8", c);
  ASSERT_EQ(sc, 0) << lc;
  const std::string bytes_a = test::read_file(a);
  EXPECT_EQ(bytes_a, test::read_file(b)) << "same seed, different files";
  EXPECT_NE(bytes_a, test::read_file(c)) << "different seeds, same file";

  auto model = Model::load(a);
  const auto& cfg = model->config();
  EXPECT_EQ(cfg.arch, "llama");
  EXPECT_EQ(cfg.n_embd, 288);
  EXPECT_EQ(cfg.n_layer, 2);
  EXPECT_EQ(cfg.n_head, 6);
  EXPECT_EQ(cfg.n_head_kv, 6);
  EXPECT_EQ(cfg.n_ff, 768);
  EXPECT_EQ(cfg.n_vocab, 32000);
  EXPECT_EQ(cfg.n_ctx_train, 256);
  EXPECT_EQ(model->layer(1).wq.type, GgmlType::Q8_0);
  EXPECT_NE(model->file().find_tensor("output.weight"), nullptr);
  EXPECT_EQ(model->layer(0).attn_norm[5], 1.0f);
  // Weights are about N(0, 0.02^2).
  const WeightView& wq = model->layer(0).wq;
  std::vector<float> w(static_cast<size_t>(wq.n_in * wq.n_out));
  kernels::type_kernels(wq.type).dequantize(wq.data, w.data(), wq.n_in * wq.n_out);
  double sum = 0, sum2 = 0;
  for (float v : w) {
    sum += v;
    sum2 += static_cast<double>(v) * v;
  }
  const double mean = sum / static_cast<double>(w.size());
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(std::sqrt(sum2 / static_cast<double>(w.size()) - mean * mean), 0.02, 0.001);
  expect_runs(*model);
}

TEST(Synth, Qwen2ShapeWithBiasesAndTiedOutput) {
  TempDir dir;
  const std::string out = dir.file("q.gguf");
  // The gpt-2 vocabulary (50257 tokens) keeps the test small; n_vocab follows it.
  auto [s, log] = synth(dir,
                        "--shape qwen2.5-0.5b --layers 2 --type Q4_0 --vocab '" +
                            test::model_path("vocab/ggml-vocab-gpt-2.gguf") + "'",
                        out);
  ASSERT_EQ(s, 0) << log;
  EXPECT_NE(log.find("n_vocab 151936 of qwen2.5-0.5b set to 50257"), std::string::npos) << log;
  auto model = Model::load(out);
  const auto& cfg = model->config();
  EXPECT_EQ(cfg.arch, "qwen2");
  EXPECT_EQ(cfg.rope_mode, RopeMode::kNeox);
  EXPECT_TRUE(cfg.qkv_bias);
  EXPECT_EQ(cfg.n_embd, 896);
  EXPECT_EQ(cfg.n_head, 14);
  EXPECT_EQ(cfg.n_head_kv, 2);
  EXPECT_EQ(cfg.head_dim, 64);
  EXPECT_EQ(cfg.n_vocab, 50257);
  EXPECT_EQ(cfg.rope_freq_base, 1000000.0f);
  EXPECT_EQ(model->file().find_tensor("output.weight"), nullptr);
  // The tied classifier gets Q6_K as in llama.cpp, and rows of 896 fall back to Q8_0.
  EXPECT_EQ(model->token_embd().type, GgmlType::Q8_0);
  EXPECT_EQ(model->layer(0).wq.type, GgmlType::Q4_0);
  EXPECT_EQ(model->layer(0).bk.size(), 128u);
  expect_runs(*model);
}

TEST(Synth, KMixFallsBackWhereRowsDoNotFit) {
  TempDir dir;
  const std::string out = dir.file("k.gguf");
  auto [s, log] = synth(dir, "--shape stories15m --layers 1 --type Q4_K_M", out);
  ASSERT_EQ(s, 0) << log;
  // Rows of 288 fit no 256-block: Q4_K -> Q5_0, Q6_K -> Q8_0; ffn_down rows (768) fit.
  EXPECT_NE(log.find("fallback: blk.0.attn_q.weight: row length 288 does not fit the block: Q4_K "
                     "-> Q5_0"),
            std::string::npos)
      << log;
  auto model = Model::load(out);
  EXPECT_EQ(model->layer(0).wq.type, GgmlType::Q5_0);
  EXPECT_EQ(model->layer(0).wv.type, GgmlType::Q8_0);  // use_more_bits(0, 1): Q6_K -> Q8_0
  EXPECT_EQ(model->layer(0).w_down.type, GgmlType::Q6_K);
  EXPECT_EQ(model->output().type, GgmlType::Q8_0);
  expect_runs(*model);
}

TEST(Synth, RejectsUnknownShapeAndType) {
  TempDir dir;
  auto [s1, l1] = synth(dir, "--shape gpt-5", dir.file("x.gguf"));
  EXPECT_NE(s1, 0);
  EXPECT_NE(l1.find("unknown shape 'gpt-5'"), std::string::npos) << l1;
  auto [s2, l2] = synth(dir, "--shape stories15m --type Q9_9", dir.file("x.gguf"));
  EXPECT_NE(s2, 0);
  EXPECT_NE(l2.find("unknown --type 'Q9_9'"), std::string::npos) << l2;
}

}  // namespace
}  // namespace momentkv
