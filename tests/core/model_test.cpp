// Model binding: hyper-parameters and tensors are checked by name, shape and type, and a bad file
// is rejected with an error that names the key or tensor and the expected vs actual value.
#include <gtest/gtest.h>

#include "core/engine/engine.h"
#include "core/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/tiny_model.h"

namespace momentkv {
namespace {

std::string load_error(const GgufWriter& w) {
  try {
    Model::from_file(GgufFile::from_bytes(w.to_bytes()));
  } catch (const std::exception& e) {
    return e.what();
  }
  return "accepted";
}

TEST(Model, TinyLlamaAndQwen2LoadAndRun) {
  for (const char* arch : {"llama", "qwen2"}) {
    test::TinyModelSpec spec;
    spec.arch = arch;
    auto model = Model::from_file(GgufFile::from_bytes(test::tiny_model_writer(spec).to_bytes()));
    EXPECT_EQ(model->config().n_vocab, 64);
    EXPECT_EQ(model->config().head_dim, 8);
    EXPECT_EQ(model->config().qkv_bias, std::string(arch) == "qwen2");
    EXPECT_EQ(model->config().rope_mode,
              std::string(arch) == "qwen2" ? RopeMode::kNeox : RopeMode::kNormal);
    kernels::CpuBackend backend(2);
    Engine engine(*model, backend, {});
    const int32_t toks[3] = {1, 2, 3};
    auto logits = engine.eval(toks);
    EXPECT_EQ(logits.size(), 64u);
    EXPECT_EQ(engine.n_past(), 3);
  }
}

TEST(Model, BatchedPromptEqualsTokenByToken) {
  test::TinyModelSpec spec;
  spec.tied_output = false;
  auto model = Model::from_file(GgufFile::from_bytes(test::tiny_model_writer(spec).to_bytes()));
  kernels::CpuBackend backend(2);
  EngineOptions opt;
  opt.precision = MatmulPrecision::kExact;
  opt.n_batch = 3;  // chunks of 3: exercises chunked prefill
  Engine batched(*model, backend, opt);
  Engine single(*model, backend, opt);
  const std::vector<int32_t> toks = {5, 9, 17, 33, 2, 60, 7};
  auto all = batched.eval(toks, true);
  std::vector<float> copy(all.begin(), all.end());
  for (size_t i = 0; i < toks.size(); ++i) {
    const int32_t one[1] = {toks[i]};
    auto l = single.eval(one);
    for (size_t v = 0; v < l.size(); ++v) EXPECT_NEAR(copy[i * 64 + v], l[v], 1e-4) << i;
  }
}

TEST(Model, ContextOverflowAndBadTokensAreErrors) {
  test::TinyModelSpec spec;
  auto model = Model::from_file(GgufFile::from_bytes(test::tiny_model_writer(spec).to_bytes()));
  kernels::CpuBackend backend(1);
  EngineOptions opt;
  opt.n_ctx = 4;
  Engine engine(*model, backend, opt);
  const int32_t bad[1] = {64};
  EXPECT_THROW(engine.eval(bad), Error);
  const int32_t five[5] = {1, 2, 3, 4, 5};
  EXPECT_THROW(engine.eval(five), Error);
  EXPECT_EQ(engine.n_past(), 0);
}

TEST(Model, MissingTensorIsNamed) {
  // Rebuild without blk.1.ffn_up.weight by copying everything else.
  auto full = GgufFile::from_bytes(test::tiny_model_writer({}).to_bytes());
  GgufWriter w;
  for (const auto& kv : full.kvs()) w.copy_value(kv.key, kv.value);
  for (const auto& t : full.tensors()) {
    if (t.name != "blk.1.ffn_up.weight") {
      w.add_tensor(t.name, t.ne, t.type, full.tensor_data(t), t.n_bytes);
    }
  }
  EXPECT_NE(load_error(w).find("blk.1.ffn_up.weight"), std::string::npos) << load_error(w);
}

TEST(Model, WrongShapeShowsExpectedAndActual) {
  auto full = GgufFile::from_bytes(test::tiny_model_writer({}).to_bytes());
  GgufWriter w;
  for (const auto& kv : full.kvs()) w.copy_value(kv.key, kv.value);
  for (const auto& t : full.tensors()) {
    if (t.name == "blk.0.attn_k.weight") {
      std::vector<float> v(32 * 32, 0.0f);  // should be [32, 16]
      w.add_tensor(t.name, {32, 32}, GgmlType::F32, v.data(), v.size() * 4);
    } else {
      w.add_tensor(t.name, t.ne, t.type, full.tensor_data(t), t.n_bytes);
    }
  }
  const auto err = load_error(w);
  EXPECT_NE(err.find("blk.0.attn_k.weight"), std::string::npos) << err;
  EXPECT_NE(err.find("[32, 32]"), std::string::npos) << err;
  EXPECT_NE(err.find("[32, 16]"), std::string::npos) << err;
}

TEST(Model, HyperParameterLimits) {
  auto w = test::tiny_model_writer({});
  w.set_u32("llama.block_count", 513);
  EXPECT_NE(load_error(w).find("block_count"), std::string::npos);
  w.set_u32("llama.block_count", 0xffffffffu);
  EXPECT_NE(load_error(w).find("block_count"), std::string::npos);
  w = test::tiny_model_writer({});
  w.set_u32("llama.attention.head_count_kv", 3);
  EXPECT_NE(load_error(w).find("head_count"), std::string::npos);
  w = test::tiny_model_writer({});
  w.set_string("general.architecture", "mamba");
  EXPECT_NE(load_error(w).find("mamba"), std::string::npos);
  w = test::tiny_model_writer({});
  w.set_string("llama.embedding_length", "32");
  EXPECT_NE(load_error(w).find("embedding_length"), std::string::npos);
  w = test::tiny_model_writer({});
  w.set_f32("llama.attention.layer_norm_rms_epsilon", -1.0f);
  EXPECT_NE(load_error(w).find("epsilon"), std::string::npos);
}

TEST(Model, UnsupportedWeightTypeIsNamed) {
  auto full = GgufFile::from_bytes(test::tiny_model_writer({}).to_bytes());
  GgufWriter w;
  for (const auto& kv : full.kvs()) w.copy_value(kv.key, kv.value);
  for (const auto& t : full.tensors()) {
    if (t.name == "blk.0.ffn_gate.weight") {
      // Q8_1 is a valid ggml type without momentkv kernels: 32 x 64 elements = 64 blocks of 36 B.
      std::vector<uint8_t> v(64 * 36, 0);
      w.add_tensor(t.name, {32, 64}, GgmlType::Q8_1, v.data(), v.size());
    } else {
      w.add_tensor(t.name, t.ne, t.type, full.tensor_data(t), t.n_bytes);
    }
  }
  const auto err = load_error(w);
  EXPECT_NE(err.find("Q8_1"), std::string::npos) << err;
  EXPECT_NE(err.find("blk.0.ffn_gate.weight"), std::string::npos) << err;
}

}  // namespace
}  // namespace momentkv
