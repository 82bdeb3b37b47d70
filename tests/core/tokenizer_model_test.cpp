// Tokenizers built from the real vocabularies in ../shared/models against llama.cpp's recorded
// test vectors (*.inp / *.out: no BOS, special-token parsing off), plus round trips, BOS/EOS,
// special-token parsing and end-of-generation ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/support/test_paths.h"

namespace momentkv {
namespace {

constexpr std::string_view kSeparator = "\n__ggml_vocab_test__\n";

// One tokenizer per vocabulary file, loaded once for the whole test program.
const Tokenizer& tokenizer_for(const std::string& rel) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[rel];
  if (!slot) slot = Tokenizer::create(GgufFile::open(test::model_path(rel)));
  return *slot;
}

// The test strings of a .inp file (the file ends with a separator).
std::vector<std::string> read_inputs(const std::string& rel) {
  std::string all = test::read_file(test::model_path(rel));
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

// The expected ids of a .out file, one line per string.
std::vector<std::vector<int32_t>> read_outputs(const std::string& rel) {
  std::string all = test::read_file(test::model_path(rel));
  std::vector<std::vector<int32_t>> out;
  std::istringstream lines(all);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ids(line);
    std::vector<int32_t> v;
    for (int32_t id; ids >> id;) v.push_back(id);
    out.push_back(std::move(v));
  }
  return out;
}

std::string show(const std::vector<int32_t>& ids) {
  std::ostringstream s;
  for (int32_t id : ids) s << ' ' << id;
  return s.str();
}

struct VectorCase {
  const char* name;
  const char* gguf;
  const char* vectors;  // .inp / .out without the extension
};

class TokenizerVectors : public ::testing::TestWithParam<VectorCase> {};

TEST_P(TokenizerVectors, MatchesLlamaCppIds) {
  const VectorCase& c = GetParam();
  const Tokenizer& tok = tokenizer_for(c.gguf);
  std::vector<std::string> inputs = read_inputs(std::string(c.vectors) + ".inp");
  std::vector<std::vector<int32_t>> expected = read_outputs(std::string(c.vectors) + ".out");
  ASSERT_EQ(inputs.size(), 46u) << c.vectors;
  ASSERT_EQ(inputs.size(), expected.size()) << c.vectors;

  size_t passed = 0;
  std::ostringstream failures;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<int32_t> got = tok.encode(inputs[i], false, false);
    if (got == expected[i]) {
      ++passed;
    } else {
      failures << "\n  #" << i << " '" << inputs[i] << "'\n    want" << show(expected[i])
               << "\n    got " << show(got);
    }
  }
  std::cout << c.gguf << ": " << passed << "/" << inputs.size() << " vectors match\n";
  EXPECT_EQ(passed, inputs.size())
      << c.gguf << ": " << passed << "/" << inputs.size() << " vectors match" << failures.str();
}

TEST_P(TokenizerVectors, DecodeInvertsEncode) {
  const VectorCase& c = GetParam();
  const Tokenizer& tok = tokenizer_for(c.gguf);
  std::vector<std::string> inputs = read_inputs(std::string(c.vectors) + ".inp");
  size_t passed = 0;
  std::ostringstream failures;
  for (size_t i = 0; i < inputs.size(); ++i) {
    bool ok = true;
    for (bool add_special : {false, true}) {
      std::vector<int32_t> ids = tok.encode(inputs[i], add_special, false);
      std::string back = tok.decode(ids);
      if (back != inputs[i]) {
        ok = false;
        failures << "\n  #" << i << " add_special=" << add_special << " '" << inputs[i] << "' -> '"
                 << back << "'";
      }
    }
    passed += ok;
  }
  EXPECT_EQ(passed, inputs.size())
      << c.gguf << ": " << passed << "/" << inputs.size() << " round trips" << failures.str();
}

TEST_P(TokenizerVectors, PiecesConcatenateToDecode) {
  const VectorCase& c = GetParam();
  const Tokenizer& tok = tokenizer_for(c.gguf);
  for (const std::string& text : read_inputs(std::string(c.vectors) + ".inp")) {
    std::vector<int32_t> ids = tok.encode(text, false, false);
    std::string joined;
    for (int32_t id : ids) joined += tok.token_to_piece(id);
    std::string decoded = tok.decode(ids);
    // decode differs from the raw pieces only by the SPM space prefix it strips.
    if (tok.vocab().kind() == VocabKind::kSpm && !joined.empty()) joined.erase(0, 1);
    EXPECT_EQ(decoded, joined) << c.gguf << " '" << text << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllVocabularies, TokenizerVectors,
    ::testing::Values(
        VectorCase{"llama_spm", "vocab/ggml-vocab-llama-spm.gguf",
                   "vocab/ggml-vocab-llama-spm.gguf"},
        VectorCase{"gpt2", "vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-gpt-2.gguf"},
        VectorCase{"qwen2", "vocab/qwen2.5-vocab.gguf", "vocab/ggml-vocab-qwen2.gguf"},
        VectorCase{"llama_bpe", "vocab/llama3/llama3-8b-vocab.gguf",
                   "vocab/ggml-vocab-llama-bpe.gguf"},
        VectorCase{"stories260K", "stories260K/stories260K.gguf", "stories260K/stories260K.gguf"}),
    [](const ::testing::TestParamInfo<VectorCase>& p) { return p.param.name; });

// Negative control: the qwen2 vocabulary with the gpt-2 split must fail some vectors (the README
// counts 4), so the vectors really exercise the pre-tokenizer choice.
TEST(TokenizerModel, Qwen2VocabWithGpt2SplitFailsSomeVectors) {
  GgufFile f = GgufFile::open(test::model_path("vocab/qwen2.5-vocab.gguf"));
  GgufWriter w;
  for (const GgufKv& kv : f.kvs()) w.copy_value(kv.key, kv.value);
  w.set_string("tokenizer.ggml.pre", "gpt-2");
  std::unique_ptr<Tokenizer> tok = Tokenizer::create(GgufFile::from_bytes(w.to_bytes()));
  std::vector<std::string> inputs = read_inputs("vocab/ggml-vocab-qwen2.gguf.inp");
  std::vector<std::vector<int32_t>> expected = read_outputs("vocab/ggml-vocab-qwen2.gguf.out");
  ASSERT_EQ(inputs.size(), expected.size());
  size_t failed = 0;
  for (size_t i = 0; i < inputs.size(); ++i)
    failed += tok->encode(inputs[i], false, false) != expected[i];
  EXPECT_EQ(failed, 4u);
}

TEST(TokenizerModel, Stories260KPromptWithBos) {
  const Tokenizer& tok = tokenizer_for("stories260K/stories260K.gguf");
  EXPECT_EQ(tok.n_vocab(), 512);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_EQ(tok.encode("Once upon a time", true, false),
            (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok.encode("Once upon a time", false, false),
            (std::vector<int32_t>{403, 407, 261, 378}));
  EXPECT_EQ(tok.encode("", true, false), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tok.encode("", false, false).empty());
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 403, 407, 261, 378}), "Once upon a time");
}

TEST(TokenizerModel, Stories260KGenerationDecodes) {
  const Tokenizer& tok = tokenizer_for("stories260K/stories260K.gguf");
  const std::vector<int32_t> ids = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
                                    426, 338, 401, 396, 267, 337, 410, 408, 419, 292,
                                    411, 322, 265, 282, 295, 433, 426, 385, 328, 432,
                                    358, 394, 261, 370, 432, 352, 266, 268, 388, 426};
  std::string text;
  for (int32_t id : ids) text += tok.token_to_piece(id);
  EXPECT_EQ(text,
            ", there was a little girl named Lily. She loved to play outside in the park. One "
            "day, she saw a big, red ball.");
}

TEST(TokenizerModel, SpmPiecesAndSpecialTokens) {
  const Tokenizer& tok = tokenizer_for("vocab/ggml-vocab-llama-spm.gguf");
  const Vocab& v = tok.vocab();
  EXPECT_EQ(v.kind(), VocabKind::kSpm);
  EXPECT_TRUE(v.add_bos());
  EXPECT_FALSE(v.add_eos());
  EXPECT_TRUE(v.add_space_prefix());
  EXPECT_EQ(tok.token_to_piece(v.find("<0x0A>")), "\n");
  EXPECT_EQ(tok.token_to_piece(1), "");  // <s> is a control token
  EXPECT_EQ(tok.token_to_piece(0), "");  // <unk>
  EXPECT_EQ(tok.token_to_piece(v.find("\xE2\x96\x81Hello")), " Hello");
  EXPECT_EQ(tok.token_to_piece(-1), "");
  EXPECT_EQ(tok.token_to_piece(tok.n_vocab()), "");

  // "<s>" is plain text unless parse_special.
  std::vector<int32_t> plain = tok.encode("<s>Hello", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0) << show(plain);
  std::vector<int32_t> parsed = tok.encode("<s>Hello", false, true);
  ASSERT_FALSE(parsed.empty());
  EXPECT_EQ(parsed[0], 1);
  // After a special token the space prefix comes back, as in llama.cpp.
  EXPECT_EQ(std::vector<int32_t>(parsed.begin() + 1, parsed.end()),
            tok.encode("Hello", false, false));
  EXPECT_EQ(tok.encode("Hello</s>", true, true).back(), 2);
  EXPECT_EQ(tok.encode("Hello", true, false).front(), 1);
  EXPECT_TRUE(tok.is_eog(2));
  EXPECT_FALSE(tok.is_eog(1));
}

TEST(TokenizerModel, Gpt2SpecialTokens) {
  const Tokenizer& tok = tokenizer_for("vocab/ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(tok.vocab().kind(), VocabKind::kBpe);
  EXPECT_EQ(tok.vocab().pre_tokenizer(), PreTokenizer::kGpt2);
  EXPECT_FALSE(tok.vocab().add_bos());  // no add_bos_token key; gpt-2 does not add one
  EXPECT_EQ(tok.encode("<|endoftext|>", false, true), (std::vector<int32_t>{50256}));
  EXPECT_EQ(tok.encode("a<|endoftext|>b", false, true), (std::vector<int32_t>{64, 50256, 65}));
  std::vector<int32_t> plain = tok.encode("<|endoftext|>", false, false);
  EXPECT_GT(plain.size(), 1u) << show(plain);
  EXPECT_EQ(tok.decode(plain), "<|endoftext|>");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{50256}), "");
  EXPECT_TRUE(tok.is_eog(50256));
  EXPECT_EQ(tok.encode("Hello", true, false), tok.encode("Hello", false, false));
}

TEST(TokenizerModel, Llama3BosAndEndOfGeneration) {
  const Tokenizer& tok = tokenizer_for("vocab/llama3/llama3-8b-vocab.gguf");
  EXPECT_EQ(tok.vocab().pre_tokenizer(), PreTokenizer::kLlama3);
  EXPECT_TRUE(tok.vocab().ignore_merges());
  EXPECT_TRUE(tok.vocab().add_bos());  // llama-bpe adds BOS by default
  std::vector<int32_t> ids = tok.encode("Hello", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 128000);
  EXPECT_EQ(tok.encode("<|begin_of_text|>Hello", false, true), ids);
  EXPECT_TRUE(tok.is_eog(128001));  // eos <|end_of_text|>
  EXPECT_TRUE(tok.is_eog(128009));  // <|eot_id|>
  EXPECT_FALSE(tok.is_eog(128000));
}

TEST(TokenizerModel, Qwen2ChatTokens) {
  const Tokenizer& tok = tokenizer_for("vocab/qwen2.5-vocab.gguf");
  const Vocab& v = tok.vocab();
  EXPECT_EQ(v.pre_tokenizer(), PreTokenizer::kQwen2);
  EXPECT_FALSE(v.add_bos());
  EXPECT_EQ(tok.bos(), Vocab::kNoToken);
  EXPECT_EQ(tok.eos(), 151645);
  EXPECT_EQ(v.pad_id(), 151643);
  EXPECT_TRUE(tok.is_eog(151645));  // <|im_end|>
  EXPECT_TRUE(tok.is_eog(151643));  // <|endoftext|>
  EXPECT_FALSE(tok.is_eog(151644));
  std::vector<int32_t> ids = tok.encode("<|im_start|>user\nHi<|im_end|>", true, true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151645);
  // User-defined tokens are split out even without parse_special (llama.cpp behaviour).
  std::vector<int32_t> tool = tok.encode("<tool_call>", false, false);
  EXPECT_EQ(tool, (std::vector<int32_t>{151657}));
  EXPECT_EQ(tok.decode(tool), "<tool_call>");
}

}  // namespace
}  // namespace momentkv
