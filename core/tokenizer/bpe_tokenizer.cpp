#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/merge_symbols.h"

#include <queue>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/util/error.h"

namespace momentkv {

namespace {

using tokenizer_detail::split_characters;
using tokenizer_detail::Symbol;
using tokenizer_detail::utf8_len;

// Pre-tokenizer patterns (FORMATS.md).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes the (well-formed) UTF-8 sequence of `n` bytes at `p`.
uint32_t decode_utf8(const char* p, size_t n) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  switch (n) {
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    case 4:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    default:
      return b(0);
  }
}

struct Bigram {
  int32_t rank;
  int32_t left;
  int32_t right;
  size_t size;
};

struct BigramOrder {
  // Lowest rank first; ties go to the leftmost pair.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf));
}

}  // namespace

struct BpeTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

BpeTokenizer::BpeTokenizer(const Vocab& vocab) : vocab_(vocab), regex_(std::make_unique<Regex>()) {
  const char* pattern = kGpt2Pattern;
  if (vocab.pre_tokenizer() == PreTokenizer::kLlama3) pattern = kLlama3Pattern;
  if (vocab.pre_tokenizer() == PreTokenizer::kQwen2) pattern = kQwen2Pattern;
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  regex_->code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_offset, nullptr);
  if (regex_->code == nullptr) {
    throw Error("cannot compile the '" + vocab.pre_name() + "' pre-tokenizer regex at offset " +
                std::to_string(err_offset) + ": " + pcre2_message(err));
  }
  // JIT is an optional speed-up: without it (unsupported platform) matching is interpreted.
  (void)pcre2_jit_compile(regex_->code, PCRE2_JIT_COMPLETE);

  // GPT-2 byte-to-unicode: printable Latin-1 bytes map to themselves, the other 68 to U+0100 on.
  unicode_to_byte_.assign(256 + 68, -1);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    uint32_t cp = printable ? b : next++;
    append_utf8(cp, byte_to_unicode_[b]);
    unicode_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

BpeTokenizer::~BpeTokenizer() = default;

std::vector<std::string_view> BpeTokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  auto cleanup = [&] {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    pcre2_jit_stack_free(jit_stack);
  };
  if (md == nullptr) throw Error("out of memory creating PCRE2 match data");

  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(regex_->code, subject, text.size(), pos, 0, md, mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && jit_stack == nullptr) {
      // Long runs can outgrow JIT's default 32 KiB stack; retry with a larger one.
      mctx = pcre2_match_context_create(nullptr);
      jit_stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
      if (mctx == nullptr || jit_stack == nullptr) {
        cleanup();
        throw Error("out of memory creating a PCRE2 JIT stack");
      }
      pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      cleanup();
      throw Error("pre-tokenizer regex failed at byte " + std::to_string(pos) + ": " +
                  pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t begin = ov[0];
    size_t end = ov[1];
    if (end <= begin) {  // no pattern alternative matches empty; guard against looping anyway
      end = std::min(text.size(), begin + 1);
    }
    // Bytes no alternative matches (only invalid UTF-8) form their own piece.
    if (begin > pos) pieces.push_back(text.substr(pos, begin - pos));
    pieces.push_back(text.substr(begin, end - begin));
    pos = end;
  }
  if (pos < text.size()) pieces.push_back(text.substr(pos));
  cleanup();
  return pieces;
}

void BpeTokenizer::encode(std::string_view text, std::vector<int32_t>& out) const {
  for (std::string_view piece : pre_tokenize(text)) encode_piece(piece, out);
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  std::string s;
  s.reserve(piece.size() * 2);
  for (char c : piece) s += byte_to_unicode_[static_cast<uint8_t>(c)];

  if (vocab_.ignore_merges()) {
    if (int32_t id = vocab_.find(s); id != Vocab::kNoToken) {
      out.push_back(id);
      return;
    }
  }

  std::vector<Symbol> symbols;
  split_characters(s, symbols);

  const std::string_view sv(s);
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    int32_t rank = vocab_.merge_rank(sv.substr(symbols[left].start, symbols[left].n),
                                     sv.substr(symbols[right].start, symbols[right].n));
    if (rank < 0) return;
    queue.push({rank, left, right, symbols[left].n + symbols[right].n});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;  // stale
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    std::string_view sym = sv.substr(symbols[i].start, symbols[i].n);
    if (int32_t id = vocab_.find(sym); id != Vocab::kNoToken) {
      out.push_back(id);
      continue;
    }
    // A symbol that is no token (a vocabulary without all 256 byte pieces): emit its characters
    // one by one, <unk> for any that is missing.
    for (size_t pos = 0; pos < sym.size();) {
      size_t n = std::min(utf8_len(static_cast<unsigned char>(sym[pos])), sym.size() - pos);
      int32_t id = vocab_.find(sym.substr(pos, n));
      if (id == Vocab::kNoToken) id = vocab_.unk_id();
      if (id != Vocab::kNoToken) out.push_back(id);
      pos += n;
    }
  }
}

std::string BpeTokenizer::token_to_piece(int32_t id) const {
  switch (vocab_.type(id)) {
    case TokenType::kNormal: {
      const std::string& t = vocab_.token(id);
      std::string out;
      out.reserve(t.size());
      for (size_t pos = 0; pos < t.size();) {
        size_t n = std::min(utf8_len(static_cast<unsigned char>(t[pos])), t.size() - pos);
        uint32_t cp = decode_utf8(t.data() + pos, n);
        if (cp < unicode_to_byte_.size() && unicode_to_byte_[cp] >= 0) {
          out += static_cast<char>(unicode_to_byte_[cp]);
        } else {
          out.append(t, pos, n);  // not a byte code point: keep the character as it is
        }
        pos += n;
      }
      return out;
    }
    case TokenType::kByte: {
      int32_t b = vocab_.byte_value(id);
      return b < 0 ? std::string() : std::string(1, static_cast<char>(b));
    }
    case TokenType::kUserDefined:
      return vocab_.token(id);
    case TokenType::kUnknown:
    case TokenType::kControl:
    case TokenType::kUnused:
      return {};
  }
  return {};
}

}  // namespace momentkv
