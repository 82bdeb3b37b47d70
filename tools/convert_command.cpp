// momentkv convert: a llama2.c checkpoint + tokenizer.bin -> a GGUF `llama` model.
#include <cstdio>
#include <string>

#include "core/model/llama2c_converter.h"
#include "kernels/cpu/type_kernels.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace momentkv::tools {

int cmd_convert(int argc, char** argv) {
  ArgParser p("convert", "Convert a llama2.c checkpoint and its tokenizer.bin to a GGUF model.");
  std::string checkpoint, tokenizer, out;
  GgmlType type = GgmlType::F32;
  p.add({"--checkpoint"}, "FILE", "llama2.c checkpoint (legacy format, e.g. stories15M.bin)",
        [&](const std::string& v) { checkpoint = v; });
  p.add({"--tokenizer"}, "FILE", "llama2.c tokenizer.bin",
        [&](const std::string& v) { tokenizer = v; });
  p.add({"-o", "--output"}, "FILE", "GGUF file to write", [&](const std::string& v) { out = v; });
  p.add({"--type"}, "TYPE", "type of the 2-D weights: F32 (default), F16 or Q8_0",
        [&](const std::string& v) {
          const auto t = parse_type_name(v);
          if (!t || (*t != GgmlType::F32 && *t != GgmlType::F16 && *t != GgmlType::Q8_0)) {
            throw UsageError("--type must be F32, F16 or Q8_0, not '" + v + "'");
          }
          type = *t;
        });
  if (!p.parse(argc, argv)) return 0;
  if (checkpoint.empty() || tokenizer.empty() || out.empty()) {
    throw UsageError("--checkpoint, --tokenizer and -o are required\n" + p.usage());
  }

  auto cv = Llama2cConverter::open(checkpoint, tokenizer);
  const Llama2cConfig& c = cv.config();
  std::fprintf(stderr,
               "checkpoint: dim %d, hidden_dim %d, %d layers, %d heads (%d kv), vocab %d, "
               "seq_len %d, %s classifier\n",
               c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len,
               c.shared_classifier ? "shared" : "separate");
  Llama2cConvertOptions opt;
  opt.type = type;
  if (type == GgmlType::Q8_0) opt.quantize = kernels::type_kernels(type).quantize;
  const GgufWriter w = cv.to_gguf(opt);
  for (const auto& n : cv.notes()) std::fprintf(stderr, "note: %s\n", n.c_str());
  w.write(out);
  std::fprintf(stderr, "wrote %s (%s weights)\n", out.c_str(), type_name(type).c_str());
  return 0;
}

}  // namespace momentkv::tools
