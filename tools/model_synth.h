// Writes a random-weight GGUF model of a known llama/qwen2 shape (`momentkv synth`), for speed
// benchmarks. Weights are deterministic for a seed: each row has its own random stream, so the
// file does not depend on the thread count. Matrices are approximately normal with std 0.02 (a
// sum of four uniforms, which is cheap and bounded), biases likewise, norm weights 1.0. Rows are
// generated and quantized a chunk at a time and streamed to the file, so memory stays bounded
// (about one chunk of f32 rows plus its encoded bytes) whatever the model size.
// Tensor types follow ModelQuantizer's rules (classifier Q6_K for sub-8-bit types, *_K_M mixes,
// fallbacks for rows that do not fit a block).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/model_quantizer.h"

namespace momentkv::tools {

// The hyper-parameters of a named model shape.
struct SynthShape {
  std::string name;
  std::string arch;  // "llama" or "qwen2"
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t n_ff = 0;
  int32_t n_vocab = 0;  // of the real model; the written file uses the vocabulary's token count
  int32_t n_ctx = 0;
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied = false;         // no output.weight: the classifier is token_embd
  bool qkv_bias = false;     // qwen2
  bool llama3_rope = false;  // rope.scaling llama3: factor 32, low 1, high 4, original 8192
  std::string vocab;         // default vocabulary, relative to the models directory
};

struct SynthOptions {
  SynthShape shape;
  QuantizeSpec spec;
  std::string vocab_path;  // empty: the shape's default under the models directory
  uint64_t seed = 1;
  int32_t n_layer = 0;  // 0: the shape's
  int n_threads = 1;
};

class ModelSynth {
 public:
  // The shape called `name`, or nullopt.
  static std::optional<SynthShape> find_shape(const std::string& name);
  // Comma-separated shape names, for help texts.
  static std::string shape_names();
  // Where the shared test models live: $MOMENTKV_MODELS_DIR, else the build-time default.
  static std::string models_dir();

  explicit ModelSynth(SynthOptions options);

  // Generates and writes the model to `path`; throws Error on I/O failure or a bad vocabulary.
  void write(const std::string& path);
  // Remarks from the last write: vocabulary size changes, fallbacks.
  const std::vector<std::string>& notes() const { return notes_; }
  // Per-tensor types and sizes of the last write.
  const std::vector<TensorChange>& tensors() const { return tensors_; }

 private:
  SynthOptions options_;
  std::vector<std::string> notes_;
  std::vector<TensorChange> tensors_;
};

}  // namespace momentkv::tools
