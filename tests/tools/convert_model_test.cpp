// llama2.c conversion (core/model/llama2c_converter.h) against the upstream GGUF conversion of the
// same model: stories260K.bin + tok512.bin must give the tokenizer, the tensors and the greedy
// generation of stories260K.gguf. Malformed checkpoints must be rejected naming the problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "core/model/llama2c_converter.h"
#include "core/tokenizer/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/type_kernels.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

std::string checkpoint_path() {
  return test::model_path("stories260K/stories260K.bin");
}
std::string tokenizer_path() {
  return test::model_path("stories260K/tok512.bin");
}

std::vector<std::string> read_inputs(const std::string& rel) {
  constexpr std::string_view kSeparator = "\n__ggml_vocab_test__\n";
  const std::string all = test::read_file(test::model_path(rel));
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t hit = all.find(kSeparator); hit != std::string::npos;
       hit = all.find(kSeparator, pos)) {
    out.push_back(all.substr(pos, hit - pos));
    pos = hit + kSeparator.size();
  }
  if (pos < all.size()) out.push_back(all.substr(pos));
  return out;
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::vector<int32_t> greedy(const Model& model, const std::vector<int32_t>& prompt, int n) {
  kernels::CpuBackend backend(1);
  EngineOptions opt;
  opt.precision = MatmulPrecision::kExact;
  Engine engine(model, backend, opt);
  std::vector<int32_t> out;
  auto logits = engine.eval(prompt);
  for (int i = 0; i < n; ++i) {
    const int32_t next = argmax(logits);
    out.push_back(next);
    const int32_t one[1] = {next};
    if (i + 1 < n) logits = engine.eval(one);
  }
  return out;
}

// Converts the test model to `path` (F32) and loads it.
std::unique_ptr<Model> convert_to(const std::string& path) {
  auto cv = Llama2cConverter::open(checkpoint_path(), tokenizer_path());
  cv.to_gguf({}).write(path);
  return Model::load(path);
}

TEST(ConvertLlama2c, HeaderIsRead) {
  auto cv = Llama2cConverter::open(checkpoint_path(), tokenizer_path());
  const auto& c = cv.config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.shared_classifier);
  ASSERT_EQ(cv.tokens().size(), 512u);
  EXPECT_EQ(cv.tokens()[1].text, "<s>");
  EXPECT_EQ(cv.tokens()[259].text, "\xe2\x96\x81t");
}

TEST(ConvertLlama2c, ConfigAndTokenizerMetadataMatchUpstreamGguf) {
  TempDir dir;
  auto model = convert_to(dir.file("s260.gguf"));
  auto ref = Model::load(test::model_path("stories260K/stories260K.gguf"));
  const auto& a = model->config();
  const auto& b = ref->config();
  EXPECT_EQ(a.arch, "llama");
  EXPECT_EQ(a.n_vocab, b.n_vocab);
  EXPECT_EQ(a.n_embd, b.n_embd);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.n_head, b.n_head);
  EXPECT_EQ(a.n_head_kv, b.n_head_kv);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.n_ff, b.n_ff);
  EXPECT_EQ(a.n_rot, b.n_rot);
  EXPECT_EQ(a.rms_eps, b.rms_eps);
  EXPECT_EQ(a.rope_freq_base, b.rope_freq_base);
  EXPECT_EQ(a.rope_mode, RopeMode::kNormal);
  EXPECT_EQ(a.n_ctx_train, 512);  // the trained length (the upstream file says 2048)

  const GgufFile& f = model->file();
  const GgufFile& g = ref->file();
  const auto* ta = f.get_string_array("tokenizer.ggml.tokens");
  const auto* tb = g.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(ta && tb);
  ASSERT_EQ(ta->size(), tb->size());
  for (size_t i = 0; i < ta->size(); ++i) EXPECT_EQ((*ta)[i], (*tb)[i]) << "token " << i;
  EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores"), g.get_f32_array("tokenizer.ggml.scores"));
  EXPECT_EQ(f.get_i32_array("tokenizer.ggml.token_type"),
            g.get_i32_array("tokenizer.ggml.token_type"));
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.unknown_token_id"}) {
    EXPECT_EQ(f.get_u32(key), g.get_u32(key)) << key;
  }
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
}

TEST(ConvertLlama2c, TensorsAreBitEqualToUpstreamGguf) {
  TempDir dir;
  auto model = convert_to(dir.file("s260.gguf"));
  const GgufFile& f = model->file();
  const GgufFile g = GgufFile::open(test::model_path("stories260K/stories260K.gguf"));
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr) << "shared classifier must be tied";
  int compared = 0;
  for (const auto& t : g.tensors()) {
    // The upstream file stores the tied classifier explicitly; ours ties it to token_embd.
    const std::string name = t.name == "output.weight" ? "token_embd.weight" : t.name;
    const auto* ours = f.find_tensor(name);
    ASSERT_NE(ours, nullptr) << name;
    EXPECT_EQ(ours->ne, t.ne) << name;
    EXPECT_EQ(ours->type, t.type) << name;
    ASSERT_EQ(ours->n_bytes, t.n_bytes) << name;
    EXPECT_EQ(std::memcmp(f.tensor_data(*ours), g.tensor_data(t), t.n_bytes), 0) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 48);
  EXPECT_EQ(f.tensors().size(), 47u);
}

TEST(ConvertLlama2c, TokenizerGivesUpstreamIdsOnEveryTestString) {
  TempDir dir;
  auto model = convert_to(dir.file("s260.gguf"));
  auto ours = Tokenizer::create(model->file());
  auto ref = Tokenizer::create(GgufFile::open(test::model_path("stories260K/stories260K.gguf")));
  const auto inputs = read_inputs("stories260K/stories260K.gguf.inp");
  ASSERT_EQ(inputs.size(), 46u);
  for (const auto& text : inputs) {
    EXPECT_EQ(ours->encode(text, false, false), ref->encode(text, false, false)) << text;
    EXPECT_EQ(ours->encode(text, true, true), ref->encode(text, true, true)) << text;
  }
  EXPECT_EQ(ours->encode("Once upon a time", true, false),
            (std::vector<int32_t>{1, 403, 407, 261, 378}));
}

TEST(ConvertLlama2c, GreedyGenerationMatchesUpstreamGguf) {
  TempDir dir;
  auto model = convert_to(dir.file("s260.gguf"));
  auto ref = Model::load(test::model_path("stories260K/stories260K.gguf"));
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  const auto got = greedy(*model, prompt, 64);
  EXPECT_EQ(got, greedy(*ref, prompt, 64));
  // The README's observed first ids.
  const std::vector<int32_t> first = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317};
  EXPECT_TRUE(std::equal(first.begin(), first.end(), got.begin()));
}

TEST(ConvertLlama2c, Q8_0FallsBackToF16ForRowsOf172AndRuns) {
  auto cv = Llama2cConverter::open(checkpoint_path(), tokenizer_path());
  Llama2cConvertOptions opt;
  opt.type = GgmlType::Q8_0;
  opt.quantize = kernels::type_kernels(GgmlType::Q8_0).quantize;
  auto model = Model::from_file(GgufFile::from_bytes(cv.to_gguf(opt).to_bytes()));
  EXPECT_EQ(cv.notes().size(), 5u);  // ffn_down of each layer
  EXPECT_EQ(model->layer(0).w_down.type, GgmlType::F16);
  EXPECT_EQ(model->layer(0).wq.type, GgmlType::Q8_0);
  EXPECT_EQ(model->token_embd().type, GgmlType::Q8_0);
  const auto got = greedy(*model, {1, 403, 407, 261, 378}, 10);
  EXPECT_EQ(got, (std::vector<int32_t>{432, 383, 286, 261, 376, 298, 315, 421, 395, 317}));
}

// --- malformed inputs ---

std::vector<char> read_bytes(const std::string& path) {
  const std::string s = test::read_file(path);
  return std::vector<char>(s.begin(), s.end());
}

void write_bytes(const std::string& path, const std::vector<char>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

void set_header_field(std::vector<char>& b, int index, int32_t v) {
  std::memcpy(b.data() + 4 * index, &v, 4);
}

// The message of the Error that opening (checkpoint, tokenizer) throws, or "" if none.
std::string open_error(const std::string& checkpoint, const std::string& tokenizer) {
  try {
    Llama2cConverter::open(checkpoint, tokenizer);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ConvertLlama2c, RejectsMalformedCheckpoints) {
  TempDir dir;
  const auto good = read_bytes(checkpoint_path());
  const std::string bad = dir.file("bad.bin");

  auto truncated = good;
  truncated.resize(good.size() - 4);
  write_bytes(bad, truncated);
  {
    const std::string msg = open_error(bad, tokenizer_path());
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }

  write_bytes(bad, std::vector<char>(good.begin(), good.begin() + 20));
  EXPECT_NE(open_error(bad, tokenizer_path()).find("header"), std::string::npos);

  auto negative = good;
  set_header_field(negative, 0, -64);
  write_bytes(bad, negative);
  EXPECT_NE(open_error(bad, tokenizer_path()).find("dim = -64"), std::string::npos);

  auto heads = good;
  set_header_field(heads, 3, -8);
  write_bytes(bad, heads);
  EXPECT_NE(open_error(bad, tokenizer_path()).find("n_heads = -8"), std::string::npos);

  auto mismatch = good;
  set_header_field(mismatch, 2, 6);  // n_layers 6, but the file holds 5
  write_bytes(bad, mismatch);
  {
    const std::string msg = open_error(bad, tokenizer_path());
    EXPECT_NE(msg.find("n_layers 6"), std::string::npos) << msg;
    EXPECT_NE(msg.find("implies"), std::string::npos) << msg;
  }

  auto longer = good;
  longer.resize(good.size() + 8, 0);
  write_bytes(bad, longer);
  EXPECT_NE(open_error(bad, tokenizer_path()).find("size mismatch"), std::string::npos);

  auto gqa = good;
  set_header_field(gqa, 4, 3);  // 8 heads are not a multiple of 3 kv heads
  write_bytes(bad, gqa);
  EXPECT_NE(open_error(bad, tokenizer_path()).find("n_kv_heads = 3"), std::string::npos);

  auto zero_vocab = good;
  set_header_field(zero_vocab, 5, 0);
  write_bytes(bad, zero_vocab);
  EXPECT_NE(open_error(bad, tokenizer_path()).find("vocab_size"), std::string::npos);

  EXPECT_NE(open_error(dir.file("missing.bin"), tokenizer_path()).find("cannot open"),
            std::string::npos);
}

TEST(ConvertLlama2c, RejectsMalformedTokenizers) {
  TempDir dir;
  const auto good = read_bytes(tokenizer_path());
  const std::string bad = dir.file("tok.bin");

  auto truncated = good;
  truncated.resize(good.size() - 3);
  write_bytes(bad, truncated);
  EXPECT_NE(open_error(checkpoint_path(), bad).find("past the end"), std::string::npos);

  auto trailing = good;
  trailing.push_back('x');
  write_bytes(bad, trailing);
  EXPECT_NE(open_error(checkpoint_path(), bad).find("bytes left after 512 tokens"),
            std::string::npos);

  auto negative_len = good;
  const int32_t minus = -5;
  std::memcpy(negative_len.data() + 4 + 4, &minus, 4);  // token 0's length
  write_bytes(bad, negative_len);
  EXPECT_NE(open_error(checkpoint_path(), bad).find("token 0 has length -5"), std::string::npos);
}

}  // namespace
}  // namespace momentkv
