#include "core/model/llama2c_converter.h"

#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/model/model_config.h"
#include "core/tensor/fp16.h"
#include "core/util/checked_math.h"
#include "core/util/error.h"

namespace momentkv {

namespace {

constexpr uint64_t kHeaderBytes = 7 * sizeof(int32_t);
constexpr int32_t kMaxTokenBytes = 1 << 20;

std::vector<uint8_t> read_all(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), std::string("cannot open ") + what + " '" + path + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  check(!in.bad(), std::string("cannot read ") + what + " '" + path + "'");
  return bytes;
}

int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Product of the factors in elements; throws when it overflows.
uint64_t elems(const std::string& what, std::initializer_list<int64_t> factors) {
  uint64_t n = 1;
  for (int64_t f : factors) {
    auto r = checked_mul(n, static_cast<uint64_t>(f));
    check(r.has_value(), "llama2.c checkpoint: size of " + what + " overflows");
    n = *r;
  }
  return n;
}

void check_positive(const std::string& path, const char* field, int32_t v) {
  check(v > 0, "llama2.c checkpoint '" + path + "': header field " + field + " = " +
                   std::to_string(v) + " must be positive");
}

// The llama.cpp ftype number for a uniform file of `t` (general.file_type).
int32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q4_0:
      return 2;
    case GgmlType::Q4_1:
      return 3;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::Q5_0:
      return 8;
    case GgmlType::Q5_1:
      return 9;
    default:
      return -1;
  }
}

}  // namespace

Llama2cConverter Llama2cConverter::open(const std::string& checkpoint_path,
                                        const std::string& tokenizer_path) {
  Llama2cConverter cv;
  const std::vector<uint8_t> ck = read_all(checkpoint_path, "llama2.c checkpoint");
  const std::string where = "llama2.c checkpoint '" + checkpoint_path + "'";
  check(ck.size() >= kHeaderBytes,
        where + ": " + std::to_string(ck.size()) + " bytes, shorter than the 28-byte header");
  Llama2cConfig& c = cv.config_;
  c.dim = load_i32(ck.data() + 0);
  c.hidden_dim = load_i32(ck.data() + 4);
  c.n_layers = load_i32(ck.data() + 8);
  c.n_heads = load_i32(ck.data() + 12);
  c.n_kv_heads = load_i32(ck.data() + 16);
  const int32_t raw_vocab = load_i32(ck.data() + 20);
  c.seq_len = load_i32(ck.data() + 24);
  check_positive(checkpoint_path, "dim", c.dim);
  check_positive(checkpoint_path, "hidden_dim", c.hidden_dim);
  check_positive(checkpoint_path, "n_layers", c.n_layers);
  check_positive(checkpoint_path, "n_heads", c.n_heads);
  check_positive(checkpoint_path, "n_kv_heads", c.n_kv_heads);
  check_positive(checkpoint_path, "seq_len", c.seq_len);
  check(raw_vocab != 0 && raw_vocab != INT32_MIN,
        where + ": header field vocab_size = " + std::to_string(raw_vocab) + " is invalid");
  c.shared_classifier = raw_vocab > 0;
  c.vocab_size = raw_vocab > 0 ? raw_vocab : -raw_vocab;
  check(c.vocab_size >= 3, where + ": header field vocab_size = " + std::to_string(raw_vocab) +
                               " (need at least <unk>, <s>, </s>)");
  check(c.n_layers <= kMaxLayers, where +
                                      ": header field n_layers = " + std::to_string(c.n_layers) +
                                      " exceeds " + std::to_string(kMaxLayers));
  check(c.dim % c.n_heads == 0, where + ": dim = " + std::to_string(c.dim) +
                                    " is not a multiple of n_heads = " + std::to_string(c.n_heads));
  check(c.n_kv_heads <= c.n_heads && c.n_heads % c.n_kv_heads == 0,
        where + ": n_heads = " + std::to_string(c.n_heads) +
            " is not a multiple of n_kv_heads = " + std::to_string(c.n_kv_heads));
  check(c.head_dim() % 2 == 0,
        where + ": head_dim = " + std::to_string(c.head_dim()) + " must be even for RoPE");

  const int64_t d = c.dim, f = c.hidden_dim, l = c.n_layers, v = c.vocab_size;
  const int64_t kv = static_cast<int64_t>(c.n_kv_heads) * c.head_dim();
  const uint64_t parts[] = {
      elems("tok_emb", {v, d}),
      elems("rms_att", {l, d}),
      elems("wq", {l, d, d}),
      elems("wk", {l, kv, d}),
      elems("wv", {l, kv, d}),
      elems("wo", {l, d, d}),
      elems("rms_ffn", {l, d}),
      elems("w1", {l, f, d}),
      elems("w2", {l, d, f}),
      elems("w3", {l, f, d}),
      elems("rms_final", {d}),
      elems("freq_cis", {2, c.seq_len, c.head_dim() / 2}),
      c.shared_classifier ? 0 : elems("wcls", {v, d}),
  };
  uint64_t n_floats = 0;
  for (uint64_t p : parts) {
    auto s = checked_add(n_floats, p);
    check(s.has_value(), where + ": total size overflows");
    n_floats = *s;
  }
  const auto expected =
      checked_add(kHeaderBytes, elems("checkpoint", {4, static_cast<int64_t>(n_floats)}));
  check(expected.has_value(), where + ": total size overflows");
  check(ck.size() == *expected,
        where + ": file has " + std::to_string(ck.size()) + " bytes but the header (dim " +
            std::to_string(c.dim) + ", hidden_dim " + std::to_string(c.hidden_dim) + ", n_layers " +
            std::to_string(c.n_layers) + ", n_heads " + std::to_string(c.n_heads) +
            ", n_kv_heads " + std::to_string(c.n_kv_heads) + ", vocab_size " +
            std::to_string(raw_vocab) + ", seq_len " + std::to_string(c.seq_len) + ") implies " +
            std::to_string(*expected) +
            (ck.size() < *expected ? " (truncated?)" : " (size mismatch)"));
  cv.weights_.resize(n_floats);
  std::memcpy(cv.weights_.data(), ck.data() + kHeaderBytes, n_floats * sizeof(float));

  // tokenizer.bin
  const std::vector<uint8_t> tk = read_all(tokenizer_path, "llama2.c tokenizer");
  const std::string twhere = "llama2.c tokenizer '" + tokenizer_path + "'";
  check(tk.size() >= 4, twhere + ": shorter than its 4-byte header");
  const int32_t max_len = load_i32(tk.data());
  check(max_len >= 0 && max_len <= kMaxTokenBytes,
        twhere + ": max_token_length = " + std::to_string(max_len) + " is invalid");
  size_t at = 4;
  cv.tokens_.reserve(static_cast<size_t>(c.vocab_size));
  for (int32_t id = 0; id < c.vocab_size; ++id) {
    check(tk.size() - at >= 8, twhere + ": truncated at token " + std::to_string(id) + " of " +
                                   std::to_string(c.vocab_size) +
                                   " (vocab_size from the checkpoint)");
    Llama2cToken t;
    std::memcpy(&t.score, tk.data() + at, 4);
    const int32_t len = load_i32(tk.data() + at + 4);
    at += 8;
    check(len >= 0 && len <= kMaxTokenBytes && static_cast<size_t>(len) <= tk.size() - at,
          twhere + ": token " + std::to_string(id) + " has length " + std::to_string(len) +
              (len >= 0 ? " past the end of the file" : ""));
    const std::string_view raw(reinterpret_cast<const char*>(tk.data() + at),
                               static_cast<size_t>(len));
    at += static_cast<size_t>(len);
    if (id == 0) {
      t.text = "<unk>";
      t.type = 2;
    } else if (id == 1 || id == 2) {
      t.text = id == 1 ? "<s>" : "</s>";
      t.type = 3;
    } else {
      for (char ch : raw) {
        if (ch == ' ') {
          t.text.append("\xe2\x96\x81");
        } else {
          t.text.push_back(ch);
        }
      }
      const bool is_byte = t.text.size() == 6 && t.text.compare(0, 3, "<0x") == 0 &&
                           std::isxdigit(static_cast<unsigned char>(t.text[3])) &&
                           std::isxdigit(static_cast<unsigned char>(t.text[4])) && t.text[5] == '>';
      t.type = is_byte ? 6 : 1;
    }
    cv.tokens_.push_back(std::move(t));
  }
  check(at == tk.size(), twhere + ": " + std::to_string(tk.size() - at) + " bytes left after " +
                             std::to_string(c.vocab_size) +
                             " tokens (vocab_size from the checkpoint does not match)");
  return cv;
}

void Llama2cConverter::add_matrix(GgufWriter& w, const std::string& name, const float* data,
                                  int64_t n_in, int64_t n_out,
                                  const Llama2cConvertOptions& options) {
  GgmlType type = options.type;
  if (!row_bytes(type, static_cast<uint64_t>(n_in))) {
    notes_.push_back(name + ": row length " + std::to_string(n_in) + " is not a multiple of the " +
                     type_name(type) + " block; written as F16");
    type = GgmlType::F16;
  }
  const uint64_t n = static_cast<uint64_t>(n_in) * static_cast<uint64_t>(n_out);
  if (type == GgmlType::F32) {
    w.add_tensor(name, {n_in, n_out}, type, data, n * sizeof(float));
    return;
  }
  const uint64_t rb = *row_bytes(type, static_cast<uint64_t>(n_in));
  std::vector<uint8_t> out(rb * static_cast<uint64_t>(n_out));
  if (type == GgmlType::F16) {
    for (uint64_t i = 0; i < n; ++i) {
      const uint16_t h = fp32_to_fp16(data[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  } else {
    for (int64_t r = 0; r < n_out; ++r) {
      options.quantize(data + r * n_in, out.data() + static_cast<uint64_t>(r) * rb, n_in);
    }
  }
  w.add_tensor(name, {n_in, n_out}, type, out.data(), out.size());
}

GgufWriter Llama2cConverter::to_gguf(const Llama2cConvertOptions& options) {
  const GgmlType t = options.type;
  check(t == GgmlType::F32 || t == GgmlType::F16 || options.quantize != nullptr,
        "llama2.c conversion to " + type_name(t) + " needs a quantize function");
  notes_.clear();
  const Llama2cConfig& c = config_;
  const int64_t d = c.dim, f = c.hidden_dim, v = c.vocab_size;
  const int64_t kv = static_cast<int64_t>(c.n_kv_heads) * c.head_dim();

  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", options.name);
  if (file_type_of(t) >= 0) w.set_u32("general.file_type", static_cast<uint32_t>(file_type_of(t)));
  w.set_u32("llama.context_length", static_cast<uint32_t>(c.seq_len));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(c.dim));
  w.set_u32("llama.block_count", static_cast<uint32_t>(c.n_layers));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(c.hidden_dim));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim()));
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);

  std::vector<std::string> texts;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (const auto& tok : tokens_) {
    texts.push_back(tok.text);
    scores.push_back(tok.score);
    types.push_back(tok.type);
  }
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", std::move(texts));
  w.set_f32_array("tokenizer.ggml.scores", std::move(scores));
  w.set_i32_array("tokenizer.ggml.token_type", std::move(types));
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);

  // Walk the arrays in file order.
  const float* p = weights_.data();
  auto take = [&p](uint64_t n) {
    const float* at = p;
    p += n;
    return at;
  };
  const float* tok_emb = take(static_cast<uint64_t>(v * d));  // [vocab][dim]
  const float* rms_att = take(static_cast<uint64_t>(c.n_layers * d));
  const float* wq = take(static_cast<uint64_t>(c.n_layers * d * d));   // [L][dim][dim]
  const float* wk = take(static_cast<uint64_t>(c.n_layers * kv * d));  // [L][kv_dim][dim]
  const float* wv = take(static_cast<uint64_t>(c.n_layers * kv * d));  // [L][kv_dim][dim]
  const float* wo = take(static_cast<uint64_t>(c.n_layers * d * d));   // [L][dim][dim]
  const float* rms_ffn = take(static_cast<uint64_t>(c.n_layers * d));
  const float* w1 = take(static_cast<uint64_t>(c.n_layers * f * d));  // [L][hidden][dim]
  const float* w2 = take(static_cast<uint64_t>(c.n_layers * d * f));  // [L][dim][hidden]
  const float* w3 = take(static_cast<uint64_t>(c.n_layers * f * d));  // [L][hidden][dim]
  const float* rms_final = take(static_cast<uint64_t>(d));
  take(static_cast<uint64_t>(c.seq_len) * static_cast<uint64_t>(c.head_dim()));  // freq_cis
  const float* wcls = c.shared_classifier ? nullptr : take(static_cast<uint64_t>(v * d));

  add_matrix(w, "token_embd.weight", tok_emb, d, v, options);
  w.add_tensor("output_norm.weight", {d}, GgmlType::F32, rms_final, d * sizeof(float));
  if (wcls) add_matrix(w, "output.weight", wcls, d, v, options);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    w.add_tensor(b + "attn_norm.weight", {d}, GgmlType::F32, rms_att + i * d, d * sizeof(float));
    add_matrix(w, b + "attn_q.weight", wq + i * d * d, d, d, options);
    add_matrix(w, b + "attn_k.weight", wk + i * kv * d, d, kv, options);
    add_matrix(w, b + "attn_v.weight", wv + i * kv * d, d, kv, options);
    add_matrix(w, b + "attn_output.weight", wo + i * d * d, d, d, options);
    w.add_tensor(b + "ffn_norm.weight", {d}, GgmlType::F32, rms_ffn + i * d, d * sizeof(float));
    add_matrix(w, b + "ffn_gate.weight", w1 + i * f * d, d, f, options);
    add_matrix(w, b + "ffn_down.weight", w2 + i * d * f, f, d, options);
    add_matrix(w, b + "ffn_up.weight", w3 + i * f * d, d, f, options);
  }
  return w;
}

}  // namespace momentkv
