// Byte-level BPE (`tokenizer.ggml.model` = "gpt2"): the text is split by the vocabulary's
// pre-tokenizer regex (PCRE2, Unicode properties), each byte of a piece is mapped to a printable
// code point (the GPT-2 byte-to-unicode table), and within each piece the adjacent pair with the
// lowest merge rank is merged repeatedly (ties: leftmost). Llama 3 ("ignore_merges"): a piece that
// is itself a token is emitted directly.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/vocab.h"

namespace momentkv {

class BpeTokenizer {
 public:
  // Compiles the pre-tokenizer regex of `vocab` (kept by reference; it must outlive this object).
  // Throws Error when PCRE2 rejects the pattern. Precondition: vocab.kind() == VocabKind::kBpe.
  explicit BpeTokenizer(const Vocab& vocab);
  ~BpeTokenizer();
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  // Appends the ids of `text` (raw text, no special tokens) to `out`.
  void encode(std::string_view text, std::vector<int32_t>& out) const;
  // The pre-tokenizer's split of `text`: consecutive pieces that together cover it exactly.
  std::vector<std::string_view> pre_tokenize(std::string_view text) const;
  // The bytes of token `id` (see Tokenizer::token_to_piece). Precondition: valid id.
  std::string token_to_piece(int32_t id) const;

 private:
  struct Regex;  // the compiled PCRE2 pattern
  // Appends the ids of one pre-tokenized piece.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  const Vocab& vocab_;
  std::unique_ptr<Regex> regex_;
  std::array<std::string, 256> byte_to_unicode_;  // UTF-8 of the code point for each byte
  std::vector<int16_t> unicode_to_byte_;          // by code point; -1 = not a byte code point
};

}  // namespace momentkv
