#include "core/model/model_config.h"

#include "core/gguf/gguf_file.h"

namespace momentkv {

namespace {
int32_t required_int(const GgufFile& f, const std::string& key, int64_t lo, int64_t hi) {
  const auto v = f.get_i64(key);
  if (!v) throw GgufError(GgufErrc::kMissing, "required key '" + key + "' is missing");
  if (*v < lo || *v > hi) {
    throw GgufError(GgufErrc::kWrongType, "key '" + key + "' = " + std::to_string(*v) +
                                              " is out of range [" + std::to_string(lo) + ", " +
                                              std::to_string(hi) + "]");
  }
  return static_cast<int32_t>(*v);
}
int32_t optional_int(const GgufFile& f, const std::string& key, int32_t def, int64_t lo,
                     int64_t hi) {
  if (!f.find(key)) return def;
  return required_int(f, key, lo, hi);
}
}  // namespace

ModelConfig ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  const auto arch = f.get_string("general.architecture");
  if (!arch) throw GgufError(GgufErrc::kMissing, "required key 'general.architecture' is missing");
  c.arch = *arch;
  if (c.arch != "llama" && c.arch != "qwen2") {
    throw Error("unsupported architecture '" + c.arch + "' (supported: llama, qwen2)");
  }
  c.name = f.get_string("general.name").value_or("");
  const std::string p = c.arch + ".";
  constexpr int64_t kBig = 1 << 20;
  c.n_embd = required_int(f, p + "embedding_length", 1, kBig);
  c.n_layer = required_int(f, p + "block_count", 1, kMaxLayers);
  c.n_head = required_int(f, p + "attention.head_count", 1, 4096);
  c.n_head_kv = optional_int(f, p + "attention.head_count_kv", c.n_head, 1, c.n_head);
  if (c.n_head % c.n_head_kv != 0) {
    throw Error("attention.head_count " + std::to_string(c.n_head) +
                " is not a multiple of head_count_kv " + std::to_string(c.n_head_kv));
  }
  c.n_ff = required_int(f, p + "feed_forward_length", 1, kBig);
  c.n_ctx_train = optional_int(f, p + "context_length", 2048, 1, 1 << 24);
  if (c.n_embd % c.n_head != 0 && !f.find(p + "attention.key_length")) {
    throw Error("embedding_length " + std::to_string(c.n_embd) +
                " is not a multiple of head_count " + std::to_string(c.n_head));
  }
  c.head_dim = optional_int(f, p + "attention.key_length", c.n_embd / c.n_head, 1, 4096);
  const int32_t v_len = optional_int(f, p + "attention.value_length", c.head_dim, 1, 4096);
  if (v_len != c.head_dim) throw Error("attention.value_length != key_length is not supported");
  if (c.head_dim % 2 != 0) throw Error("head_dim " + std::to_string(c.head_dim) + " is odd");
  c.rms_eps = f.get_f32(p + "attention.layer_norm_rms_epsilon").value_or(1e-5f);
  if (!(c.rms_eps > 0.0f) || c.rms_eps > 1.0f) {
    throw Error("attention.layer_norm_rms_epsilon " + std::to_string(c.rms_eps) + " is invalid");
  }
  c.rope_freq_base = f.get_f32(p + "rope.freq_base").value_or(10000.0f);
  if (!(c.rope_freq_base > 1.0f)) {
    throw Error("rope.freq_base " + std::to_string(c.rope_freq_base) + " is invalid");
  }
  c.n_rot = optional_int(f, p + "rope.dimension_count", c.head_dim, 2, c.head_dim);
  if (c.n_rot % 2 != 0) throw Error("rope.dimension_count " + std::to_string(c.n_rot) + " is odd");
  c.rope_mode = c.arch == "qwen2" ? RopeMode::kNeox : RopeMode::kNormal;
  c.qkv_bias = c.arch == "qwen2";
  if (const auto type = f.get_string(p + "rope.scaling.type")) {
    const float factor = f.get_f32(p + "rope.scaling.factor").value_or(1.0f);
    if (*type == "linear") {
      if (!(factor >= 1.0f)) throw Error("rope.scaling.factor " + std::to_string(factor));
      c.rope_linear_scale = factor;
    } else if (*type == "llama3") {
      c.rope_l3_factor = factor;
      c.rope_l3_low_freq_factor = f.get_f32(p + "rope.scaling.low_freq_factor").value_or(1.0f);
      c.rope_l3_high_freq_factor = f.get_f32(p + "rope.scaling.high_freq_factor").value_or(4.0f);
      c.rope_l3_original_ctx =
          optional_int(f, p + "rope.scaling.original_context_length", 8192, 1, 1 << 24);
    } else if (*type != "none") {
      throw Error("unsupported rope.scaling.type '" + *type + "'");
    }
  }
  return c;
}

}  // namespace momentkv
