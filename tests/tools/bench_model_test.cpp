// Functional tests of `momentkv bench` and `momentkv perplexity`, run as subprocesses on the
// stories260K model. No timing is asserted: only that the commands succeed, print their rows,
// and that perplexity agrees with an independent token-by-token computation.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "core/engine/engine.h"
#include "core/model/model.h"
#include "core/tokenizer/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

constexpr const char* kModel = "stories260K/stories260K.gguf";

// Four short TinyStories-like paragraphs: ~370 tokens with the stories260K vocabulary, so five
// chunks of 64.
constexpr const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
    "One day, she saw a big red ball in the park. She ran to the ball and kicked it very hard. "
    "The ball went up high into the sky.\n"
    "Lily's mom said, \"Lily, be careful! Do not kick the ball too far.\" Lily said, \"I am "
    "sorry, Mom. I will be careful.\" They played with the ball together and had a lot of fun.\n"
    "One day, a little boy named Tim went to the store with his dad. He wanted to buy a new toy. "
    "He saw a big blue truck and he was very happy. His dad said, \"You can have the truck if you "
    "are a good boy.\" Tim smiled and said, \"Thank you, Dad!\"\n"
    "Once upon a time, there was a small cat. The cat liked to sleep in the warm sun. One day, "
    "the cat saw a bird in the tree. The cat wanted to play with the bird, but the bird flew "
    "away. The cat was sad, but then it saw a friend.\n";

struct CommandResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

CommandResult run(const std::string& args) {
  const std::string cmd = test::momentkv_binary() + " " + args + " 2>&1";
  CommandResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) {
    ADD_FAILURE() << "popen failed: " << cmd;
    return r;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  const int st = pclose(pipe);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A file under the temp directory, removed when the test ends.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& contents)
      : path_(std::filesystem::temp_directory_path() /
              ("momentkv_bench_test_" + std::to_string(getpid()) + "_" + name)) {
    std::ofstream out(path_, std::ios::binary);
    out << contents;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// The number after `key` in `text` (NaN when absent).
double number_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(text.c_str() + at + key.size(), nullptr);
}

// The first line of `text` starting with `prefix`, or "".
std::string line_starting(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

// llama.cpp's scoring recomputed independently: tokens fed one at a time (no batched all-logits
// path), each chunk from an empty context with BOS in its first slot, positions [n_ctx/2,
// n_ctx-1) scored. Returns the mean NLL.
double mean_nll_token_by_token(const std::string& text, int32_t n_ctx) {
  auto model = Model::load(test::model_path(kModel));
  auto tok = Tokenizer::create(model->file());
  kernels::CpuBackend backend(1);
  EngineOptions eo;
  eo.n_ctx = n_ctx;
  eo.n_batch = 1;
  Engine engine(*model, backend, eo);
  const auto ids = tok->encode(text, true, false);
  const size_t n_chunks = ids.size() / static_cast<size_t>(n_ctx);
  double sum = 0;
  int64_t n = 0;
  for (size_t c = 0; c < n_chunks; ++c) {
    engine.reset();
    for (int32_t j = 0; j < n_ctx - 1; ++j) {
      const int32_t id = j == 0 ? tok->bos() : ids[c * static_cast<size_t>(n_ctx) + j];
      const auto logits = engine.eval(std::span<const int32_t>(&id, 1));
      if (j < n_ctx / 2) continue;
      double mx = -INFINITY;
      for (float l : logits) mx = std::max(mx, static_cast<double>(l));
      double z = 0;
      for (float l : logits) z += std::exp(static_cast<double>(l) - mx);
      const int32_t target = ids[c * static_cast<size_t>(n_ctx) + j + 1];
      sum += std::log(z) + mx - static_cast<double>(logits[static_cast<size_t>(target)]);
      ++n;
    }
  }
  return sum / static_cast<double>(n);
}

TEST(BenchCommand, PrintsHeaderTableAndMarkdown) {
  const std::string model = test::model_path(kModel);
  const auto r = run("bench -m " + model + " -p 16 -n 8 -r 1 --markdown");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("command: momentkv bench -m " + model + " -p 16 -n 8 -r 1 --markdown"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("type mix: F32 x48"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("threads: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ISA: "), std::string::npos) << r.output;
  // Exact decode traffic of stories260K: 5 layers of f32 matrices, the output matrix, one
  // embedding row and the norm vectors.
  EXPECT_NE(r.output.find("weight bytes read per decode token: 1040384 "), std::string::npos)
      << r.output;
  EXPECT_GT(number_after(r.output, "machine read bandwidth: "), 0.0) << r.output;
  for (const char* test : {"pp16 ", "tg8 "}) {
    const std::string row = line_starting(r.output, test);
    ASSERT_FALSE(row.empty()) << "no row " << test << " in\n" << r.output;
    const double tps = number_after(row, "| ");
    EXPECT_TRUE(std::isfinite(tps) && tps > 0) << row;
    EXPECT_NE(r.output.find(std::string("| stories260K.gguf | F32 | 1.1 | ")), std::string::npos)
        << r.output;
  }
}

TEST(BenchCommand, RejectsContextSmallerThanTheRun) {
  const auto r = run("bench -m " + test::model_path(kModel) + " -p 16 -n 8 -c 8");
  EXPECT_EQ(r.status, 2) << r.output;
}

TEST(BenchCommand, ContextPairAlternatesRoundsAndComparesTimeWithBytes) {
  const auto r =
      run("bench -m " + test::model_path(kModel) + " -t 1 -n 4 -r 3 --context-pair 8,200");
  ASSERT_EQ(r.status, 0) << r.output;
  // stories260K: 5 layers x 4 KV heads x 8 dims x K and V x 2 bytes (f16) per token.
  EXPECT_NE(r.output.find("per step: weight bytes 1040384, KV bytes per resident token 640"),
            std::string::npos)
      << r.output;
  // Warm-up of one step each; round k's 4 steps attend over n_past + 1 .. n_past + 4 slots.
  const char* rows[] = {"1      |       12,", "2      |       16,", "3      |       20,"};
  for (const char* prefix : rows) {
    const std::string row = line_starting(r.output, prefix);
    ASSERT_FALSE(row.empty()) << "no round row " << prefix << " in\n" << r.output;
    // 192 more resident tokens x 640 bytes against 1040384 weight bytes per step.
    EXPECT_NE(row.find("+11.81%"), std::string::npos) << row;
  }
  EXPECT_NE(r.output.find("median over 3 rounds: "), std::string::npos) << r.output;
  EXPECT_TRUE(std::isfinite(number_after(r.output, "extra time / extra bytes "))) << r.output;
  // Every timed step on its own (3 rounds of 4), with the time its attention took.
  const std::string steps = line_starting(r.output, "median step (12 timed steps per context; ");
  ASSERT_FALSE(steps.empty()) << r.output;
  const double short_step = number_after(steps, "their context's median): ");
  const double short_attention = number_after(steps, "prompt tokens (attention ");
  EXPECT_TRUE(short_attention > 0 && short_attention < short_step) << steps;
  EXPECT_TRUE(std::isfinite(number_after(steps, "extra time / extra bytes "))) << steps;
}

TEST(BenchCommand, ContextPairRejectsAReversedOrIncompletePair) {
  for (const char* pair : {"200,8", "8", "8,8"}) {
    const auto r = run("bench -m " + test::model_path(kModel) + " --context-pair " + pair);
    EXPECT_EQ(r.status, 2) << pair << "\n" << r.output;
  }
}

TEST(PerplexityCommand, StoryTextHasLowPerplexityMatchingTokenByToken) {
  const TempFile text("story.txt", kStory);
  const auto r =
      run("perplexity -m " + test::model_path(kModel) + " -f " + text.path() + " -c 64 --exact");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("[2]"), std::string::npos) << "expected >= 2 chunks:\n" << r.output;
  const double ppl = number_after(r.output, "perplexity = ");
  const double nll = number_after(r.output, "mean NLL = ");
  ASSERT_TRUE(std::isfinite(ppl)) << r.output;
  // stories260K scores this text at about 3.0: it is the kind of text it was trained on.
  EXPECT_LT(ppl, 6.0) << r.output;
  EXPECT_GT(ppl, 1.0) << r.output;
  EXPECT_NEAR(std::exp(nll), ppl, 1e-3 * ppl);
  // Five chunks of 64 tokens, each scoring positions 32..62.
  EXPECT_NE(r.output.find("over 155 tokens"), std::string::npos) << r.output;
  EXPECT_NEAR(nll, mean_nll_token_by_token(kStory, 64), 1e-3);
}

TEST(PerplexityCommand, RandomBytesScoreFarWorse) {
  std::mt19937 rng(7);
  std::string bytes(3000, '\0');
  for (char& b : bytes) b = static_cast<char>(rng() & 0xff);
  const TempFile story("story.txt", kStory);
  const TempFile noise("noise.txt", bytes);
  const std::string args = "perplexity -m " + test::model_path(kModel) + " -c 64 --chunks 4 -f ";
  const auto a = run(args + story.path());
  const auto b = run(args + noise.path());
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  const double ppl_story = number_after(a.output, "perplexity = ");
  const double ppl_noise = number_after(b.output, "perplexity = ");
  EXPECT_LT(ppl_story, 6.0) << a.output;
  EXPECT_GT(ppl_noise, 100.0 * ppl_story) << b.output;
}

TEST(PerplexityCommand, TextShorterThanOneChunkIsAnError) {
  const TempFile text("short.txt", "Once upon a time.");
  const auto r = run("perplexity -m " + test::model_path(kModel) + " -f " + text.path() + " -c 64");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("too short"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace momentkv
