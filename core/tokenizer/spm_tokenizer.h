// SentencePiece-style tokenization (`tokenizer.ggml.model` = "llama"): spaces become "▁", the text
// starts as single UTF-8 characters, and the adjacent pair whose concatenation is the
// highest-scoring token is merged repeatedly (ties: leftmost). Pieces that are not tokens fall back
// to byte tokens "<0xNN>". O(n log n) with a priority queue over a linked list of symbols.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/vocab.h"

namespace momentkv {

class SpmTokenizer {
 public:
  // Keeps a reference to `vocab`, which must outlive this object.
  explicit SpmTokenizer(const Vocab& vocab) : vocab_(vocab) {}

  // Appends the ids of `text` (raw text, no special tokens) to `out`; with `space_prefix` a space
  // is prepended first. An empty text (without prefix) appends nothing.
  void encode(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const;
  // The bytes of token `id` (see Tokenizer::token_to_piece). Precondition: valid id.
  std::string token_to_piece(int32_t id) const;

 private:
  const Vocab& vocab_;
};

}  // namespace momentkv
