// momentkv perplexity: llama.cpp's perplexity measure. The text is tokenized once (with BOS) and
// cut into chunks of n_ctx tokens; each chunk starts with BOS in its first slot and is evaluated
// from an empty context with all logits. Only the second half of each chunk is scored (the first
// half is context): the logits at j predict token j + 1 for j in [n_ctx/2, n_ctx - 1). The
// log-softmax runs in double. Prints the running perplexity after each chunk, then the mean
// negative log-likelihood, the perplexity and the evaluation speed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/model_options.h"

namespace momentkv::tools {

namespace {

// -log softmax(logits)[target], computed in double.
double token_nll(const float* logits, int32_t n_vocab, int32_t target) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int32_t i = 0; i < n_vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return std::log(sum) + mx - static_cast<double>(logits[target]);
}

}  // namespace

int cmd_perplexity(int argc, char** argv) {
  ArgParser p("perplexity",
              "Perplexity of a model over a text file, scored as llama.cpp's perplexity tool "
              "does (chunks of -c tokens, second half of each chunk scored).");
  ModelOptions mo;
  mo.add_to(p);
  mo.n_batch = 0;  // 0: a whole chunk per forward pass
  std::string text_path;
  int64_t max_chunks = -1;
  p.add({"-f", "--file"}, "FILE", "text to score (required)",
        [&](const std::string& v) { text_path = v; });
  p.add({"--chunks"}, "N", "score at most N chunks (default: all)",
        [&](const std::string& v) { max_chunks = ArgParser::to_int("--chunks", v, 1, 1 << 30); });
  if (!p.parse(argc, argv)) return 0;
  if (text_path.empty()) throw UsageError("-f FILE is required (see perplexity --help)");
  std::ifstream in(text_path, std::ios::binary);
  if (!in) throw UsageError("cannot read text file '" + text_path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();

  const std::string path = mo.resolved_model_path();
  auto model = Model::load(path);
  auto tokenizer = Tokenizer::create(model->file());
  EngineOptions eo = mo.engine_options();
  if (eo.n_ctx == 0) eo.n_ctx = std::min(model->config().n_ctx_train, 512);
  if (eo.n_batch == 0) eo.n_batch = std::min(eo.n_ctx, 512);
  const int32_t n_ctx = eo.n_ctx;
  if (n_ctx < 4) throw UsageError("-c must be at least 4 to score half a chunk");
  kernels::CpuBackend backend(mo.threads);
  Engine engine(*model, backend, eo);

  const std::vector<int32_t> tokens = tokenizer->encode(text, true, false);
  const int64_t n_tokens = static_cast<int64_t>(tokens.size());
  int64_t n_chunks = n_tokens / n_ctx;
  if (n_chunks == 0) {
    std::fprintf(stderr,
                 "momentkv perplexity: error: '%s' is %lld tokens, too short for one chunk of "
                 "%d tokens (use a longer text or a smaller -c)\n",
                 text_path.c_str(), static_cast<long long>(n_tokens), n_ctx);
    return 1;
  }
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  const int32_t first = n_ctx / 2;
  std::fprintf(stderr, "model: %s, %d threads, %s kernels%s\n", path.c_str(), backend.n_threads(),
               kernels::isa_name(backend.isa()), mo.exact ? ", exact f32 activations" : "");
  std::printf("%lld tokens; %lld chunks of %d, scoring the last %d tokens of each\n",
              static_cast<long long>(n_tokens), static_cast<long long>(n_chunks), n_ctx,
              n_ctx - 1 - first);

  const int32_t n_vocab = engine.n_vocab();
  const int32_t bos = tokenizer->bos();
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  double nll_sum = 0;
  int64_t n_scored = 0;
  double eval_s = 0;
  for (int64_t k = 0; k < n_chunks; ++k) {
    const auto begin = tokens.begin() + k * n_ctx;
    std::copy(begin, begin + n_ctx, chunk.begin());
    if (bos >= 0) chunk[0] = bos;
    engine.reset();
    const auto t0 = std::chrono::steady_clock::now();
    const std::span<const float> logits = engine.eval(chunk, true);
    eval_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Targets come from the original tokens: the BOS swap only replaces an input.
    for (int32_t j = first; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + static_cast<size_t>(j) * static_cast<size_t>(n_vocab);
      nll_sum += token_nll(row, n_vocab, *(begin + j + 1));
      ++n_scored;
    }
    std::printf("[%lld]%.4f%s", static_cast<long long>(k + 1),
                std::exp(nll_sum / static_cast<double>(n_scored)), k + 1 == n_chunks ? "\n" : ",");
    std::fflush(stdout);
  }
  const double mean_nll = nll_sum / static_cast<double>(n_scored);
  const double evaluated = static_cast<double>(n_chunks) * n_ctx;
  std::printf("mean NLL = %.6f, perplexity = %.4f over %lld tokens\n", mean_nll, std::exp(mean_nll),
              static_cast<long long>(n_scored));
  std::printf("evaluated %.0f tokens in %.2f s (%.1f tokens/s)\n", evaluated, eval_s,
              evaluated / eval_s);
  return 0;
}

}  // namespace momentkv::tools
