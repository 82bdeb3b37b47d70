// Every stories260K variant in ../shared/models against the float64 reference (weights
// dequantized to float, activations in f32): logits at positions 0-15 and the greedy path; and the
// stories260K-pad256 files (F32, Q8_0, Q4_0, Q4_K_M) reproduce greedy-reference.tsv.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/engine/engine.h"
#include "core/tokenizer/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::vector<int32_t> ids_after(const std::string& text, const std::string& prefix) {
  const auto at = text.find(prefix);
  EXPECT_NE(at, std::string::npos) << prefix;
  if (at == std::string::npos) return {};
  const auto colon = text.find(": ", at) + 2;
  std::istringstream s(text.substr(colon, text.find('\n', colon) - colon));
  std::vector<int32_t> ids;
  int32_t id;
  while (s >> id) ids.push_back(id);
  return ids;
}

// Greedy decoding with `n_passes` forward passes in total, stopping at BOS or EOS, as the
// references were made.
std::vector<int32_t> greedy(Engine& e, const std::vector<int32_t>& prompt, int32_t n_passes,
                            std::vector<float>* margins = nullptr) {
  std::vector<int32_t> out;
  auto logits = e.eval(prompt);
  while (true) {
    const int32_t next = argmax(logits);
    if (margins) {
      std::vector<float> v(logits.begin(), logits.end());
      std::nth_element(v.begin(), v.begin() + 1, v.end(), std::greater<>());
      margins->push_back(v[0] - v[1]);
    }
    out.push_back(next);
    if (next == 1 || next == 2 || e.n_past() >= n_passes) break;
    const int32_t one[1] = {next};
    logits = e.eval(one);
  }
  return out;
}

class Stories260KVariant : public ::testing::TestWithParam<const char*> {};

TEST_P(Stories260KVariant, LogitsMatchFloat64Reference) {
  const std::string name = GetParam();
  auto model = Model::load(test::model_path("stories260K/" + name + ".gguf"));
  kernels::CpuBackend backend(1);
  EngineOptions opt;
  opt.precision = MatmulPrecision::kExact;
  Engine engine(*model, backend, opt);
  std::ifstream in(test::model_path("stories260K/reference/logits/" + name + ".numpy.txt"));
  std::string line;
  float worst = 0.0f;
  int positions = 0;
  while (std::getline(in, line)) {
    if (line.rfind("pos ", 0) != 0) continue;
    std::istringstream head(line);
    std::string w;
    int pos = 0, token = 0;
    head >> w >> pos >> w >> token;
    std::getline(in, line);
    std::istringstream vals(line);
    const int32_t one[1] = {token};
    auto logits = engine.eval(one);
    float v;
    size_t i = 0;
    while (vals >> v) worst = std::max(worst, std::fabs(logits[i++] - v));
    EXPECT_EQ(i, logits.size());
    ++positions;
  }
  EXPECT_EQ(positions, 16);
  EXPECT_LT(worst, 1e-3f) << name << ": max |logit - float64 reference| over positions 0-15";
  std::printf("%s: max |logit diff| vs float64 reference = %.2e\n", name.c_str(),
              static_cast<double>(worst));
}

TEST_P(Stories260KVariant, GreedyPathMatchesReference) {
  const std::string name = GetParam();
  auto model = Model::load(test::model_path("stories260K/" + name + ".gguf"));
  kernels::CpuBackend backend(1);
  EngineOptions opt;
  opt.precision = MatmulPrecision::kExact;
  Engine engine(*model, backend, opt);
  const std::string ref = test::read_file(test::model_path("stories260K/reference/greedy.txt"));
  const auto section = ref.substr(ref.find("== " + name + ".gguf"));
  const auto prompt = ids_after(section, "prompt_ids");
  const auto expected = ids_after(section, "numpy generated_ids");
  std::vector<float> margins;
  const auto got = greedy(engine, prompt, 256, &margins);
  size_t same = 0;
  while (same < got.size() && same < expected.size() && got[same] == expected[same]) ++same;
  EXPECT_EQ(got, expected) << name << ": first divergence at generated index " << same
                           << " (top-2 logit margin there "
                           << (same < margins.size() ? margins[same] : 0.0f) << ")";
}

INSTANTIATE_TEST_SUITE_P(Files, Stories260KVariant,
                         ::testing::Values("stories260K", "stories260K-F16", "stories260K-Q8_0mix",
                                           "stories260K-Q5_1mix", "stories260K-Q5_0mix",
                                           "stories260K-Q4_0mix"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

struct Pad256Case {
  std::string type, prompt, text;
};

std::vector<Pad256Case> read_pad256_reference() {
  std::ifstream in(test::model_path("stories260K-pad256/greedy-reference.tsv"));
  std::vector<Pad256Case> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find('\t');
    const auto b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    out.push_back({line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)});
  }
  return out;
}

TEST(Pad256, GreedyTextMatchesReferenceForEveryTypeAndPrompt) {
  const auto cases = read_pad256_reference();
  ASSERT_EQ(cases.size(), 12u);
  for (const auto& c : cases) {
    auto model =
        Model::load(test::model_path("stories260K-pad256/stories260K-pad256-" + c.type + ".gguf"));
    auto tok = Tokenizer::create(model->file());
    kernels::CpuBackend backend(2);
    EngineOptions opt;
    opt.precision = MatmulPrecision::kExact;
    Engine engine(*model, backend, opt);
    const auto prompt = tok->encode(c.prompt, /*add_special=*/true, /*parse_special=*/false);
    // Generate a little past the reference's 64-token budget, then compare over its whole text.
    const auto ids = greedy(engine, prompt, 72);
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), ids.begin(), ids.end());
    std::string text = tok->decode(all);
    std::replace(text.begin(), text.end(), '\n', ' ');  // the TSV holds newlines as spaces
    // The reference stops mid-word where its token budget ended: it must be a prefix of ours.
    const std::string ref = c.text.substr(0, c.text.find_last_not_of(' ') + 1);
    ASSERT_GE(text.size(), ref.size()) << c.type << " / " << c.prompt << ": " << text;
    EXPECT_EQ(text.substr(0, ref.size()), ref) << c.type << " / " << c.prompt;
  }
}

}  // namespace
}  // namespace momentkv
