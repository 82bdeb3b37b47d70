// Shared by the SentencePiece-style and BPE tokenizers: the text being merged as a doubly linked
// list of byte ranges, starting from one symbol per UTF-8 character.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace momentkv::tokenizer_detail {

// Length of the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte).
inline size_t utf8_len(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return lead < 0xF8 ? 4 : 1;
}

// One piece of the text being merged: a byte range, linked to its neighbours.
struct Symbol {
  int32_t prev;
  int32_t next;
  size_t start;
  size_t n;  // 0 once merged into its left neighbour
};

// out = one symbol per UTF-8 character of `s` (a truncated sequence at the end stays whole).
// An empty `s` gives no symbols.
inline void split_characters(std::string_view s, std::vector<Symbol>& out) {
  out.clear();
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = std::min(utf8_len(static_cast<unsigned char>(s[pos])), s.size() - pos);
    const auto idx = static_cast<int32_t>(out.size());
    out.push_back({idx - 1, idx + 1, pos, n});
    pos += n;
  }
  if (!out.empty()) out.back().next = -1;
}

}  // namespace momentkv::tokenizer_detail
