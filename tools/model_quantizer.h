// Re-encodes the weight matrices of a GGUF model to another type (`momentkv quantize`).
//
// Rules (modelled on llama.cpp's llama_model_quantize; "base" is the requested type):
// - 2-D `*.weight` tensors are dequantized to f32 row by row and quantized to their target type;
//   a tensor already of its target type is copied unchanged. 1-D tensors (norms, biases,
//   rope_freqs) are stored as F32; other tensors are copied.
// - The classifier (output.weight, or token_embd.weight when the output is tied to it) gets Q6_K
//   when the base type has fewer than 8 bits (Q4_0..Q5_1, Q4_K, Q5_K), else the base type.
// - Q4_K_M / Q5_K_M: base Q4_K / Q5_K; attn_v and ffn_down take Q6_K in the layers llama.cpp's
//   use_more_bits picks (the first and last eighth of the layers and every third layer between),
//   token_embd stays at the base type (as llama.cpp does), the classifier Q6_K.
// - Fallback when the row length is not a multiple of the target block (llama.cpp's chain):
//   Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and then F16 if the 32-block still does not fit.
//   Every fallback is reported.
// - general.file_type is set to llama.cpp's ftype number for the request, and
//   general.quantization_version to 2; every other key is copied.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/gguf/gguf_file.h"
#include "core/gguf/gguf_writer.h"
#include "core/tensor/ggml_type.h"

namespace momentkv::tools {

// A quantization request: a single type or a llama.cpp-style mix.
struct QuantizeSpec {
  std::string name;                // "Q4_K_M", "Q8_0", ...
  GgmlType base = GgmlType::Q8_0;  // type of most matrices
  bool k_mix = false;              // *_K_M: Q6_K for some attn_v / ffn_down
  uint32_t file_type = 7;          // llama.cpp ftype written to general.file_type
};

// One tensor's change, for the report.
struct TensorChange {
  std::string name;
  std::vector<int64_t> ne;
  GgmlType from = GgmlType::F32;
  GgmlType to = GgmlType::F32;
  uint64_t from_bytes = 0;
  uint64_t to_bytes = 0;
  std::string fallback;  // non-empty: why `to` is not the type first chosen
};

class ModelQuantizer {
 public:
  // Parses F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q4_K_M, Q5_K_M
  // (case-insensitive); nullopt if unknown.
  static std::optional<QuantizeSpec> parse_spec(const std::string& name);
  // The names parse_spec accepts, for help texts.
  static std::string spec_names();

  // n_threads >= 1 threads quantize rows in parallel.
  ModelQuantizer(QuantizeSpec spec, int n_threads);

  // Builds the re-encoded image of `in`; throws Error on a tensor whose type has no kernels.
  GgufWriter quantize(const GgufFile& in);
  // Per-tensor changes of the last quantize(), in file order.
  const std::vector<TensorChange>& changes() const { return changes_; }

  // The type rule above for one tensor (before fallbacks); also used by `synth`.
  GgmlType chosen_type(const GgufTensorInfo& t, int32_t n_layer, bool has_output) const;
  // `t`, or the first type of the fallback chain whose block divides row_len; appends each step
  // ("Q4_K -> Q5_0") to *why when given.
  static GgmlType fit_row(GgmlType t, int64_t row_len, std::string* why);

 private:
  QuantizeSpec spec_;
  int n_threads_;
  std::vector<TensorChange> changes_;
};

}  // namespace momentkv::tools
