#include "core/tokenizer/spm_tokenizer.h"
#include "core/tokenizer/merge_symbols.h"

#include <queue>

namespace momentkv {

namespace {

using tokenizer_detail::split_characters;
using tokenizer_detail::Symbol;
using tokenizer_detail::utf8_len;

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

// A candidate merge of symbols `left` and `left`'s next, `size` bytes long when it was queued.
struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  size_t size;
};

struct BigramOrder {
  // Highest score first; ties go to the leftmost pair.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void SpmTokenizer::encode(std::string_view text, bool space_prefix,
                          std::vector<int32_t>& out) const {
  std::string s;
  s.reserve((text.size() + 1) * 3);
  if (space_prefix) s += kSpace;
  for (char c : text) {
    if (c == ' ') {
      s += kSpace;
    } else {
      s += c;
    }
  }
  if (s.empty()) return;

  std::vector<Symbol> symbols;
  split_characters(s, symbols);

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    size_t size = symbols[left].n + symbols[right].n;
    int32_t id = vocab_.find(std::string_view(s).substr(symbols[left].start, size));
    if (id == Vocab::kNoToken) return;
    queue.push({vocab_.score(id), left, right, size});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Skip pairs made stale by an earlier merge of either side.
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    std::string_view piece = std::string_view(s).substr(symbols[i].start, symbols[i].n);
    int32_t id = vocab_.find(piece);
    if (id != Vocab::kNoToken) {
      out.push_back(id);
      continue;
    }
    // Byte fallback: one <0xNN> per byte; else a single-byte token; else <unk>.
    for (char c : piece) {
      int32_t bid = vocab_.byte_token(static_cast<uint8_t>(c));
      if (bid == Vocab::kNoToken) bid = vocab_.find(std::string_view(&c, 1));
      if (bid == Vocab::kNoToken) bid = vocab_.unk_id();
      if (bid != Vocab::kNoToken) out.push_back(bid);
    }
  }
}

std::string SpmTokenizer::token_to_piece(int32_t id) const {
  // Byte tokens (also untyped "<0xNN>" texts when the file has no token types).
  if (int32_t b = vocab_.byte_value(id); b >= 0) return std::string(1, static_cast<char>(b));
  switch (vocab_.type(id)) {
    case TokenType::kNormal: {
      const std::string& t = vocab_.token(id);
      std::string out;
      out.reserve(t.size());
      for (size_t pos = 0; pos < t.size();) {
        if (t.compare(pos, kSpace.size(), kSpace) == 0) {
          out += ' ';
          pos += kSpace.size();
        } else {
          out += t[pos++];
        }
      }
      return out;
    }
    case TokenType::kUserDefined:
      return vocab_.token(id);
    case TokenType::kUnknown:
    case TokenType::kControl:
    case TokenType::kUnused:
    case TokenType::kByte:
      return {};
  }
  return {};
}

}  // namespace momentkv
