// Converts a llama2.c legacy checkpoint (`model.bin`) and its `tokenizer.bin` into a GGUF v3
// `llama` model that Model::load accepts (FORMATS.md, ../shared/models/README.md).
//
// Checkpoint: 7 x i32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means an unshared classifier follows the weights), then f32
// arrays: tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real,
// freq_cis_imag (skipped), [wcls]. wq/wk are copied as they are: llama2.c rotates adjacent pairs,
// which is GGUF "normal" RoPE mode.
// Tokenizer: i32 max_token_length, then vocab_size x {f32 score, i32 len, len bytes}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/gguf/gguf_writer.h"
#include "core/tensor/ggml_type.h"

namespace momentkv {

// The checkpoint header after validation.
struct Llama2cConfig {
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // absolute value
  int32_t seq_len = 0;
  bool shared_classifier = true;  // false: a separate wcls [vocab_size][dim] follows

  int32_t head_dim() const { return dim / n_heads; }
};

// Quantizes n f32 values (n a multiple of the type's block) into dst; core does not link the
// kernels, so the caller supplies this for block types.
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);

struct Llama2cConvertOptions {
  GgmlType type = GgmlType::F32;     // for 2-D weights; norms stay F32
  QuantizeRowFn quantize = nullptr;  // required unless type is F32 or F16
  std::string name = "llama2.c";     // general.name
};

// One converted token: text with U+2581 for spaces, score and GGUF token type.
struct Llama2cToken {
  std::string text;
  float score = 0.0f;
  int32_t type = 1;
};

class Llama2cConverter {
 public:
  // Reads and validates both files; throws Error naming the file, the field and the value
  // (negative dims, heads that do not divide dim, a file size that disagrees with the header).
  static Llama2cConverter open(const std::string& checkpoint_path,
                               const std::string& tokenizer_path);

  const Llama2cConfig& config() const { return config_; }
  const std::vector<Llama2cToken>& tokens() const { return tokens_; }

  // Builds the GGUF image. A matrix whose row length is not a multiple of the block of
  // `options.type` is written as F16 instead and listed in notes(). Throws Error on bad options.
  GgufWriter to_gguf(const Llama2cConvertOptions& options);
  // Human-readable remarks from the last to_gguf (fallbacks).
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  Llama2cConverter() = default;
  void add_matrix(GgufWriter& w, const std::string& name, const float* data, int64_t n_in,
                  int64_t n_out, const Llama2cConvertOptions& options);

  Llama2cConfig config_;
  std::vector<float> weights_;  // every f32 after the header, in file order
  std::vector<Llama2cToken> tokens_;
  std::vector<std::string> notes_;
};

}  // namespace momentkv
