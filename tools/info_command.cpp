// momentkv info: metadata, tensor types and memory needs of a GGUF model.
#include <cstdio>
#include <map>

#include "core/gguf/gguf_file.h"
#include "core/model/model.h"
#include "tools/commands.h"
#include "tools/model_options.h"

namespace momentkv::tools {

int cmd_info(int argc, char** argv) {
  ArgParser p("info", "Print a GGUF model's metadata, tensor types and the memory it needs.");
  std::string model_path;
  bool all_tensors = false;
  int32_t n_ctx = 0;
  p.add({"-m", "--model"}, "FILE", "GGUF file (default: the stories260K model)",
        [&](const std::string& v) { model_path = v; });
  p.add({"-c", "--ctx-size"}, "N", "context size for the KV estimate (default: the model's)",
        [&](const std::string& v) {
          n_ctx = static_cast<int32_t>(ArgParser::to_int("-c", v, 1, 1 << 24));
        });
  p.add_switch({"--tensors"}, "list every tensor", [&] { all_tensors = true; });
  p.positional("FILE", "GGUF file", [&](const std::string& v) { model_path = v; });
  if (!p.parse(argc, argv)) return 0;
  const std::string path = model_path.empty() ? default_model_path() : model_path;
  const auto f = GgufFile::open(path);
  std::printf("file: %s\n", path.c_str());
  std::printf("gguf version %u, %llu bytes, alignment %llu, data at offset %llu\n", f.version(),
              static_cast<unsigned long long>(f.file_size()),
              static_cast<unsigned long long>(f.alignment()),
              static_cast<unsigned long long>(f.data_offset()));
  std::printf("\nmetadata (%zu keys):\n", f.kvs().size());
  for (const auto& kv : f.kvs()) {
    std::printf("  %-48s %s\n", kv.key.c_str(), kv.value.to_string().c_str());
  }
  std::map<std::string, std::pair<int, uint64_t>> by_type;
  uint64_t total = 0;
  for (const auto& t : f.tensors()) {
    auto& e = by_type[type_name(t.type)];
    e.first += 1;
    e.second += t.n_bytes;
    total += t.n_bytes;
  }
  std::printf("\ntensors: %zu, %.2f MiB\n", f.tensors().size(),
              static_cast<double>(total) / (1 << 20));
  for (const auto& [name, e] : by_type) {
    std::printf("  %-6s %4d tensors  %10.2f MiB\n", name.c_str(), e.first,
                static_cast<double>(e.second) / (1 << 20));
  }
  if (all_tensors) {
    for (const auto& t : f.tensors()) {
      std::string shape;
      for (size_t d = 0; d < t.ne.size(); ++d) {
        if (d) shape.append(" x ");
        shape.append(std::to_string(t.ne[d]));
      }
      std::printf("  %-40s %-6s [%s]\n", t.name.c_str(), type_name(t.type).c_str(), shape.c_str());
    }
  }
  if (!f.find("general.architecture") || f.tensors().empty()) return 0;  // a vocabulary-only file
  const auto model = Model::from_file(GgufFile::open(path));
  const auto& c = model->config();
  const int32_t ctx = n_ctx > 0 ? n_ctx : c.n_ctx_train;
  std::printf(
      "\nmodel: %s%s%s, %d layers, n_embd %d, %d heads (%d kv, head_dim %d), ffn %d, "
      "vocab %d, trained context %d, rope %s base %.0f\n",
      c.arch.c_str(), c.name.empty() ? "" : " ", c.name.c_str(), c.n_layer, c.n_embd, c.n_head,
      c.n_head_kv, c.head_dim, c.n_ff, c.n_vocab, c.n_ctx_train,
      c.rope_mode == RopeMode::kNeox ? "neox" : "normal", static_cast<double>(c.rope_freq_base));
  const double kv_per_token_f32 = 2.0 * c.n_layer * c.n_embd_kv() * 4;
  std::printf(
      "memory: weights %.2f MiB (mapped); KV cache %.1f KiB/token f32 (%.1f KiB f16), "
      "%.2f MiB f32 for %d tokens\n",
      static_cast<double>(model->weight_bytes()) / (1 << 20), kv_per_token_f32 / 1024,
      kv_per_token_f32 / 2048, kv_per_token_f32 * ctx / (1 << 20), ctx);
  return 0;
}

}  // namespace momentkv::tools
