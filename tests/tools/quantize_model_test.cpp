// `momentkv quantize` (tools/model_quantizer.h) end to end through the built binary: quantized
// stories260K-pad256 models load and reproduce llama.cpp's greedy text (computed on dequantized
// twins, so an f32-activation engine should match), and on stories260K (rows of 64 / 172) the
// fallbacks give exactly the tensor types of llama.cpp's own files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "core/tokenizer/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

struct RunResult {
  int status = -1;
  std::string output;  // stdout and stderr
};

// Runs `momentkv quantize in out type`.
RunResult quantize(const TempDir& dir, const std::string& in, const std::string& out,
                   const std::string& type) {
  const std::string log = dir.file("log.txt");
  const std::string cmd = "'" + test::momentkv_binary() + "' quantize -t 2 '" + in + "' '" + out +
                          "' " + type + " > '" + log + "' 2>&1";
  RunResult r;
  r.status = std::system(cmd.c_str());
  r.output = test::read_file(log);
  return r;
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Greedy ids after `prompt`, `n_total` positions in all (prompt included).
std::vector<int32_t> greedy(const Model& model, const std::vector<int32_t>& prompt, int n_total) {
  kernels::CpuBackend backend(1);
  EngineOptions opt;
  opt.precision = MatmulPrecision::kExact;
  Engine engine(model, backend, opt);
  std::vector<int32_t> out;
  auto logits = engine.eval(prompt);
  while (true) {
    const int32_t next = argmax(logits);
    out.push_back(next);
    if (static_cast<int>(prompt.size() + out.size()) >= n_total) break;
    const int32_t one[1] = {next};
    logits = engine.eval(one);
  }
  return out;
}

// The reference text for (type, prompt) in greedy-reference.tsv.
std::string reference_text(const std::string& type, const std::string& prompt) {
  std::istringstream lines(
      test::read_file(test::model_path("stories260K-pad256/greedy-reference.tsv")));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(type + "\t" + prompt + "\t", 0) == 0) {
      return line.substr(type.size() + prompt.size() + 2);
    }
  }
  ADD_FAILURE() << "no reference for " << type;
  return "";
}

// How many generated tokens keep the decoded text a prefix of `reference`.
int agreeing_tokens(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                    const std::vector<int32_t>& generated, const std::string& reference) {
  std::vector<int32_t> ids = prompt;
  int n = 0;
  for (int32_t id : generated) {
    ids.push_back(id);
    const std::string text = tok.decode(ids);
    if (reference.compare(0, text.size(), text) != 0) break;
    ++n;
  }
  return n;
}

// Quantizes pad256-F32 to `type`, loads it, and returns how many of the 59 greedy tokens agree
// with the reference text for `ref_type`.
int pad256_agreement(const std::string& type, const std::string& ref_type) {
  TempDir dir;
  const std::string out = dir.file("q.gguf");
  const auto r =
      quantize(dir, test::model_path("stories260K-pad256/stories260K-pad256-F32.gguf"), out, type);
  EXPECT_EQ(r.status, 0) << r.output;
  if (r.status != 0) return 0;
  EXPECT_NE(r.output.find("F32   -> "), std::string::npos) << r.output;
  auto model = Model::load(out);
  auto tok = Tokenizer::create(model->file());
  const std::string prompt_text = "Once upon a time";
  const auto prompt = tok->encode(prompt_text, true, false);
  EXPECT_EQ(prompt, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  const auto generated = greedy(*model, prompt, 64);
  std::vector<int32_t> all = prompt;
  for (int32_t id : generated) all.push_back(id);
  const std::string text = tok->decode(all);
  const std::string ref = reference_text(ref_type, prompt_text);
  const int n = agreeing_tokens(*tok, prompt, generated, ref);
  std::cout << type << ": " << n << " of " << generated.size()
            << " generated tokens agree with the llama.cpp reference\n  ours: " << text
            << "\n  ref:  " << ref << "\n";
  return n;
}

TEST(Quantize, Pad256Q8_0MatchesReferenceText) {
  EXPECT_GE(pad256_agreement("Q8_0", "Q8_0"), 20);
}

TEST(Quantize, Pad256Q4_0MatchesReferenceText) {
  EXPECT_GE(pad256_agreement("Q4_0", "Q4_0"), 20);
}

TEST(Quantize, Pad256Q4_K_MIsCoherent) {
  // llama.cpp's Q4_K rounding search is not reproduced bit for bit, and Q4_K_M text drifts early
  // even between llama.cpp runs ("agrees for the first ~20"), so ask for a shorter prefix.
  EXPECT_GE(pad256_agreement("Q4_K_M", "Q4_K_M"), 12);
}

// Type of every tensor of a file, by name.
std::vector<std::pair<std::string, GgmlType>> tensor_types(const GgufFile& f) {
  std::vector<std::pair<std::string, GgmlType>> v;
  for (const auto& t : f.tensors()) v.emplace_back(t.name, t.type);
  std::sort(v.begin(), v.end());
  return v;
}

TEST(Quantize, Pad256TypesMatchLlamaCpp) {
  TempDir dir;
  for (const char* type : {"Q4_0", "Q8_0", "Q4_K_M"}) {
    const std::string out = dir.file(std::string(type) + ".gguf");
    const auto r = quantize(dir, test::model_path("stories260K-pad256/stories260K-pad256-F32.gguf"),
                            out, type);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.find("fallback"), std::string::npos) << r.output;
    const GgufFile ours = GgufFile::open(out);
    const GgufFile ref = GgufFile::open(
        test::model_path(std::string("stories260K-pad256/stories260K-pad256-") + type + ".gguf"));
    EXPECT_EQ(tensor_types(ours), tensor_types(ref)) << type;
    EXPECT_EQ(ours.get_u32("general.file_type"), ref.get_u32("general.file_type")) << type;
    // Report how many tensors are bit-equal to llama.cpp's.
    int equal = 0;
    for (const auto& t : ours.tensors()) {
      const auto* u = ref.find_tensor(t.name);
      if (u && u->n_bytes == t.n_bytes &&
          std::memcmp(ours.tensor_data(t), ref.tensor_data(*u), t.n_bytes) == 0) {
        ++equal;
      }
    }
    std::cout << type << ": " << equal << " of " << ours.tensors().size()
              << " tensors bit-equal to llama.cpp's file\n";
  }
}

TEST(Quantize, Stories260KFallbacksMatchLlamaCppMixes) {
  TempDir dir;
  // requested type -> llama.cpp's file made from the same request.
  const std::pair<const char*, const char*> cases[] = {
      {"Q4_K_M", "stories260K/stories260K-Q5_0mix.gguf"},
      {"Q5_K", "stories260K/stories260K-Q5_1mix.gguf"},
      {"Q6_K", "stories260K/stories260K-Q8_0mix.gguf"},
  };
  for (const auto& [type, ref_rel] : cases) {
    const std::string out = dir.file(std::string(type) + ".gguf");
    const auto r = quantize(dir, test::model_path("stories260K/stories260K.gguf"), out, type);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("fallback: blk.0.ffn_down.weight: row length 172"), std::string::npos)
        << r.output;
    const GgufFile ours = GgufFile::open(out);
    const GgufFile ref = GgufFile::open(test::model_path(ref_rel));
    EXPECT_EQ(tensor_types(ours), tensor_types(ref)) << type;
    auto model = Model::load(out);
    const auto got = greedy(*model, {1, 403, 407, 261, 378}, 10);
    EXPECT_EQ(got[0], 432) << type;  // ","
  }
}

TEST(Quantize, RejectsBadArguments) {
  TempDir dir;
  const auto r =
      quantize(dir, test::model_path("stories260K/stories260K.gguf"), dir.file("x.gguf"), "Q3_XX");
  EXPECT_EQ(r.status != 0, true);
  EXPECT_NE(r.output.find("unknown TYPE 'Q3_XX'"), std::string::npos) << r.output;
  const auto missing = quantize(dir, dir.file("none.gguf"), dir.file("x.gguf"), "Q8_0");
  EXPECT_NE(missing.status, 0);
}

}  // namespace
}  // namespace momentkv
