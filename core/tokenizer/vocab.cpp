#include "core/tokenizer/vocab.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/util/error.h"

namespace momentkv {

namespace {

constexpr std::string_view kModelKey = "tokenizer.ggml.model";
constexpr std::string_view kPreKey = "tokenizer.ggml.pre";
constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";
constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";

// Control-token texts that end a generation in the model families we know, besides the ids the
// file names explicitly (EOS, EOT, EOM).
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>",    "<|end|>", "<end_of_turn>",
    "<|eom_id|>", "<|endoftext|>", "<EOT>",   "<|end_of_text|>",
};

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "'";
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte of a "<0xNN>" token (upper-case hex, exactly two digits), or -1.
int parse_byte_token(std::string_view s) {
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return -1;
  int hi = hex_digit(s[3]);
  int lo = hex_digit(s[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

// Reads an optional special-token id. Absent, 0xFFFFFFFF and -1 mean "none"; anything else must
// be a valid id.
int32_t read_special_id(const GgufFile& f, std::string_view key, int32_t n_vocab) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) return Vocab::kNoToken;
  std::optional<int64_t> id = v->as_int();
  if (v->type == GgufType::U64 && !id) id = INT64_MAX;  // too large: reported as out of range
  if (!id || v->type == GgufType::Bool) {
    throw GgufError(GgufErrc::kWrongType, std::string(key) + " must be an integer, got " +
                                              gguf_type_name(static_cast<uint32_t>(v->type)));
  }
  if (*id == -1 || *id == 0xFFFFFFFFll) return Vocab::kNoToken;
  if (*id < 0 || *id >= n_vocab) {
    std::string shown = v->type == GgufType::U64 ? std::to_string(v->u) : std::to_string(*id);
    throw Error(std::string(key) + " = " + shown + " is not a token id (n_vocab " +
                std::to_string(n_vocab) + ")");
  }
  return static_cast<int32_t>(*id);
}

std::string read_required_string(const GgufFile& f, std::string_view key) {
  std::optional<std::string> s = f.get_string(key);
  if (!s) throw GgufError(GgufErrc::kMissing, std::string(key) + " is missing");
  return *s;
}

}  // namespace

Vocab Vocab::from_gguf(const GgufFile& f) {
  Vocab v;

  const std::string model = read_required_string(f, kModelKey);
  if (model == "llama") {
    v.kind_ = VocabKind::kSpm;
  } else if (model == "gpt2") {
    v.kind_ = VocabKind::kBpe;
  } else {
    throw Error(std::string(kModelKey) + " = " + quoted(model) +
                " is not supported (supported: 'llama' (SentencePiece), 'gpt2' (byte-level BPE))");
  }

  // Pre-tokenizer. SPM ignores it (llama.cpp does too); BPE needs one whose split we implement.
  v.pre_name_ = f.get_string(kPreKey).value_or("");
  bool default_add_bos = v.kind_ == VocabKind::kSpm;
  if (v.kind_ == VocabKind::kBpe) {
    const std::string& p = v.pre_name_;
    if (p.empty() || p == "default" || p == "gpt-2") {
      v.pre_ = PreTokenizer::kGpt2;
    } else if (p == "llama-bpe" || p == "llama3" || p == "llama-v3") {
      v.pre_ = PreTokenizer::kLlama3;
      default_add_bos = true;
    } else if (p == "qwen2") {
      v.pre_ = PreTokenizer::kQwen2;
    } else {
      throw Error(std::string(kPreKey) + " = " + quoted(p) +
                  " is not supported (supported: 'gpt-2', 'default', 'llama-bpe', 'llama3', "
                  "'llama-v3', 'qwen2')");
    }
  }

  // Tokens.
  const std::vector<std::string_view>* tokens = f.get_string_array(kTokensKey);
  if (tokens == nullptr) {
    if (f.find(kTokensKey) != nullptr) {
      throw GgufError(GgufErrc::kWrongType, std::string(kTokensKey) + " must be a string array");
    }
    throw GgufError(GgufErrc::kMissing, std::string(kTokensKey) + " is missing");
  }
  if (tokens->empty() || tokens->size() > static_cast<size_t>(INT32_MAX)) {
    throw Error(std::string(kTokensKey) + " has " + std::to_string(tokens->size()) +
                " tokens (need 1 .. 2^31-1)");
  }
  const auto n_vocab = static_cast<int32_t>(tokens->size());
  const auto n = static_cast<size_t>(n_vocab);
  if (const std::optional<std::string> arch = f.get_string("general.architecture")) {
    const std::string key = *arch + ".vocab_size";
    if (std::optional<uint64_t> vs = f.get_u64(key); vs && *vs != n) {
      throw Error(key + " = " + std::to_string(*vs) + " but " + std::string(kTokensKey) + " has " +
                  std::to_string(n) + " tokens");
    }
  }
  v.tokens_.reserve(n);
  v.text_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    v.tokens_.emplace_back((*tokens)[i]);
    // The first id wins when a text repeats.
    v.text_to_id_.emplace(v.tokens_.back(), static_cast<int32_t>(i));
  }

  // Scores (optional; f32 array of length n_vocab).
  if (std::optional<std::vector<float>> scores = f.get_f32_array(kScoresKey)) {
    if (scores->size() != n) {
      throw Error(std::string(kScoresKey) + " has " + std::to_string(scores->size()) +
                  " elements but n_vocab is " + std::to_string(n));
    }
    for (size_t i = 0; i < n; ++i) {
      if (std::isnan((*scores)[i])) {
        throw Error(std::string(kScoresKey) + "[" + std::to_string(i) + "] is NaN");
      }
    }
    v.scores_ = std::move(*scores);
  }

  // Token types (optional; i32 array of length n_vocab, values 0..6).
  if (std::optional<std::vector<int32_t>> types = f.get_i32_array(kTypesKey)) {
    if (types->size() != n) {
      throw Error(std::string(kTypesKey) + " has " + std::to_string(types->size()) +
                  " elements but n_vocab is " + std::to_string(n));
    }
    v.types_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      int32_t t = (*types)[i];
      if (t < 0 || t > 6) {
        throw Error(std::string(kTypesKey) + "[" + std::to_string(i) + "] = " + std::to_string(t) +
                    " is not a token type (0..6)");
      }
      v.types_[i] = t == 0 ? TokenType::kNormal : static_cast<TokenType>(t);
    }
  }

  // Byte tokens: typed ones must be well formed; without types, texts of the form <0xNN> count.
  v.byte_tokens_.fill(kNoToken);
  for (int32_t id = 0; id < n_vocab; ++id) {
    const std::string& text = v.tokens_[id];
    int b = parse_byte_token(text);
    if (v.type(id) == TokenType::kByte && b < 0) {
      throw Error("byte token " + std::to_string(id) + " in " + std::string(kTokensKey) + " is " +
                  quoted(text) + ", not <0xNN> with upper-case hex");
    }
    bool is_byte = v.types_.empty() ? b >= 0 : v.type(id) == TokenType::kByte;
    if (is_byte && v.byte_tokens_[b] == kNoToken) v.byte_tokens_[b] = id;
  }

  // Merges (BPE only; "left right" in rank order).
  if (v.kind_ == VocabKind::kBpe) {
    const std::vector<std::string_view>* merges = f.get_string_array(kMergesKey);
    if (merges == nullptr) {
      if (f.find(kMergesKey) != nullptr) {
        throw GgufError(GgufErrc::kWrongType, std::string(kMergesKey) + " must be a string array");
      }
      throw GgufError(GgufErrc::kMissing, std::string(kMergesKey) + " is missing (needed by gpt2)");
    }
    if (merges->size() > static_cast<size_t>(INT32_MAX)) {
      throw Error(std::string(kMergesKey) + " has too many elements");
    }
    v.merge_ranks_.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      std::string_view m = (*merges)[i];
      size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      if (sp == std::string_view::npos || sp + 1 >= m.size()) {
        throw Error(std::string(kMergesKey) + "[" + std::to_string(i) + "] = " + quoted(m) +
                    " is not 'left right'");
      }
      v.merge_ranks_.emplace(std::string(m), static_cast<int32_t>(i));
    }
    v.n_merges_ = merges->size();
  }

  // Special ids.
  v.bos_ = read_special_id(f, "tokenizer.ggml.bos_token_id", n_vocab);
  v.eos_ = read_special_id(f, "tokenizer.ggml.eos_token_id", n_vocab);
  v.unk_ = read_special_id(f, "tokenizer.ggml.unknown_token_id", n_vocab);
  v.pad_ = read_special_id(f, "tokenizer.ggml.padding_token_id", n_vocab);
  v.eot_ = read_special_id(f, "tokenizer.ggml.eot_token_id", n_vocab);
  v.eom_ = read_special_id(f, "tokenizer.ggml.eom_token_id", n_vocab);
  read_special_id(f, "tokenizer.ggml.seperator_token_id", n_vocab);  // validated, unused
  read_special_id(f, "tokenizer.ggml.separator_token_id", n_vocab);  // validated, unused

  // Flags. An explicit add_bos/add_eos needs the id; a default add_bos without one is dropped.
  if (std::optional<bool> b = f.get_bool("tokenizer.ggml.add_bos_token")) {
    if (*b && v.bos_ == kNoToken) {
      throw Error("tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is absent");
    }
    v.add_bos_ = *b;
  } else {
    v.add_bos_ = default_add_bos && v.bos_ != kNoToken;
  }
  v.add_eos_ = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (v.add_eos_ && v.eos_ == kNoToken) {
    throw Error("tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is absent");
  }
  v.add_space_prefix_ =
      f.get_bool("tokenizer.ggml.add_space_prefix").value_or(v.kind_ == VocabKind::kSpm);

  // End-of-generation set.
  for (int32_t id : {v.eos_, v.eot_, v.eom_}) {
    if (id != kNoToken) v.eog_.push_back(id);
  }
  for (int32_t id = 0; id < n_vocab; ++id) {
    TokenType t = v.type(id);
    if (t != TokenType::kControl && t != TokenType::kUserDefined) continue;
    if (std::find(std::begin(kEogTexts), std::end(kEogTexts), v.tokens_[id]) !=
        std::end(kEogTexts)) {
      v.eog_.push_back(id);
    }
  }
  std::sort(v.eog_.begin(), v.eog_.end());
  v.eog_.erase(std::unique(v.eog_.begin(), v.eog_.end()), v.eog_.end());
  return v;
}

int32_t Vocab::find(std::string_view text) const {
  auto it = text_to_id_.find(text);
  return it == text_to_id_.end() ? kNoToken : it->second;
}

int32_t Vocab::byte_value(int32_t id) const {
  if (!types_.empty() && types_[id] != TokenType::kByte) return -1;
  return parse_byte_token(tokens_[id]);
}

int32_t Vocab::merge_rank(std::string_view left, std::string_view right) const {
  thread_local std::string key;
  key.assign(left);
  key += ' ';
  key += right;
  auto it = merge_ranks_.find(std::string_view(key));
  return it == merge_ranks_.end() ? -1 : it->second;
}

bool Vocab::is_eog(int32_t id) const {
  return std::binary_search(eog_.begin(), eog_.end(), id);
}

}  // namespace momentkv
