// Text <-> token ids for a vocabulary stored in GGUF metadata: SentencePiece-style (`llama`) or
// byte-level BPE (`gpt2`, with the gpt-2 / llama-bpe / qwen2 pre-tokenizers). Special-token
// handling follows llama.cpp: special tokens are split out of the text first (longest text first),
// then each remaining piece of text is tokenized on its own.
//
// A Tokenizer is immutable after create() and safe to use from several threads at once. It is
// handed out as a unique_ptr because the algorithm objects keep a reference to its Vocab.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "core/tokenizer/vocab.h"

namespace momentkv {

class SpmTokenizer;
class BpeTokenizer;

class Tokenizer {
 public:
  // Builds the tokenizer described by `f`'s tokenizer.ggml.* keys (copied: `f` may be closed
  // afterwards). Throws as Vocab::from_gguf.
  static std::unique_ptr<Tokenizer> create(const GgufFile& f);
  // Builds a tokenizer for an already-read vocabulary.
  static std::unique_ptr<Tokenizer> create(Vocab vocab);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  // Token ids of `text`. add_special: prepend BOS when the vocabulary says add_bos (and append EOS
  // when add_eos). parse_special: text equal to a control or unknown token's text ("<s>",
  // "<|endoftext|>") becomes that id. As in llama.cpp, user-defined tokens are split out even when
  // parse_special is false. SPM: a space is prepended (add_space_prefix) to the start of the text
  // and after every special token. An empty text gives no ids (only BOS/EOS if add_special).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes token `id` contributes to the output: SPM "▁" -> ' ', byte tokens "<0xNN>" -> that
  // byte; BPE: the byte-to-unicode mapping reversed; user-defined tokens give their text; control,
  // unknown and unused tokens give "" (as llama.cpp without special). Out-of-range ids -> "".
  // A piece may be an incomplete UTF-8 sequence on its own (byte tokens, BPE byte pieces).
  std::string token_to_piece(int32_t id) const;

  // The concatenated pieces of `ids`. SPM with add_space_prefix: the single leading space of the
  // first non-empty piece is removed (leading control tokens such as BOS give no text and are
  // skipped over), so decode(encode(x, true, false)) == x. llama.cpp's detokenize differs only in
  // letting a leading BOS use up that strip when special tokens are kept.
  std::string decode(std::span<const int32_t> ids) const;

  // BOS / EOS ids, Vocab::kNoToken (-1) when the vocabulary has none.
  int32_t bos() const { return vocab_.bos_id(); }
  int32_t eos() const { return vocab_.eos_id(); }
  int32_t n_vocab() const { return vocab_.n_vocab(); }
  // True for end-of-generation tokens (EOS, EOT, EOM, <|im_end|>, <|eot_id|>, ...).
  bool is_eog(int32_t id) const { return vocab_.is_eog(id); }
  const Vocab& vocab() const { return vocab_; }

 private:
  explicit Tokenizer(Vocab vocab);
  // Tokenizes text that holds no special token; `after_special`: at the start or after one.
  void encode_text(std::string_view text, bool after_special, std::vector<int32_t>& out) const;

  Vocab vocab_;
  std::vector<int32_t> special_ids_;   // control, user-defined and unknown ids, longest text first
  std::unique_ptr<SpmTokenizer> spm_;  // exactly one of spm_ / bpe_ is set
  std::unique_ptr<BpeTokenizer> bpe_;
};

}  // namespace momentkv
