// The model runtime against the float64 reference of an independent implementation
// (../shared/models/stories260K/reference): logits at positions 0-15 and the 252-token greedy path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/engine/engine.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

struct RefPosition {
  int32_t token = 0;
  std::vector<float> logits;
};

std::vector<RefPosition> read_reference_logits(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<RefPosition> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("pos ", 0) != 0) continue;
    std::istringstream head(line);
    std::string w;
    int pos = 0;
    RefPosition r;
    head >> w >> pos >> w >> r.token;
    std::getline(in, line);
    std::istringstream vals(line);
    float v;
    while (vals >> v) r.logits.push_back(v);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<int32_t> read_ids_line(const std::string& text, const std::string& prefix) {
  const auto at = text.find(prefix);
  EXPECT_NE(at, std::string::npos) << prefix;
  std::istringstream s(text.substr(at + prefix.size(), text.find('\n', at) - at - prefix.size()));
  std::vector<int32_t> ids;
  int32_t id;
  while (s >> id) ids.push_back(id);
  return ids;
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Greedy decoding as the reference does it: `n_passes` forward passes in total, stopping at BOS
// or EOS.
std::vector<int32_t> greedy(Engine& e, const std::vector<int32_t>& prompt, int32_t n_passes) {
  std::vector<int32_t> out;
  auto logits = e.eval(prompt);
  while (true) {
    const int32_t next = argmax(logits);
    out.push_back(next);
    if (next == 1 || next == 2 || e.n_past() >= n_passes) break;
    const int32_t one[1] = {next};
    logits = e.eval(one);
  }
  return out;
}

class Stories260K : public ::testing::TestWithParam<int> {};

TEST_P(Stories260K, LogitsMatchFloat64Reference) {
  auto model = Model::load(test::model_path("stories260K/stories260K.gguf"));
  kernels::CpuBackend backend(GetParam());
  EngineOptions opt;
  opt.precision = MatmulPrecision::kExact;
  Engine engine(*model, backend, opt);
  const auto ref =
      read_reference_logits(test::model_path("stories260K/reference/logits/stories260K.numpy.txt"));
  ASSERT_EQ(ref.size(), 16u);
  // Feed the reference path one token at a time (decode path) ...
  float worst = 0.0f;
  for (size_t p = 0; p < ref.size(); ++p) {
    const int32_t tok[1] = {ref[p].token};
    auto logits = engine.eval(tok);
    ASSERT_EQ(logits.size(), ref[p].logits.size());
    for (size_t i = 0; i < logits.size(); ++i) {
      worst = std::max(worst, std::fabs(logits[i] - ref[p].logits[i]));
    }
  }
  EXPECT_LT(worst, 1e-3f) << "decode path, max |diff| over positions 0-15";
  // ... and as one batch (prompt path), all logits.
  engine.reset();
  std::vector<int32_t> toks;
  for (const auto& r : ref) toks.push_back(r.token);
  auto all = engine.eval(toks, /*all_logits=*/true);
  worst = 0.0f;
  for (size_t p = 0; p < ref.size(); ++p) {
    for (size_t i = 0; i < ref[p].logits.size(); ++i) {
      worst = std::max(worst, std::fabs(all[p * 512 + i] - ref[p].logits[i]));
    }
  }
  EXPECT_LT(worst, 1e-3f) << "batched path, max |diff| over positions 0-15";
}

TEST_P(Stories260K, GreedyPathMatchesReference) {
  auto model = Model::load(test::model_path("stories260K/stories260K.gguf"));
  kernels::CpuBackend backend(GetParam());
  EngineOptions opt;
  opt.precision = MatmulPrecision::kExact;
  Engine engine(*model, backend, opt);
  const std::string ref = test::read_file(test::model_path("stories260K/reference/greedy.txt"));
  const auto section = ref.substr(ref.find("== stories260K.gguf"));
  const auto prompt = read_ids_line(section, "prompt_ids: ");
  const auto expected = read_ids_line(section, "numpy generated_ids (252): ");
  ASSERT_EQ(prompt, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  ASSERT_EQ(expected.size(), 252u);
  const auto got = greedy(engine, prompt, 256);
  size_t same = 0;
  while (same < got.size() && same < expected.size() && got[same] == expected[same]) ++same;
  EXPECT_EQ(same, 252u) << "first divergence at generated index " << same;
  EXPECT_EQ(got, expected);
}

INSTANTIATE_TEST_SUITE_P(Threads, Stories260K, ::testing::Values(1, 2));

}  // namespace
}  // namespace momentkv
