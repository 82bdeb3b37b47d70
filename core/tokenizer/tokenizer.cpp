#include "core/tokenizer/tokenizer.h"

#include <algorithm>

#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/spm_tokenizer.h"

namespace momentkv {

std::unique_ptr<Tokenizer> Tokenizer::create(const GgufFile& f) {
  return create(Vocab::from_gguf(f));
}

std::unique_ptr<Tokenizer> Tokenizer::create(Vocab vocab) {
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(vocab)));
}

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  if (vocab_.kind() == VocabKind::kSpm) {
    spm_ = std::make_unique<SpmTokenizer>(vocab_);
  } else {
    bpe_ = std::make_unique<BpeTokenizer>(vocab_);
  }
  for (int32_t id = 0; id < vocab_.n_vocab(); ++id) {
    TokenType t = vocab_.type(id);
    bool special =
        t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
    if (special && !vocab_.token(id).empty()) special_ids_.push_back(id);
  }
  // Longest text first, so that a special token is never split by a shorter one inside it.
  std::stable_sort(special_ids_.begin(), special_ids_.end(), [&](int32_t a, int32_t b) {
    return vocab_.token(a).size() > vocab_.token(b).size();
  });
}

Tokenizer::~Tokenizer() = default;

namespace {

// A run of the input: either raw text [offset, offset + length) or a special token.
struct Fragment {
  int32_t token;  // Vocab::kNoToken for raw text
  size_t offset;
  size_t length;
};

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  const bool add_bos = add_special && vocab_.add_bos();
  const bool add_eos = add_special && vocab_.add_eos();
  if (add_bos) out.push_back(vocab_.bos_id());

  if (!text.empty()) {
    // Split special tokens out of the text, longest first (as llama.cpp does).
    std::vector<Fragment> fragments{{Vocab::kNoToken, 0, text.size()}};
    std::vector<Fragment> next;
    for (int32_t id : special_ids_) {
      if (!parse_special && vocab_.type(id) != TokenType::kUserDefined) continue;
      const std::string& s = vocab_.token(id);
      if (text.find(s) == std::string_view::npos) continue;
      next.clear();
      for (const Fragment& fr : fragments) {
        if (fr.token != Vocab::kNoToken) {
          next.push_back(fr);
          continue;
        }
        std::string_view raw = text.substr(fr.offset, fr.length);
        size_t pos = 0;
        for (size_t hit = raw.find(s); hit != std::string_view::npos; hit = raw.find(s, pos)) {
          if (hit > pos) next.push_back({Vocab::kNoToken, fr.offset + pos, hit - pos});
          next.push_back({id, fr.offset + hit, s.size()});
          pos = hit + s.size();
        }
        if (pos < raw.size()) next.push_back({Vocab::kNoToken, fr.offset + pos, raw.size() - pos});
      }
      fragments.swap(next);
    }

    bool after_special = true;  // the start of the text counts as following a special token
    for (const Fragment& fr : fragments) {
      if (fr.token != Vocab::kNoToken) {
        out.push_back(fr.token);
        after_special = true;
      } else {
        encode_text(text.substr(fr.offset, fr.length), after_special, out);
        after_special = false;
      }
    }
  }

  if (add_eos) out.push_back(vocab_.eos_id());
  return out;
}

void Tokenizer::encode_text(std::string_view text, bool after_special,
                            std::vector<int32_t>& out) const {
  if (spm_) {
    spm_->encode(text, after_special && vocab_.add_space_prefix(), out);
  } else {
    bpe_->encode(text, out);
  }
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  if (!vocab_.valid(id)) return {};
  return spm_ ? spm_->token_to_piece(id) : bpe_->token_to_piece(id);
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  bool strip = spm_ != nullptr && vocab_.add_space_prefix();
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id);
    if (piece.empty()) continue;
    if (strip && piece.front() == ' ') {
      out.append(piece, 1);
    } else {
      out += piece;
    }
    strip = false;
  }
  return out;
}

}  // namespace momentkv
