// Hyper-parameters of a llama-family decoder, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

namespace momentkv {

class GgufFile;

enum class RopeMode { kNormal, kNeox };  // normal: pairs (x0,x1),(x2,x3)...; neox: (x_i, x_{i+d/2})

struct ModelConfig {
  std::string arch;  // "llama" or "qwen2"
  std::string name;  // general.name, if any
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;  // <arch>.context_length
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;  // n_embd / n_head unless attention.key_length says otherwise
  int32_t n_ff = 0;
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  int32_t n_rot = 0;  // rotated dims per head (rope.dimension_count, default head_dim)
  RopeMode rope_mode = RopeMode::kNormal;
  float rope_linear_scale = 1.0f;  // rope.scaling.type == linear: positions are divided by this
  // Llama-3 frequency scaling (rope.scaling.type == "llama3"); factor 0 = off. Files from the
  // usual converter carry the same information as a `rope_freqs.weight` tensor instead.
  float rope_l3_factor = 0.0f;
  float rope_l3_low_freq_factor = 1.0f;
  float rope_l3_high_freq_factor = 4.0f;
  int32_t rope_l3_original_ctx = 8192;
  bool qkv_bias = false;

  int32_t n_embd_kv() const { return n_head_kv * head_dim; }
  int32_t n_embd_q() const { return n_head * head_dim; }

  // Reads and validates the hyper-parameters; throws Error naming the key and the value.
  static ModelConfig from_gguf(const GgufFile& f);
};

// The maximum number of layers a file may declare (RELIABILITY.md §4.4).
inline constexpr int32_t kMaxLayers = 512;

}  // namespace momentkv
