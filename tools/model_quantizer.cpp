#include "tools/model_quantizer.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/util/error.h"
#include "core/util/thread_pool.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::tools {

namespace {

struct SpecEntry {
  const char* name;
  GgmlType base;
  bool k_mix;
  uint32_t file_type;  // llama.cpp LLAMA_FTYPE_*
};

constexpr SpecEntry kSpecs[] = {
    {"F32", GgmlType::F32, false, 0},     {"F16", GgmlType::F16, false, 1},
    {"BF16", GgmlType::BF16, false, 32},  {"Q8_0", GgmlType::Q8_0, false, 7},
    {"Q4_0", GgmlType::Q4_0, false, 2},   {"Q4_1", GgmlType::Q4_1, false, 3},
    {"Q5_0", GgmlType::Q5_0, false, 8},   {"Q5_1", GgmlType::Q5_1, false, 9},
    {"Q4_K", GgmlType::Q4_K, false, 14},  {"Q5_K", GgmlType::Q5_K, false, 16},
    {"Q6_K", GgmlType::Q6_K, false, 18},  {"Q4_K_M", GgmlType::Q4_K, true, 15},
    {"Q5_K_M", GgmlType::Q5_K, true, 17},
};

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// N of a "blk.N." name, or -1.
int32_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int32_t v = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) {
    v = v * 10 + (name[i] - '0');
    if (v > (1 << 20)) return -1;
    ++i;
  }
  return v;
}

// llama.cpp's choice of the layers that get more bits in the *_M mixes.
bool use_more_bits(int32_t i, int32_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

bool fewer_than_8_bits(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      return true;
    default:
      return false;
  }
}

// The next type of llama.cpp's fallback chain for rows that do not fit `t`'s block.
GgmlType next_fallback(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_K:
      return GgmlType::Q5_0;
    case GgmlType::Q5_K:
      return GgmlType::Q5_1;
    case GgmlType::Q6_K:
      return GgmlType::Q8_0;
    default:
      return GgmlType::F16;
  }
}

}  // namespace

std::optional<QuantizeSpec> ModelQuantizer::parse_spec(const std::string& name) {
  std::string up = name;
  for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& e : kSpecs) {
    if (up == e.name) return QuantizeSpec{e.name, e.base, e.k_mix, e.file_type};
  }
  return std::nullopt;
}

std::string ModelQuantizer::spec_names() {
  std::string s;
  for (const auto& e : kSpecs) {
    if (!s.empty()) s.append(", ");
    s.append(e.name);
  }
  return s;
}

ModelQuantizer::ModelQuantizer(QuantizeSpec spec, int n_threads)
    : spec_(std::move(spec)), n_threads_(std::max(1, n_threads)) {}

GgmlType ModelQuantizer::chosen_type(const GgufTensorInfo& t, int32_t n_layer,
                                     bool has_output) const {
  if (t.ne.size() == 1) return GgmlType::F32;
  if (t.ne.size() != 2 || !ends_with(t.name, ".weight")) return t.type;
  const GgmlType base = spec_.base;
  const bool classifier =
      t.name == "output.weight" || (!has_output && t.name == "token_embd.weight");
  if (classifier) return fewer_than_8_bits(base) ? GgmlType::Q6_K : base;
  if (spec_.k_mix &&
      (ends_with(t.name, ".attn_v.weight") || ends_with(t.name, ".ffn_down.weight"))) {
    const int32_t layer = layer_of(t.name);
    if (layer >= 0 && use_more_bits(layer, n_layer)) return GgmlType::Q6_K;
  }
  return base;
}

GgmlType ModelQuantizer::fit_row(GgmlType t, int64_t row_len, std::string* why) {
  while (!row_bytes(t, static_cast<uint64_t>(row_len))) {
    const GgmlType next = next_fallback(t);
    if (why) {
      if (!why->empty()) why->append(", ");
      why->append(type_name(t) + " -> " + type_name(next));
    }
    t = next;
  }
  return t;
}

GgufWriter ModelQuantizer::quantize(const GgufFile& in) {
  changes_.clear();
  GgufWriter w;
  w.set_alignment(static_cast<uint32_t>(in.alignment()));
  for (const auto& kv : in.kvs()) {
    if (kv.key == "general.alignment" || kv.key == "general.file_type" ||
        kv.key == "general.quantization_version") {
      continue;
    }
    w.copy_value(kv.key, kv.value);
  }
  w.set_u32("general.quantization_version", 2);
  w.set_u32("general.file_type", spec_.file_type);

  int32_t n_layer = 0;
  bool has_output = false;
  for (const auto& t : in.tensors()) {
    if (ends_with(t.name, ".attn_v.weight")) ++n_layer;
    if (t.name == "output.weight") has_output = true;
  }

  ThreadPool pool(n_threads_);
  for (const auto& t : in.tensors()) {
    TensorChange ch;
    ch.name = t.name;
    ch.ne = t.ne;
    ch.from = t.type;
    ch.from_bytes = t.n_bytes;
    const GgmlType wanted = chosen_type(t, n_layer, has_output);
    const GgmlType to = fit_row(wanted, t.ne[0], &ch.fallback);
    if (!ch.fallback.empty()) {
      ch.fallback =
          "row length " + std::to_string(t.ne[0]) + " does not fit the block: " + ch.fallback;
    }
    ch.to = to;
    const uint8_t* src = in.tensor_data(t);
    if (to == t.type) {
      w.add_tensor(t.name, t.ne, to, src, t.n_bytes);
      ch.to_bytes = t.n_bytes;
      changes_.push_back(std::move(ch));
      continue;
    }
    const auto& dk = kernels::type_kernels(t.type);
    const auto& qk = kernels::type_kernels(to);
    check(dk.dequantize != nullptr,
          "tensor '" + t.name + "': cannot dequantize " + type_name(t.type));
    check(qk.quantize != nullptr, "tensor '" + t.name + "': cannot quantize to " + type_name(to));
    const int64_t n_in = t.ne[0];
    const int64_t n_rows = t.n_rows();
    const uint64_t src_rb = *row_bytes(t.type, static_cast<uint64_t>(n_in));
    const uint64_t dst_rb = *row_bytes(to, static_cast<uint64_t>(n_in));
    std::vector<uint8_t> out(dst_rb * static_cast<uint64_t>(n_rows));
    pool.parallel_for(n_rows, [&](int64_t begin, int64_t end) {
      std::vector<float> row(static_cast<size_t>(n_in));
      for (int64_t r = begin; r < end; ++r) {
        dk.dequantize(src + static_cast<uint64_t>(r) * src_rb, row.data(), n_in);
        qk.quantize(row.data(), out.data() + static_cast<uint64_t>(r) * dst_rb, n_in);
      }
    });
    w.add_tensor(t.name, t.ne, to, out.data(), out.size());
    ch.to_bytes = out.size();
    changes_.push_back(std::move(ch));
  }
  return w;
}

}  // namespace momentkv::tools
