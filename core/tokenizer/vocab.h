// A tokenizer vocabulary read from GGUF `tokenizer.ggml.*` metadata: token strings, scores and
// types, the text->id map, special ids and flags, and (for byte-level BPE) the merge ranks.
// from_gguf validates the metadata (RELIABILITY.md §4.4 "Model consistency") and throws naming the
// key and the offending value.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/gguf/gguf_file.h"

namespace momentkv {

// Values of `tokenizer.ggml.token_type` (0 = undefined is read as normal).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// `tokenizer.ggml.model`: "llama" = SentencePiece-style, "gpt2" = byte-level BPE.
enum class VocabKind { kSpm, kBpe };

// The pre-tokenizer split a BPE vocabulary uses (FORMATS.md); kNone for SPM.
enum class PreTokenizer { kNone, kGpt2, kLlama3, kQwen2 };

class Vocab {
 public:
  static constexpr int32_t kNoToken = -1;

  // Reads and validates the tokenizer metadata of `f`. Throws GgufError (kMissing / kWrongType)
  // or Error naming the key and value on an inconsistent or unsupported vocabulary.
  static Vocab from_gguf(const GgufFile& f);

  // Number of tokens (length of tokenizer.ggml.tokens).
  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  // The stored text of token `id` (SPM: with "▁" for spaces; BPE: byte-to-unicode encoded).
  // Precondition: 0 <= id < n_vocab().
  const std::string& token(int32_t id) const { return tokens_[id]; }
  // The score of `id` (0 when the file has no scores). Precondition: valid id.
  float score(int32_t id) const { return scores_.empty() ? 0.0f : scores_[id]; }
  // The type of `id` (kNormal when the file has no token types). Precondition: valid id.
  TokenType type(int32_t id) const { return types_.empty() ? TokenType::kNormal : types_[id]; }
  // True when 0 <= id < n_vocab().
  bool valid(int32_t id) const { return id >= 0 && id < n_vocab(); }
  // The id whose text is exactly `text`, or kNoToken.
  int32_t find(std::string_view text) const;

  // For a byte token "<0xNN>": the byte; -1 for any other token. Precondition: valid id.
  int32_t byte_value(int32_t id) const;
  // The id of the byte token for `b` ("<0xNN>"), or kNoToken when the vocabulary has none.
  int32_t byte_token(uint8_t b) const { return byte_tokens_[b]; }

  // BPE merge rank of the pair (left, right): 0 = first merge; -1 when the pair is no merge.
  int32_t merge_rank(std::string_view left, std::string_view right) const;
  // Number of BPE merges (0 for SPM).
  size_t n_merges() const { return n_merges_; }

  VocabKind kind() const { return kind_; }
  // The raw `tokenizer.ggml.pre` value ("" when absent).
  const std::string& pre_name() const { return pre_name_; }
  PreTokenizer pre_tokenizer() const { return pre_; }
  // Llama 3 BPE: a pre-tokenized piece that is itself a token is emitted without merging.
  bool ignore_merges() const { return pre_ == PreTokenizer::kLlama3; }

  // Special ids; kNoToken when the file has none (a stored 0xFFFFFFFF / -1 also means none).
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t unk_id() const { return unk_; }
  int32_t pad_id() const { return pad_; }
  int32_t eot_id() const { return eot_; }

  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }

  // True for end-of-generation tokens: EOS, EOT, EOM and control tokens such as <|im_end|>.
  bool is_eog(int32_t id) const;
  // All end-of-generation ids, ascending.
  const std::vector<int32_t>& eog_ids() const { return eog_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using TextMap = std::unordered_map<std::string, int32_t, Hash, std::equal_to<>>;

  Vocab() = default;

  std::vector<std::string> tokens_;
  std::vector<float> scores_;     // empty = all 0
  std::vector<TokenType> types_;  // empty = all normal
  TextMap text_to_id_;
  TextMap merge_ranks_;  // key: left + ' ' + right
  size_t n_merges_ = 0;
  std::array<int32_t, 256> byte_tokens_{};
  VocabKind kind_ = VocabKind::kSpm;
  std::string pre_name_;
  PreTokenizer pre_ = PreTokenizer::kNone;
  int32_t bos_ = kNoToken;
  int32_t eos_ = kNoToken;
  int32_t unk_ = kNoToken;
  int32_t pad_ = kNoToken;
  int32_t eot_ = kNoToken;
  int32_t eom_ = kNoToken;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = false;
  std::vector<int32_t> eog_;
};

}  // namespace momentkv
