#include "core/model/model.h"

#include <cstring>

#include "core/tensor/fp16.h"

namespace momentkv {

namespace {

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t d = 0; d < ne.size(); ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
  return s + "]";
}

const GgufTensorInfo& require_tensor(const GgufFile& f, const std::string& name) {
  const auto* t = f.find_tensor(name);
  if (!t) throw GgufError(GgufErrc::kMissing, "required tensor '" + name + "' is missing");
  return *t;
}

void require_supported(const GgufTensorInfo& t) {
  if (!type_info(t.type).supported) {
    throw Error("tensor '" + t.name + "' has type " + type_name(t.type) +
                ", which momentkv does not support (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
                "Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)");
  }
}

WeightView bind_matrix(const GgufFile& f, const std::string& name, int64_t n_in, int64_t n_out) {
  const auto& t = require_tensor(f, name);
  if (t.ne.size() != 2 || t.ne[0] != n_in || t.ne[1] != n_out) {
    throw Error("tensor '" + name + "' has shape " + shape_str(t.ne) + ", expected [" +
                std::to_string(n_in) + ", " + std::to_string(n_out) + "]");
  }
  require_supported(t);
  WeightView w;
  w.name = name;
  w.type = t.type;
  w.n_in = n_in;
  w.n_out = n_out;
  w.row_bytes = *row_bytes(t.type, static_cast<uint64_t>(n_in));
  w.data = f.tensor_data(t);
  return w;
}

// 1-D tensors (norms, biases) are small: convert them to owned f32.
std::vector<float> bind_vector(const GgufFile& f, const std::string& name, int64_t n) {
  const auto& t = require_tensor(f, name);
  if (t.ne.size() != 1 || t.ne[0] != n) {
    throw Error("tensor '" + name + "' has shape " + shape_str(t.ne) + ", expected [" +
                std::to_string(n) + "]");
  }
  std::vector<float> out(static_cast<size_t>(n));
  const uint8_t* p = f.tensor_data(t);
  switch (t.type) {
    case GgmlType::F32:
      std::memcpy(out.data(), p, out.size() * 4);
      break;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = t.type == GgmlType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
      break;
    default:
      throw Error("tensor '" + name + "' has type " + type_name(t.type) +
                  ", expected F32/F16/BF16 for a vector");
  }
  return out;
}

}  // namespace

Model::Model(GgufFile file) : file_(std::move(file)) {}

std::unique_ptr<Model> Model::load(const std::string& path) {
  return from_file(GgufFile::open(path));
}

std::unique_ptr<Model> Model::from_file(GgufFile file) {
  std::unique_ptr<Model> m(new Model(std::move(file)));
  m->bind();
  return m;
}

void Model::bind() {
  config_ = ModelConfig::from_gguf(file_);
  ModelConfig& c = config_;
  const auto& emb = require_tensor(file_, "token_embd.weight");
  if (emb.ne.size() != 2 || emb.ne[0] != c.n_embd) {
    throw Error("tensor 'token_embd.weight' has shape " + shape_str(emb.ne) + ", expected [" +
                std::to_string(c.n_embd) + ", n_vocab]");
  }
  c.n_vocab = static_cast<int32_t>(emb.ne[1]);
  if (const auto* tokens = file_.find("tokenizer.ggml.tokens")) {
    if (tokens->type == GgufType::Array && tokens->count != static_cast<uint64_t>(c.n_vocab)) {
      throw Error("tokenizer.ggml.tokens has " + std::to_string(tokens->count) +
                  " entries but token_embd.weight has " + std::to_string(c.n_vocab) + " rows");
    }
  }
  token_embd_ = bind_matrix(file_, "token_embd.weight", c.n_embd, c.n_vocab);
  output_norm_ = bind_vector(file_, "output_norm.weight", c.n_embd);
  output_ = file_.find_tensor("output.weight")
                ? bind_matrix(file_, "output.weight", c.n_embd, c.n_vocab)
                : token_embd_;
  if (file_.find_tensor("rope_freqs.weight")) {
    rope_freqs_ = bind_vector(file_, "rope_freqs.weight", c.n_rot / 2);
  }
  layers_.resize(static_cast<size_t>(c.n_layer));
  for (int32_t i = 0; i < c.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    LayerWeights& l = layers_[static_cast<size_t>(i)];
    l.attn_norm = bind_vector(file_, b + "attn_norm.weight", c.n_embd);
    l.wq = bind_matrix(file_, b + "attn_q.weight", c.n_embd, c.n_embd_q());
    l.wk = bind_matrix(file_, b + "attn_k.weight", c.n_embd, c.n_embd_kv());
    l.wv = bind_matrix(file_, b + "attn_v.weight", c.n_embd, c.n_embd_kv());
    l.wo = bind_matrix(file_, b + "attn_output.weight", c.n_embd_q(), c.n_embd);
    if (c.qkv_bias) {
      l.bq = bind_vector(file_, b + "attn_q.bias", c.n_embd_q());
      l.bk = bind_vector(file_, b + "attn_k.bias", c.n_embd_kv());
      l.bv = bind_vector(file_, b + "attn_v.bias", c.n_embd_kv());
    }
    l.ffn_norm = bind_vector(file_, b + "ffn_norm.weight", c.n_embd);
    l.w_gate = bind_matrix(file_, b + "ffn_gate.weight", c.n_embd, c.n_ff);
    l.w_up = bind_matrix(file_, b + "ffn_up.weight", c.n_embd, c.n_ff);
    l.w_down = bind_matrix(file_, b + "ffn_down.weight", c.n_ff, c.n_embd);
  }
}

uint64_t Model::weight_bytes() const {
  uint64_t total = 0;
  for (const auto& t : file_.tensors()) total += t.n_bytes;
  return total;
}

}  // namespace momentkv
