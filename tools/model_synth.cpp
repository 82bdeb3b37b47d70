#include "tools/model_synth.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "core/util/error.h"
#include "core/util/thread_pool.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::tools {

namespace {

constexpr uint64_t kAlignment = 32;
constexpr uint64_t kChunkF32Bytes = 32ull << 20;  // f32 rows generated per chunk, all threads
constexpr float kStd = 0.02f;

SynthShape make_shape(const char* name, const char* arch, int32_t n_embd, int32_t n_layer,
                      int32_t n_head, int32_t n_head_kv, int32_t n_ff, int32_t n_vocab,
                      int32_t n_ctx, float rope_base, bool tied, const char* vocab) {
  SynthShape s;
  s.name = name;
  s.arch = arch;
  s.n_embd = n_embd;
  s.n_layer = n_layer;
  s.n_head = n_head;
  s.n_head_kv = n_head_kv;
  s.n_ff = n_ff;
  s.n_vocab = n_vocab;
  s.n_ctx = n_ctx;
  s.rope_base = rope_base;
  s.tied = tied;
  s.vocab = vocab;
  return s;
}

std::vector<SynthShape> all_shapes() {
  std::vector<SynthShape> v;
  v.push_back(make_shape("tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f,
                         false, "vocab/ggml-vocab-llama-spm.gguf"));
  SynthShape l3 = make_shape("llama-3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 131072,
                             500000.0f, true, "vocab/llama3/llama3-8b-vocab.gguf");
  l3.llama3_rope = true;
  v.push_back(l3);
  SynthShape qw = make_shape("qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768,
                             1000000.0f, true, "vocab/qwen2.5-vocab.gguf");
  qw.qkv_bias = true;
  qw.rms_eps = 1e-6f;
  v.push_back(qw);
  v.push_back(make_shape("smollm-135m", "llama", 576, 30, 9, 3, 1536, 49152, 2048, 10000.0f, true,
                         "vocab/ggml-vocab-gpt-2.gguf"));
  v.push_back(make_shape("stories15m", "llama", 288, 6, 6, 6, 768, 32000, 256, 10000.0f, false,
                         "vocab/ggml-vocab-llama-spm.gguf"));
  return v;
}

uint64_t splitmix64(uint64_t& s) {
  s += 0x9E3779B97F4A7C15ull;
  uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Row `row` of tensor `tensor`: n values, approximately N(0, kStd^2) (Irwin-Hall, 4 uniforms).
void fill_row(uint64_t seed, uint64_t tensor, uint64_t row, float* out, int64_t n) {
  uint64_t s = seed;
  s = splitmix64(s) ^ (tensor * 0xD1B54A32D192ED03ull);
  s = splitmix64(s) ^ row;
  splitmix64(s);
  // Four 16-bit uniforms: mean 4 * 32767.5, std 65536 / sqrt(3) (to within 1e-9).
  constexpr double kMean = 131070.0;
  constexpr float kScale = static_cast<float>(kStd / 37837.2262);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t u = splitmix64(s);
    const uint64_t sum = (u & 0xffff) + ((u >> 16) & 0xffff) + ((u >> 32) & 0xffff) + (u >> 48);
    out[i] = static_cast<float>(static_cast<double>(sum) - kMean) * kScale;
  }
}

// Byte length of the encoded value of `v` (without its type tag).
uint64_t value_bytes(const GgufValue& v) {
  if (v.type == GgufType::String) return 8 + v.str.size();
  if (v.type != GgufType::Array) return gguf_scalar_size(v.type);
  uint64_t n = 12;
  if (v.elem_type == GgufType::String) {
    for (auto s : v.strs) n += 8 + s.size();
  } else {
    n += v.count * gguf_scalar_size(v.elem_type);
  }
  return n;
}

enum class Fill { kRandom, kOnes };

struct PlannedTensor {
  std::string name;
  std::vector<int64_t> ne;
  GgmlType type = GgmlType::F32;
  Fill fill = Fill::kRandom;
  uint64_t n_bytes = 0;
  uint64_t offset = 0;
};

void write_bytes(std::ofstream& out, const void* p, uint64_t n, const std::string& path) {
  out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  check(out.good(), "cannot write " + path + " (disk full?)");
}

}  // namespace

std::optional<SynthShape> ModelSynth::find_shape(const std::string& name) {
  for (auto& s : all_shapes()) {
    if (s.name == name) return s;
  }
  return std::nullopt;
}

std::string ModelSynth::shape_names() {
  std::string out;
  for (const auto& s : all_shapes()) {
    if (!out.empty()) out.append(", ");
    out.append(s.name);
  }
  return out;
}

std::string ModelSynth::models_dir() {
  if (const char* env = std::getenv("MOMENTKV_MODELS_DIR"); env && *env) return env;
  return std::filesystem::path(MOMENTKV_DEFAULT_MODEL).parent_path().parent_path().string();
}

ModelSynth::ModelSynth(SynthOptions options) : options_(std::move(options)) {}

void ModelSynth::write(const std::string& path) {
  notes_.clear();
  tensors_.clear();
  const SynthShape& sh = options_.shape;
  const int32_t n_layer = options_.n_layer > 0 ? options_.n_layer : sh.n_layer;
  check(sh.n_embd % sh.n_head == 0, "shape " + sh.name + ": n_embd not a multiple of n_head");
  const int64_t head_dim = sh.n_embd / sh.n_head;
  const int64_t n_embd = sh.n_embd, n_ff = sh.n_ff;
  const int64_t n_embd_kv = head_dim * sh.n_head_kv;

  // Vocabulary.
  const std::string vocab_path = options_.vocab_path.empty()
                                     ? (std::filesystem::path(models_dir()) / sh.vocab).string()
                                     : options_.vocab_path;
  const GgufFile vf = GgufFile::open(vocab_path);
  const GgufValue* tokens = vf.find("tokenizer.ggml.tokens");
  check(tokens != nullptr && tokens->type == GgufType::Array && tokens->count > 0,
        "vocabulary " + vocab_path + " has no tokenizer.ggml.tokens");
  const int64_t n_vocab = static_cast<int64_t>(tokens->count);
  if (n_vocab != sh.n_vocab) {
    notes_.push_back("n_vocab " + std::to_string(sh.n_vocab) + " of " + sh.name + " set to " +
                     std::to_string(n_vocab) + ", the token count of " + vocab_path);
  }

  // Metadata.
  GgufWriter kvw;
  const std::string a = sh.arch + ".";
  kvw.set_string("general.architecture", sh.arch);
  kvw.set_string("general.name", "synth " + sh.name + " " + options_.spec.name + " seed " +
                                     std::to_string(options_.seed));
  kvw.set_u32("general.file_type", options_.spec.file_type);
  kvw.set_u32("general.quantization_version", 2);
  kvw.set_u32(a + "context_length", static_cast<uint32_t>(sh.n_ctx));
  kvw.set_u32(a + "embedding_length", static_cast<uint32_t>(sh.n_embd));
  kvw.set_u32(a + "block_count", static_cast<uint32_t>(n_layer));
  kvw.set_u32(a + "feed_forward_length", static_cast<uint32_t>(sh.n_ff));
  kvw.set_u32(a + "attention.head_count", static_cast<uint32_t>(sh.n_head));
  kvw.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(sh.n_head_kv));
  kvw.set_u32(a + "rope.dimension_count", static_cast<uint32_t>(head_dim));
  kvw.set_f32(a + "rope.freq_base", sh.rope_base);
  kvw.set_f32(a + "attention.layer_norm_rms_epsilon", sh.rms_eps);
  if (sh.llama3_rope) {
    kvw.set_string(a + "rope.scaling.type", "llama3");
    kvw.set_f32(a + "rope.scaling.factor", 32.0f);
    kvw.set_f32(a + "rope.scaling.low_freq_factor", 1.0f);
    kvw.set_f32(a + "rope.scaling.high_freq_factor", 4.0f);
    kvw.set_u32(a + "rope.scaling.original_context_length", 8192);
  }
  for (const auto& kv : vf.kvs()) {
    if (kv.key.rfind("tokenizer.", 0) == 0) kvw.copy_value(kv.key, kv.value);
  }

  // Tensor plan, in the usual converter order.
  ModelQuantizer rules(options_.spec, 1);
  std::vector<PlannedTensor> plan;
  auto add = [&](std::string name, std::vector<int64_t> ne, Fill fill) {
    PlannedTensor t;
    t.name = std::move(name);
    t.ne = std::move(ne);
    t.fill = fill;
    GgufTensorInfo info;
    info.name = t.name;
    info.ne = t.ne;
    std::string why;
    t.type = ModelQuantizer::fit_row(rules.chosen_type(info, n_layer, !sh.tied), t.ne[0], &why);
    if (!why.empty()) {
      why = "row length " + std::to_string(t.ne[0]) + " does not fit the block: " + why;
    }
    uint64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= static_cast<uint64_t>(t.ne[d]);
    t.n_bytes = *row_bytes(t.type, static_cast<uint64_t>(t.ne[0])) * rows;
    TensorChange ch;
    ch.name = t.name;
    ch.ne = t.ne;
    ch.from = GgmlType::F32;
    ch.to = t.type;
    ch.from_bytes = static_cast<uint64_t>(t.ne[0]) * rows * 4;
    ch.to_bytes = t.n_bytes;
    ch.fallback = std::move(why);
    tensors_.push_back(std::move(ch));
    plan.push_back(std::move(t));
  };
  add("token_embd.weight", {n_embd, n_vocab}, Fill::kRandom);  // [n_vocab][n_embd]
  add("output_norm.weight", {n_embd}, Fill::kOnes);
  if (!sh.tied) add("output.weight", {n_embd, n_vocab}, Fill::kRandom);  // [n_vocab][n_embd]
  for (int32_t i = 0; i < n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", {n_embd}, Fill::kOnes);
    add(b + "attn_q.weight", {n_embd, n_embd}, Fill::kRandom);     // [n_embd_q][n_embd]
    add(b + "attn_k.weight", {n_embd, n_embd_kv}, Fill::kRandom);  // [n_embd_kv][n_embd]
    add(b + "attn_v.weight", {n_embd, n_embd_kv}, Fill::kRandom);  // [n_embd_kv][n_embd]
    if (sh.qkv_bias) {
      add(b + "attn_q.bias", {n_embd}, Fill::kRandom);
      add(b + "attn_k.bias", {n_embd_kv}, Fill::kRandom);
      add(b + "attn_v.bias", {n_embd_kv}, Fill::kRandom);
    }
    add(b + "attn_output.weight", {n_embd, n_embd}, Fill::kRandom);  // [n_embd][n_embd_q]
    add(b + "ffn_norm.weight", {n_embd}, Fill::kOnes);
    add(b + "ffn_gate.weight", {n_embd, n_ff}, Fill::kRandom);  // [n_ff][n_embd]
    add(b + "ffn_down.weight", {n_ff, n_embd}, Fill::kRandom);  // [n_embd][n_ff]
    add(b + "ffn_up.weight", {n_embd, n_ff}, Fill::kRandom);    // [n_ff][n_embd]
  }
  uint64_t offset = 0;
  for (auto& t : plan) {
    t.offset = offset;
    offset += (t.n_bytes + kAlignment - 1) / kAlignment * kAlignment;
  }

  // Header: the metadata section as GgufWriter encodes it (its length measured from the parsed
  // values), then the tensor infos, which GgufWriter cannot emit without holding the data.
  std::vector<uint8_t> kv_image = kvw.to_bytes();
  uint64_t kv_end = 24;
  {
    const GgufFile parsed = GgufFile::from_bytes(kv_image);
    for (const auto& kv : parsed.kvs()) kv_end += 8 + kv.key.size() + 4 + value_bytes(kv.value);
  }
  check(kv_end <= kv_image.size(), "synth: metadata section length mismatch");
  ByteWriter head;
  head.raw(kv_image.data(), kv_end);
  const uint64_t n_tensors = plan.size();
  std::memcpy(head.bytes().data() + 8, &n_tensors, 8);
  for (const auto& t : plan) {
    head.str(t.name);
    head.u32(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) head.u64(static_cast<uint64_t>(d));
    head.u32(static_cast<uint32_t>(t.type));
    head.u64(t.offset);
  }
  head.pad_to(kAlignment);
  kv_image.clear();
  kv_image.shrink_to_fit();

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  check(out.good(), "cannot create " + path);
  write_bytes(out, head.bytes().data(), head.size(), path);

  ThreadPool pool(std::max(1, options_.n_threads));
  const uint8_t zeros[kAlignment] = {};
  std::vector<uint8_t> buf;
  for (size_t ti = 0; ti < plan.size(); ++ti) {
    const PlannedTensor& t = plan[ti];
    const int64_t n_in = t.ne[0];
    const uint64_t rb = *row_bytes(t.type, static_cast<uint64_t>(n_in));
    const int64_t n_rows = static_cast<int64_t>(t.n_bytes / rb);
    const auto& qk = kernels::type_kernels(t.type);
    check(qk.quantize != nullptr, "synth: no quantize kernel for " + type_name(t.type));
    const int64_t chunk = std::max<int64_t>(
        1, std::min<int64_t>(n_rows, static_cast<int64_t>(kChunkF32Bytes / (4 * n_in))));
    buf.resize(rb * static_cast<uint64_t>(chunk));
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
      const int64_t n = std::min(chunk, n_rows - r0);
      pool.parallel_for(n, [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(n_in));
        for (int64_t r = begin; r < end; ++r) {
          if (t.fill == Fill::kOnes) {
            std::fill(row.begin(), row.end(), 1.0f);
          } else {
            fill_row(options_.seed, ti, static_cast<uint64_t>(r0 + r), row.data(), n_in);
          }
          qk.quantize(row.data(), buf.data() + static_cast<uint64_t>(r) * rb, n_in);
        }
      });
      write_bytes(out, buf.data(), rb * static_cast<uint64_t>(n), path);
    }
    const uint64_t pad = (kAlignment - t.n_bytes % kAlignment) % kAlignment;
    write_bytes(out, zeros, pad, path);
  }
  out.flush();
  check(out.good(), "cannot write " + path + " (disk full?)");
}

}  // namespace momentkv::tools
