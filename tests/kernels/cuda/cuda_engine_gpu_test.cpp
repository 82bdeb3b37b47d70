// The CUDA engine (kernels/cuda/cuda_engine.h) against the CPU engine, its oracle, on the real
// test models: the first 64 greedy tokens equal the CPU engine's (f32 activations, f16 KV cache)
// for every weight type, with `full` and with `moment` evicting every step in either scope (the
// same tokens resident at the end); a prompt's logits within the f16 GEMM's tolerance. The option
// refusals and the weight-type coverage run everywhere; the rest is skipped at run time without a
// device.
#include "kernels/cuda/cuda_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/kernels/cuda/device_vectors.h"
#include "tests/support/test_paths.h"

namespace momentkv::kernels::cuda {
namespace {

constexpr int kTokens = 64;

const char* const kModels[] = {
    "stories260K/stories260K.gguf",
    "stories260K/stories260K-F16.gguf",
    "stories260K-pad256/stories260K-pad256-F32.gguf",
    "stories260K-pad256/stories260K-pad256-Q8_0.gguf",
    "stories260K-pad256/stories260K-pad256-Q4_0.gguf",
    "stories260K-pad256/stories260K-pad256-Q4_K_M.gguf",
};

EngineOptions options(const std::string& policy) {
  EngineOptions o;
  o.n_ctx = 256;
  o.n_batch = 16;
  o.precision = MatmulPrecision::kExact;
  o.kv = EngineOptions::plain_kv();
  o.kv.type = KvType::kF16;
  if (policy.rfind("moment", 0) == 0) {
    o.kv.policy = "moment";
    o.kv.decode_budget = 16;
    o.kv.alpha = 0.9f;
    o.max_prompt = 32;
  }
  if (policy == "moment-unified") {  // the daemon's default: any token may go, normalized scores
    o.kv.scope = KvScope::kUnified;
    o.kv.normalize = true;
  }
  return o;
}

// Greedy tokens after `prompt`: the prompt's next token, then each fed back in turn.
std::vector<int32_t> greedy(Sequence& s, const std::vector<int32_t>& prompt, int n) {
  s.reset();
  std::vector<int32_t> out{s.eval_greedy(prompt, Region::kPrefill)};
  while (static_cast<int>(out.size()) < n) {
    out.push_back(s.eval_greedy(std::span<const int32_t>(&out.back(), 1), Region::kDecode));
  }
  return out;
}

TEST(CudaEngine, RunsEveryTestModelsWeights) {
  for (const char* rel : kModels) {
    auto model = Model::load(test::model_path(rel));
    EXPECT_EQ(CudaEngine::unsupported(*model, options("full")).value_or("runs"), "runs") << rel;
  }
}

TEST(CudaEngine, RefusesWhatOnlyTheCpuEngineRuns) {
  auto model = Model::load(test::model_path("stories260K/stories260K.gguf"));
  EXPECT_FALSE(CudaEngine::unsupported(*model, options("full")).has_value());
  EXPECT_FALSE(CudaEngine::unsupported(*model, options("moment")).has_value());
  EngineOptions o = options("moment");
  o.kv.policy = "h2o";
  EXPECT_NE(CudaEngine::unsupported(*model, o).value_or("").find("h2o runs on the CPU"),
            std::string::npos);
  o = options("full");
  o.kv.type = KvType::kF32;
  EXPECT_NE(CudaEngine::unsupported(*model, o).value_or("").find("f16"), std::string::npos);
  o = options("moment-unified");
  EXPECT_FALSE(CudaEngine::unsupported(*model, o).has_value());
  o = options("moment");
  o.kv.prefill_budget = 8;
  EXPECT_NE(CudaEngine::unsupported(*model, o).value_or("").find("snapkv"), std::string::npos);
  EXPECT_GT(CudaModel::device_bytes_needed(*model, 16), model->weight_bytes());
  EXPECT_GT(CudaEngine::device_bytes_needed(*model, options("full")), 0u);
  if (device_count() == 0) {
    try {
      CudaModel on_device(*model, 16);
      FAIL() << "a CUDA model started without a device";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
    }
  }
}

TEST(CudaEngine, GreedyTokensEqualTheCpuEngines) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  CpuBackend backend(2);
  for (const char* rel : kModels) {
    auto model = Model::load(test::model_path(rel));
    auto tok = Tokenizer::create(model->file());
    const std::vector<int32_t> prompt = tok->encode("Once upon a time", true, true);
    CudaModel on_device(*model, 16);
    for (const char* policy : {"full", "moment", "moment-unified"}) {
      SCOPED_TRACE(std::string(rel) + ", " + policy);
      Engine cpu(*model, backend, options(policy));
      CudaEngine gpu(on_device, options(policy));
      const auto want = greedy(cpu, prompt, kTokens);
      const auto got = greedy(gpu, prompt, kTokens);
      EXPECT_EQ(got, want) << "CPU: " << tok->decode(want) << "\nGPU: " << tok->decode(got);
      EXPECT_EQ(gpu.n_used(), cpu.kv().cells(0, 0).n_used());
      if (std::string(policy) != "moment-unified") {  // unified: prompt tokens may go too
        EXPECT_EQ(gpu.n_prefill(), cpu.kv().cells(0, 0).n_prefill());
      }
      const auto summary = gpu.compression();
      EXPECT_EQ(summary.evicted, cpu.compression().evicted);
      EXPECT_EQ(summary.resident_peak, cpu.compression().resident_peak);
      // The same tokens resident (slots may be ordered differently only if choices differed).
      for (int32_t layer : {0, model->config().n_layer - 1}) {
        auto a = gpu.positions(layer, 0);
        const KvCells& cells = cpu.kv().cells(layer, 0);
        std::vector<int32_t> b(cells.positions(), cells.positions() + cells.n_used());
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        EXPECT_EQ(a, b) << "layer " << layer;
      }
    }
  }
}

// Decode steps as CUDA graphs (the default) and launch by launch give the same tokens: the
// graphs run the same kernels with each step's arguments, including the steps that evict.
TEST(CudaEngine, DecodeGraphsGiveTheTokensOfLaunchByLaunch) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  for (const char* rel : {kModels[0], kModels[4]}) {
    auto model = Model::load(test::model_path(rel));
    auto tok = Tokenizer::create(model->file());
    const std::vector<int32_t> prompt = tok->encode("Once upon a time", true, true);
    CudaModel on_device(*model, 16);
    for (const char* policy : {"full", "moment"}) {
      SCOPED_TRACE(std::string(rel) + ", " + policy);
      EngineOptions off = options(policy);
      off.cuda_graph = false;
      CudaEngine graphs(on_device, options(policy));
      CudaEngine launches(on_device, off);
      EXPECT_EQ(greedy(graphs, prompt, kTokens), greedy(launches, prompt, kTokens));
      EXPECT_EQ(launches.decode_graphs(), "launch by launch (off)");
      // 63 decode steps; all but the first and (moment) the first evicting one update in place.
      const std::string how = graphs.decode_graphs();
      EXPECT_EQ(how.rfind("graphs (" + std::to_string(kTokens - 1) + " steps, ", 0), 0u) << how;
    }
  }
}

TEST(CudaEngine, PromptLogitsMatchTheCpuEngine) {
  MOMENTKV_SKIP_WITHOUT_CUDA_DEVICE();
  CpuBackend backend(2);
  auto model = Model::load(test::model_path("stories260K-pad256/stories260K-pad256-Q8_0.gguf"));
  auto tok = Tokenizer::create(model->file());
  const std::vector<int32_t> prompt =
      tok->encode("Lily and her mom went to the park to play with a big red ball", true, true);
  Engine cpu(*model, backend, options("full"));
  CudaModel on_device(*model, 16);
  CudaEngine gpu(on_device, options("full"));
  // Every row: chunks of 16 through cuBLASLt, and one row through the mat-vec path.
  const auto a = cpu.eval(prompt, true);
  const std::vector<float> want(a.begin(), a.end());
  const auto got = gpu.eval(prompt, true);
  ASSERT_EQ(got.size(), want.size());
  float range = 0.0f, worst = 0.0f;
  for (size_t i = 0; i < want.size(); ++i) {
    range = std::max(range, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  // f16 weights and activations in the GEMM: within 1% of the logits' range.
  EXPECT_LT(worst, 0.01f * range) << "largest difference " << worst << ", range " << range;
  const int32_t one = 5;
  const auto next_cpu = cpu.eval(std::span<const int32_t>(&one, 1), false, Region::kDecode);
  const std::vector<float> want1(next_cpu.begin(), next_cpu.end());
  const auto next_gpu = gpu.eval(std::span<const int32_t>(&one, 1), false, Region::kDecode);
  for (size_t i = 0; i < want1.size(); ++i) {
    EXPECT_NEAR(next_gpu[i], want1[i], 0.01f * range) << "logit " << i;
  }
}

}  // namespace
}  // namespace momentkv::kernels::cuda
