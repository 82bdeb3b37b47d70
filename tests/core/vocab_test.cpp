// Vocab validation on crafted GGUF vocabularies (wrong types, wrong lengths, malformed byte tokens,
// bad special ids, unsupported models) and the SPM / BPE merge rules on tiny vocabularies.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/vocab.h"

namespace momentkv {
namespace {

// Tokens 0..2 (<unk>, <s>, </s>), 256 byte tokens, then `extra` normal tokens.
struct SpmSpec {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

SpmSpec spm_spec(const std::vector<std::pair<std::string, float>>& extra) {
  SpmSpec s;
  s.tokens = {"<unk>", "<s>", "</s>"};
  s.scores = {0, 0, 0};
  s.types = {2, 3, 3};
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    s.tokens.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    s.scores.push_back(0);
    s.types.push_back(6);
  }
  for (const auto& [text, score] : extra) {
    s.tokens.push_back(text);
    s.scores.push_back(score);
    s.types.push_back(1);
  }
  return s;
}

GgufWriter spm_writer(const SpmSpec& s) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", s.tokens);
  w.set_f32_array("tokenizer.ggml.scores", s.scores);
  w.set_i32_array("tokenizer.ggml.token_type", s.types);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  return w;
}

GgufWriter spm_writer() {
  return spm_writer(spm_spec({{"\xE2\x96\x81", -1.0f}, {"a", -2.0f}}));
}

// A byte-level BPE vocabulary over "a", "b", "c", "Ġ" with the given merges.
GgufWriter bpe_writer(const std::vector<std::string>& merges, bool with_merges = true) {
  GgufWriter w;
  w.set_string("general.architecture", "gpt2");
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "gpt-2");
  w.set_string_array("tokenizer.ggml.tokens",
                     {"a", "b", "c", "\xC4\xA0", "ab", "bc", "abc", "<|endoftext|>"});
  w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 1, 1, 3});
  if (with_merges) w.set_string_array("tokenizer.ggml.merges", merges);
  w.set_u32("tokenizer.ggml.eos_token_id", 7);
  return w;
}

GgufFile to_file(const GgufWriter& w) {
  return GgufFile::from_bytes(w.to_bytes());
}

// Runs Vocab::from_gguf on `w` and returns the message of the Error it throws ("" if none).
std::string load_error(const GgufWriter& w) {
  GgufFile f = to_file(w);
  try {
    Vocab::from_gguf(f);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The GgufErrc of the GgufError from_gguf throws.
GgufErrc load_gguf_errc(const GgufWriter& w) {
  GgufFile f = to_file(w);
  try {
    Vocab::from_gguf(f);
  } catch (const GgufError& e) {
    return e.code();
  }
  ADD_FAILURE() << "no GgufError";
  return GgufErrc::kIo;
}

TEST(Vocab, ReadsAValidSpmVocabulary) {
  GgufFile f = to_file(spm_writer());
  Vocab v = Vocab::from_gguf(f);
  EXPECT_EQ(v.kind(), VocabKind::kSpm);
  EXPECT_EQ(v.n_vocab(), 3 + 256 + 2);
  EXPECT_EQ(v.bos_id(), 1);
  EXPECT_EQ(v.eos_id(), 2);
  EXPECT_EQ(v.unk_id(), 0);
  EXPECT_EQ(v.pad_id(), Vocab::kNoToken);
  EXPECT_TRUE(v.add_bos());  // SPM default
  EXPECT_FALSE(v.add_eos());
  EXPECT_TRUE(v.add_space_prefix());  // SPM default
  EXPECT_EQ(v.byte_token(0x41), 3 + 0x41);
  EXPECT_EQ(v.byte_value(3 + 0x41), 0x41);
  EXPECT_EQ(v.byte_value(0), -1);
  EXPECT_EQ(v.find("a"), 260);
  EXPECT_EQ(v.find("zz"), Vocab::kNoToken);
  EXPECT_FLOAT_EQ(v.score(260), -2.0f);
  EXPECT_EQ(v.type(1), TokenType::kControl);
  EXPECT_TRUE(v.is_eog(2));
  EXPECT_FALSE(v.is_eog(1));
}

TEST(Vocab, RejectsScoresOfTheWrongElementType) {
  GgufWriter w = spm_writer();
  std::vector<uint8_t> bytes(261, 0);
  GgufValue u8_array;
  u8_array.type = GgufType::Array;
  u8_array.elem_type = GgufType::U8;
  u8_array.count = bytes.size();
  u8_array.raw = bytes.data();
  w.copy_value("tokenizer.ggml.scores", u8_array);
  EXPECT_EQ(load_gguf_errc(w), GgufErrc::kWrongType);
  EXPECT_NE(load_error(w).find("tokenizer.ggml.scores"), std::string::npos) << load_error(w);
}

TEST(Vocab, RejectsArraysWhoseLengthIsNotNVocab) {
  GgufWriter w = spm_writer();
  w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(260, 0.0f));
  std::string msg = load_error(w);
  EXPECT_NE(msg.find("tokenizer.ggml.scores"), std::string::npos) << msg;
  EXPECT_NE(msg.find("260"), std::string::npos) << msg;
  EXPECT_NE(msg.find("261"), std::string::npos) << msg;

  GgufWriter w2 = spm_writer();
  w2.set_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(262, 1));
  msg = load_error(w2);
  EXPECT_NE(msg.find("tokenizer.ggml.token_type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("262"), std::string::npos) << msg;

  GgufWriter w3 = spm_writer();
  w3.set_u32("llama.vocab_size", 32000);
  msg = load_error(w3);
  EXPECT_NE(msg.find("llama.vocab_size"), std::string::npos) << msg;
  EXPECT_NE(msg.find("32000"), std::string::npos) << msg;
}

TEST(Vocab, RejectsMalformedByteTokens) {
  for (const char* bad : {"<0xZZ>", "<0x-1>", "<0x0a>", "<0x1>", "<0x100>", "0x41"}) {
    SpmSpec s = spm_spec({});
    s.tokens[3 + 0x41] = bad;
    std::string msg = load_error(spm_writer(s));
    EXPECT_NE(msg.find(bad), std::string::npos) << bad << ": " << msg;
    EXPECT_NE(msg.find("byte token"), std::string::npos) << bad << ": " << msg;
  }
}

TEST(Vocab, RejectsBadTokenTypes) {
  SpmSpec s = spm_spec({});
  s.types[10] = 9;
  std::string msg = load_error(spm_writer(s));
  EXPECT_NE(msg.find("tokenizer.ggml.token_type[10] = 9"), std::string::npos) << msg;
}

TEST(Vocab, ChecksSpecialIds) {
  GgufWriter w = spm_writer();
  w.set_u32("tokenizer.ggml.bos_token_id", 261);
  std::string msg = load_error(w);
  EXPECT_NE(msg.find("tokenizer.ggml.bos_token_id = 261"), std::string::npos) << msg;

  GgufWriter w2 = spm_writer();
  w2.set_i32("tokenizer.ggml.eos_token_id", -5);
  msg = load_error(w2);
  EXPECT_NE(msg.find("tokenizer.ggml.eos_token_id = -5"), std::string::npos) << msg;

  // 0xFFFFFFFF (llama.cpp's -1 written as u32) means "none".
  GgufWriter w3 = spm_writer();
  w3.set_u32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
  GgufFile f = to_file(w3);
  EXPECT_EQ(Vocab::from_gguf(f).pad_id(), Vocab::kNoToken);

  GgufWriter w4 = spm_writer();
  w4.set_string("tokenizer.ggml.bos_token_id", "1");
  EXPECT_EQ(load_gguf_errc(w4), GgufErrc::kWrongType);

  // An explicit add_bos without a BOS id is inconsistent.
  GgufWriter w5 = bpe_writer({"a b"});
  w5.set_bool("tokenizer.ggml.add_bos_token", true);
  msg = load_error(w5);
  EXPECT_NE(msg.find("tokenizer.ggml.add_bos_token"), std::string::npos) << msg;
}

TEST(Vocab, RejectsUnsupportedModelsAndPreTokenizers) {
  GgufWriter w = spm_writer();
  w.set_string("tokenizer.ggml.model", "bert");
  std::string msg = load_error(w);
  EXPECT_NE(msg.find("tokenizer.ggml.model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'bert'"), std::string::npos) << msg;

  GgufWriter w2 = bpe_writer({"a b"});
  w2.set_string("tokenizer.ggml.pre", "falcon");
  msg = load_error(w2);
  EXPECT_NE(msg.find("tokenizer.ggml.pre"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'falcon'"), std::string::npos) << msg;

  for (const char* pre : {"gpt-2", "default", "llama-bpe", "llama3", "llama-v3", "qwen2"}) {
    GgufWriter ok = bpe_writer({"a b"});
    ok.set_string("tokenizer.ggml.pre", pre);
    EXPECT_EQ(load_error(ok), "") << pre;
  }
}

TEST(Vocab, RequiresTokensAndMerges) {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  EXPECT_EQ(load_gguf_errc(w), GgufErrc::kMissing);
  w.set_i32_array("tokenizer.ggml.tokens", {1, 2, 3});
  EXPECT_EQ(load_gguf_errc(w), GgufErrc::kWrongType);
  GgufWriter empty;
  EXPECT_EQ(load_gguf_errc(empty), GgufErrc::kMissing);  // no tokenizer.ggml.model

  EXPECT_EQ(load_gguf_errc(bpe_writer({}, false)), GgufErrc::kMissing);
  std::string msg = load_error(bpe_writer({"a b", "abc"}));
  EXPECT_NE(msg.find("tokenizer.ggml.merges[1] = 'abc'"), std::string::npos) << msg;
}

TEST(SpmTokenizer, MergesHighestScoreFirstAndTiesLeftmost) {
  auto make = [](float ab, float bc) {
    SpmSpec s = spm_spec({{"a", -1}, {"b", -1}, {"c", -1}, {"ab", ab}, {"bc", bc}});
    GgufWriter w = spm_writer(s);
    w.set_bool("tokenizer.ggml.add_space_prefix", false);
    return Tokenizer::create(to_file(w));
  };
  const int32_t a = 259, b = 260, c = 261, ab = 262, bc = 263;
  EXPECT_EQ(make(-1, -1)->encode("abc", false, false), (std::vector<int32_t>{ab, c}));
  EXPECT_EQ(make(-1, -0.5f)->encode("abc", false, false), (std::vector<int32_t>{a, bc}));
  EXPECT_EQ(make(-0.5f, -1)->encode("abc", false, false), (std::vector<int32_t>{ab, c}));
  EXPECT_EQ(make(-1, -1)->encode("cab", false, false), (std::vector<int32_t>{c, ab}));
  EXPECT_EQ(make(-1, -1)->encode("b", false, false), (std::vector<int32_t>{b}));
}

TEST(SpmTokenizer, ByteFallbackAndSpacePrefix) {
  auto tok = Tokenizer::create(to_file(spm_writer()));
  const int32_t space = 259, a = 260;
  // "é" is not a token: one byte token per UTF-8 byte.
  EXPECT_EQ(tok->encode("a\xC3\xA9", false, false),
            (std::vector<int32_t>{space, a, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->encode("a a", true, false), (std::vector<int32_t>{1, space, a, space, a}));
  EXPECT_EQ(tok->decode(tok->encode("a\xC3\xA9 a", true, false)), "a\xC3\xA9 a");
  EXPECT_TRUE(tok->encode("", false, false).empty());
  EXPECT_EQ(tok->token_to_piece(3 + '\n'), "\n");
  EXPECT_EQ(tok->token_to_piece(space), " ");
}

TEST(BpeTokenizer, MergesLowestRankFirst) {
  auto t1 = Tokenizer::create(to_file(bpe_writer({"a b", "b c", "ab c"})));
  EXPECT_EQ(t1->encode("abc", false, false), (std::vector<int32_t>{6}));
  auto t2 = Tokenizer::create(to_file(bpe_writer({"b c", "a b", "ab c"})));
  EXPECT_EQ(t2->encode("abc", false, false), (std::vector<int32_t>{0, 5}));
  // " a" pre-tokenizes as one piece "Ġa", which has no merge: two tokens.
  EXPECT_EQ(t2->encode("c a", false, false), (std::vector<int32_t>{2, 3, 0}));
  EXPECT_EQ(t2->decode(t2->encode("c a", false, false)), "c a");
  EXPECT_EQ(t2->encode("a<|endoftext|>", false, true), (std::vector<int32_t>{0, 7}));
  EXPECT_TRUE(t2->is_eog(7));
  EXPECT_FALSE(t2->vocab().add_bos());
}

TEST(BpeTokenizer, Llama3IgnoresMergesForWholeTokens) {
  // "abc" is a token but no merge path reaches it; llama-bpe emits it whole.
  GgufWriter w = bpe_writer({"b c"});
  EXPECT_EQ(Tokenizer::create(to_file(w))->encode("abc", false, false),
            (std::vector<int32_t>{0, 5}));
  w.set_string("tokenizer.ggml.pre", "llama-bpe");
  EXPECT_EQ(Tokenizer::create(to_file(w))->encode("abc", false, false), (std::vector<int32_t>{6}));
}

}  // namespace
}  // namespace momentkv
