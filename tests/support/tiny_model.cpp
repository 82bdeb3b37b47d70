#include "tests/support/tiny_model.h"

#include <random>

namespace momentkv::test {

namespace {
void add_matrix(GgufWriter& w, std::mt19937& rng, const std::string& name, int64_t n_in,
                int64_t n_out, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n_in * n_out));
  for (auto& x : v) x = dist(rng);
  w.add_tensor(name, {n_in, n_out}, GgmlType::F32, v.data(), v.size() * sizeof(float));
}
void add_vector(GgufWriter& w, const std::string& name, int64_t n, float value) {
  std::vector<float> v(static_cast<size_t>(n), value);
  w.add_tensor(name, {n}, GgmlType::F32, v.data(), v.size() * sizeof(float));
}
}  // namespace

GgufWriter tiny_model_writer(const TinyModelSpec& s) {
  GgufWriter w;
  std::mt19937 rng(s.seed);
  const std::string p = s.arch + ".";
  const int32_t hd = s.n_embd / s.n_head;
  w.set_string("general.architecture", s.arch);
  w.set_u32(p + "context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(p + "embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(p + "block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(p + "feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(p + "attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_f32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  add_matrix(w, rng, "token_embd.weight", s.n_embd, s.n_vocab, 1.0f);
  add_vector(w, "output_norm.weight", s.n_embd, 1.0f);
  if (!s.tied_output) add_matrix(w, rng, "output.weight", s.n_embd, s.n_vocab, 0.2f);
  for (int32_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add_vector(w, b + "attn_norm.weight", s.n_embd, 1.0f);
    add_matrix(w, rng, b + "attn_q.weight", s.n_embd, s.n_head * hd, 0.2f);
    add_matrix(w, rng, b + "attn_k.weight", s.n_embd, s.n_head_kv * hd, 0.2f);
    add_matrix(w, rng, b + "attn_v.weight", s.n_embd, s.n_head_kv * hd, 0.2f);
    add_matrix(w, rng, b + "attn_output.weight", s.n_head * hd, s.n_embd, 0.2f);
    if (s.arch == "qwen2") {
      add_vector(w, b + "attn_q.bias", s.n_head * hd, 0.01f);
      add_vector(w, b + "attn_k.bias", s.n_head_kv * hd, 0.01f);
      add_vector(w, b + "attn_v.bias", s.n_head_kv * hd, 0.01f);
    }
    add_vector(w, b + "ffn_norm.weight", s.n_embd, 1.0f);
    add_matrix(w, rng, b + "ffn_gate.weight", s.n_embd, s.n_ff, 0.2f);
    add_matrix(w, rng, b + "ffn_up.weight", s.n_embd, s.n_ff, 0.2f);
    add_matrix(w, rng, b + "ffn_down.weight", s.n_ff, s.n_embd, 0.2f);
  }
  return w;
}

}  // namespace momentkv::test
