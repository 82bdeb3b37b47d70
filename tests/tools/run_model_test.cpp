// `momentkv run` end to end on the real stories260K model: greedy text matches the reference,
// KV flags work and print the compression summary, and the memory budget holds: a generation that
// fits never exceeds it (peak RSS of the process, measured from outside), and one that does not
// is refused up front with the bytes needed and available.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "tests/support/sanitizers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

// The tight budget these tests run under, in MiB (more in a sanitizer build: its runtime is
// resident and counted, and so, in a peak measured from outside, are its quarantine and its leak
// check at exit).
const uint64_t kBudgetMib = 16 + ((test::kSanitizerRssSlack + test::kSanitizerExitRssSlack) >> 20);

std::vector<std::string> run_args(std::vector<std::string> extra) {
  std::vector<std::string> a = {test::momentkv_binary(),
                                "run",
                                "-m",
                                test::model_path("stories260K/stories260K.gguf"),
                                "--temp",
                                "0",
                                "-t",
                                "1"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(RunCommand, GreedyTextMatchesReference) {
  const auto r = test::run_process(run_args({"-p", "Once upon a time", "-n", "40"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to play "
                        "outside in the park. One day, she saw a big, red ball.",
                        0),
            0u)
      << r.out;
  EXPECT_NE(r.err.find("decode: 40 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos);
  EXPECT_NE(r.err.find("context altered: no"), std::string::npos) << r.err;
}

// --backend cuda: without CUDA in the build or a GPU in the machine a clear error and exit 1;
// with both, the same greedy text as the CPU.
TEST(RunCommand, CudaBackendRunsOrSaysWhyNot) {
  const auto r =
      test::run_process(run_args({"-p", "Once upon a time", "-n", "16", "--backend", "cuda"}));
  const bool no_build = r.err.find("built without CUDA") != std::string::npos;
  const bool no_device = r.err.find("no CUDA device") != std::string::npos;
  if (no_build || no_device) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("momentkv run: error:"), std::string::npos) << r.err;
    return;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("CUDA on "), std::string::npos) << r.err;
}

TEST(RunCommand, MomentPolicyRunsPastItsBudgetWithinTheMemoryBudget) {
  const uint64_t budget = kBudgetMib << 20;
  const auto r = test::run_process(
      run_args({"-n", "400", "--policy", "moment", "--alpha", "0.9", "--decode-budget", "64",
                "--memory-budget", std::to_string(kBudgetMib) + "MiB"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("decode: 400 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("policy moment"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("context altered: yes"), std::string::npos) << r.err;
  // 399 generated tokens went through the cache (the last one is only sampled): 399 - 64.
  EXPECT_NE(r.err.find("335 tokens evicted"), std::string::npos) << r.err;
  EXPECT_GT(r.peak_rss_bytes, 0u);
  EXPECT_LE(r.peak_rss_bytes, budget) << "peak RSS over the memory budget";
}

TEST(RunCommand, FullPolicyStopsWithLengthAtItsBudget) {
  const auto r =
      test::run_process(run_args({"-n", "200", "--policy", "full", "--decode-budget", "50"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 50 generated tokens fit the cache; the logits after the 50th give one more.
  EXPECT_NE(r.err.find("decode: 51 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("finish: length"), std::string::npos) << r.err;
}

TEST(RunCommand, TooSmallMemoryBudgetIsRefusedUpFront) {
  const auto r = test::run_process(run_args({"--memory-budget", "1MiB", "-n", "16"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("available"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(RunCommand, BadFlagsAreUsageErrors) {
  for (const auto& extra :
       std::vector<std::vector<std::string>>{{"--policy", "lru"},
                                             {"--alpha", "1.5", "--policy", "moment"},
                                             {"--kv-type", "q4"},
                                             {"--memory-budget", "lots"},
                                             {"--decode-budget", "0"},
                                             {"--temp", "nan"},
                                             {"--top-p", "2"},
                                             {"-n", "x"}}) {
    const auto r = test::run_process(run_args(extra));
    EXPECT_EQ(r.exit_code, 2) << extra[0] << ": " << r.err;
    EXPECT_FALSE(r.err.empty());
  }
}

TEST(RunCommand, MissingOrCorruptModelIsAClearError) {
  auto r = test::run_process({test::momentkv_binary(), "run", "-m", "/nonexistent.gguf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.gguf"), std::string::npos) << r.err;
  r = test::run_process(
      {test::momentkv_binary(), "run", "-m", test::model_path("stories260K/stories260K.bin")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("magic"), std::string::npos) << r.err;
}

TEST(RunCommand, ConfigFileSetsDefaultsAndFlagsOverrideIt) {
  const std::string path = ::testing::TempDir() + "/momentkv-run-test.toml";
  {
    std::ofstream f(path);
    f << "[model]\nthreads = 1\n[memory]\nbudget = \"" << kBudgetMib
      << "MiB\"\n"
         "[kv]\npolicy = \"moment\"\nalpha = 0.5\ndecode_budget = 32\n";
  }
  auto r = test::run_process(run_args({"--config", path, "-n", "100"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("policy moment"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("alpha 0.5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("decode_budget 32"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(budget " + std::to_string(kBudgetMib) + ".00 MiB)"), std::string::npos)
      << r.err;
  r = test::run_process(run_args({"--config", path, "-n", "100", "--decode-budget", "48"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("decode_budget 48"), std::string::npos) << r.err;
  {
    std::ofstream f(path);
    f << "[kv]\npolicy = \"lru\"\n";
  }
  r = test::run_process(run_args({"--config", path}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("kv.policy"), std::string::npos) << r.err;
  std::remove(path.c_str());
}

TEST(RunCommand, TokenizePrintsIds) {
  const auto r =
      test::run_process({test::momentkv_binary(), "tokenize", "-m",
                         test::model_path("stories260K/stories260K.gguf"), "Once upon a time"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 403 407 261 378\n");
}

}  // namespace
}  // namespace momentkv
