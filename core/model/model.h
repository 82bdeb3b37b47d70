// A loaded llama/qwen2 model: its configuration, its weights bound by name with shape and type
// checks, and the mapped GGUF file that owns the bytes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "core/model/model_config.h"
#include "core/model/weight.h"

namespace momentkv {

struct LayerWeights {
  std::vector<float> attn_norm;   // [n_embd]
  WeightView wq;                  // [n_embd_q rows][n_embd]
  WeightView wk;                  // [n_embd_kv rows][n_embd]
  WeightView wv;                  // [n_embd_kv rows][n_embd]
  WeightView wo;                  // [n_embd rows][n_embd_q]
  std::vector<float> bq, bk, bv;  // qwen2 only: [n_embd_q], [n_embd_kv], [n_embd_kv]
  std::vector<float> ffn_norm;    // [n_embd]
  WeightView w_gate;              // [n_ff rows][n_embd]
  WeightView w_up;                // [n_ff rows][n_embd]
  WeightView w_down;              // [n_embd rows][n_ff]
};

class Model {
 public:
  // Maps, validates and binds `path`. Throws GgufError / Error naming the tensor or key.
  static std::unique_ptr<Model> load(const std::string& path);
  // Binds an already-open file (tests, converters).
  static std::unique_ptr<Model> from_file(GgufFile file);

  const ModelConfig& config() const { return config_; }
  const GgufFile& file() const { return file_; }
  const WeightView& token_embd() const { return token_embd_; }  // [n_vocab rows][n_embd]
  const std::vector<float>& output_norm() const { return output_norm_; }
  const WeightView& output() const {
    return output_;
  }  // [n_vocab rows][n_embd]; may alias token_embd
  const LayerWeights& layer(int32_t i) const { return layers_[static_cast<size_t>(i)]; }
  // Per-frequency divisors from `rope_freqs.weight` ([n_rot/2]), or empty.
  const std::vector<float>& rope_freq_factors() const { return rope_freqs_; }
  // Bytes of weight data mapped from the file.
  uint64_t weight_bytes() const;

 private:
  explicit Model(GgufFile file);
  void bind();

  GgufFile file_;
  ModelConfig config_;
  WeightView token_embd_;
  std::vector<float> output_norm_;
  WeightView output_;
  std::vector<LayerWeights> layers_;
  std::vector<float> rope_freqs_;
};

}  // namespace momentkv
