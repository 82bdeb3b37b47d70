// The bad-input GGUF corpus of RELIABILITY.md §4.3 (one small file per case, each named after
// the bug it re-creates) and the tiny valid models it is built from. make_gguf_seeds writes it as
// gguf_fuzz's seeds; tests/reliability/bad_gguf_corpus_test.cpp runs every case through the
// validator and the whole model load path (FZ-4, FZ-5).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/gguf/gguf_writer.h"
#include "tests/support/crafted_gguf.h"
#include "tests/support/tiny_model.h"

namespace momentkv::test::gguf_corpus {

inline constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
using Save = std::function<void(const std::string& name, const std::vector<uint8_t>& bytes)>;

inline TinyModelSpec tiny(const std::string& arch, int32_t n_vocab, bool tied) {
  TinyModelSpec s;
  s.arch = arch;
  s.n_embd = 8;
  s.n_layer = 1;
  s.n_head = 2;
  s.n_head_kv = 1;
  s.n_ff = 16;
  s.n_vocab = n_vocab;
  s.n_ctx = 32;
  s.tied_output = tied;
  return s;
}

inline std::vector<std::string> spm_tokens() {
  return {"<unk>",
          "<s>",
          "</s>",
          "<0x0A>",
          "<0x20>",
          "\xE2\x96\x81",
          "\xE2\x96\x81"
          "a",
          "a",
          "b",
          "c",
          "ab",
          "\xE2\x96\x81"
          "the",
          "t",
          "h",
          "e",
          "<0xC3>"};
}

inline GgufWriter llama_spm(const std::vector<std::string>& tokens) {
  GgufWriter w = tiny_model_writer(tiny("llama", 16, true));
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (size_t i = 0; i < tokens.size(); ++i) {
    scores.push_back(-static_cast<float>(i));
    const bool byte = tokens[i].rfind("<0x", 0) == 0;
    types.push_back(i == 0 ? 2 : i < 3 ? 3 : byte ? 6 : 1);
  }
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  return w;
}

inline GgufWriter qwen2_bpe() {
  GgufWriter w = tiny_model_writer(tiny("qwen2", 16, false));
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "qwen2");
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "\xC4\xA0", "ab",
                                               "\xC4\xA0"
                                               "a",
                                               "abc", "d", "e", "<|endoftext|>", "<|im_start|>",
                                               "<|im_end|>", "1", "2", "!", "?"});
  w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1, 1, 1, 1});
  w.set_string_array("tokenizer.ggml.merges", {"a b", "\xC4\xA0 a", "ab c"});
  w.set_u32("tokenizer.ggml.eos_token_id", 9);
  w.set_string("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{% endfor %}");
  return w;
}

using Craft = CraftedGguf;

inline void bad_header_and_lengths(const Save& save) {
  Craft c;
  save("valid_craft", c.bytes());
  for (uint64_t n : {kMax, uint64_t{1} << 63, uint64_t{200}}) {  // CVE-2024-23605
    c = {};
    c.n_kv = n;
    save("n_kv_" + std::to_string(n), c.bytes());
  }
  c = {};
  c.n_tensors = kMax / 48 - 1;  // issue #15711: just below SIZE_MAX / sizeof(info)
  save("n_tensors_near_max", c.bytes());
  c = {};
  c.ne = {uint64_t{1} << 32, uint64_t{1} << 32};  // CVE-2024-21802: product overflows
  save("ne_product_overflow", c.bytes());
  c = {};
  c.ne = {uint64_t{1} << 62, 1};  // one dim huge, the other 1
  save("ne_one_dim_huge", c.bytes());
  c = {};
  c.value_len = kMax - 1;  // CVE-2024-21825 family: string length ~2^64
  save("string_len_max", c.bytes());
  c = {};
  c.key_len = kMax - 1;
  c.n_kv = kMax;
  c.n_tensors = kMax;  // Databricks: all length fields max
  save("all_lengths_max", c.bytes());
  const auto full = Craft{}.bytes();
  for (size_t n : {4u, 8u, 16u, 24u, 32u, 52u, 56u, 69u, 80u, 96u, 100u}) {  // cut after fields
    save("truncated_" + std::to_string(n), {full.begin(), full.begin() + static_cast<long>(n)});
  }
  c = {};
  c.ne = {kMax / 4, 1};  // PR #24759: F32 ne0 = SIZE_MAX/4, padded size 0
  save("f32_ne0_size_max_div4", c.bytes());
  c = {};
  c.ggml_type = 8;  // CVE-2026-33298: Q8_0, element count fine, byte size huge
  c.ne = {uint64_t{1} << 40, uint64_t{1} << 20};
  save("q8_0_huge_bytes", c.bytes());
  c = {};
  c.ne = {4, 0};  // HF PoC division by zero
  save("ne1_zero", c.bytes());
  c = {};
  c.offset = 64;  // Bleeding Llama: data past the end
  save("offset_past_end", c.bytes());
  c = {};
  c.offset = kMax - 31;  // CVE-2026-27940 / 53630: offset + size wraps
  save("offset_wraps", c.bytes());
  c = {};
  c.ggml_type = 4;  // a removed type
  save("removed_type", c.bytes());
  save("alignment_2p31", file_with_alignment(4, 1u << 31));  // PR #24997
  save("alignment_0", file_with_alignment(4, 0));
  save("alignment_3", file_with_alignment(4, 3));
  save("alignment_i32", file_with_alignment(5, 32));

  // Array count x element size wraps (CVE-2024-23496 family).
  ByteWriter a;
  a.u32(0x46554747);
  a.u32(3);
  a.u64(0);
  a.u64(1);
  a.str("a");
  a.u32(9);
  a.u32(10);
  a.u64(kMax / 8 + 2);
  a.u64(0);
  save("array_count_wraps", a.bytes());

  // Nested arrays 1300 deep (gguf-py stack exhaustion; 10^4 in gguf_file_test, but a seed must
  // fit in the target's -max_len).
  ByteWriter d;
  d.u32(0x46554747);
  d.u32(3);
  d.u64(0);
  d.u64(1);
  d.str("deep");
  d.u32(9);
  for (int i = 0; i < 1300; ++i) {
    d.u32(9);
    d.u64(1);
  }
  save("nested_arrays_deep", d.bytes());

  // Many tensors whose padded sizes sum past SIZE_MAX (CVE-2025-53630), and two that overlap.
  ByteWriter m;
  m.u32(0x46554747);
  m.u32(3);
  m.u64(4);
  m.u64(0);
  for (int i = 0; i < 4; ++i) {
    m.str("t" + std::to_string(i));
    m.u32(1);
    m.u64(kMax / 16);
    m.u32(0);
    m.u64(0);
  }
  save("padded_sizes_wrap", m.bytes());
  ByteWriter o;
  o.u32(0x46554747);
  o.u32(3);
  o.u64(2);
  o.u64(0);
  for (uint64_t off : {0u, 32u}) {
    o.str(off ? "b" : "a");
    o.u32(1);
    o.u64(16);
    o.u32(0);
    o.u64(off);
  }
  o.pad_to(32);
  o.raw(std::vector<uint8_t>(128, 0).data(), 128);
  save("overlapping_tensors", o.bytes());
}

inline void bad_models(const Save& save) {
  // block_count beyond the layer limit (PR #25821 / #26051).
  for (uint32_t n : {513u, 0xFFFFFFFFu}) {
    GgufWriter w = tiny_model_writer(tiny("llama", 16, true));
    w.set_u32("llama.block_count", n);
    save("block_count_" + std::to_string(n), w.to_bytes());
  }
  // Tokenizer arrays of the wrong element type (HF PoC type confusion) or count.
  {
    GgufWriter w = llama_spm(spm_tokens());
    std::vector<uint8_t> u8(16, 1);
    GgufValue v;
    v.type = GgufType::Array;
    v.elem_type = GgufType::U8;
    v.count = u8.size();
    v.raw = u8.data();
    w.copy_value("tokenizer.ggml.scores", v);
    save("scores_u8", w.to_bytes());
  }
  {
    GgufWriter w = llama_spm(spm_tokens());
    w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1});
    save("token_type_short", w.to_bytes());
  }
  {
    GgufWriter w = llama_spm(spm_tokens());
    w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(40, 0.5f));
    save("scores_long", w.to_bytes());
  }
  // Byte tokens malformed (PR #25969).
  for (const char* bad : {"<0x-1>", "<0xZZ>", "<0x0a>", "<0x100>"}) {
    auto tokens = spm_tokens();
    tokens[3] = bad;
    std::string name = bad;
    for (char& ch : name) {
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    }
    save("byte_token_" + name, llama_spm(tokens).to_bytes());
  }
  // Special token ids out of range; vocab size disagreeing with the tokens.
  {
    GgufWriter w = llama_spm(spm_tokens());
    w.set_u32("tokenizer.ggml.bos_token_id", 1000);
    save("bos_out_of_range", w.to_bytes());
  }
  {
    GgufWriter w = llama_spm(spm_tokens());
    w.set_u32("llama.vocab_size", 17);
    save("vocab_size_mismatch", w.to_bytes());
  }
  // Token strings shorter than their arrays claim (CVE-2025-49847): cut inside the tokens array.
  {
    auto b = llama_spm(spm_tokens()).to_bytes();
    const std::string needle = "tokenizer.ggml.tokens";
    auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
    b.resize(static_cast<size_t>(it - b.begin()) + needle.size() + 40);
    save("tokens_truncated", b);
  }
}

// The valid models (names start with "valid_"), then every bad case, in the order written.
inline void all(const Save& save) {
  save("valid_llama_spm", llama_spm(spm_tokens()).to_bytes());
  save("valid_qwen2_bpe", qwen2_bpe().to_bytes());
  save("valid_llama_no_vocab", tiny_model_writer(tiny("llama", 16, true)).to_bytes());
  {
    GgufWriter w = llama_spm(spm_tokens());
    w.set_alignment(64);
    save("valid_llama_align64", w.to_bytes());
  }
  bad_header_and_lengths(save);
  bad_models(save);
}

}  // namespace momentkv::test::gguf_corpus
