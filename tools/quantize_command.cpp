// momentkv quantize IN.gguf OUT.gguf TYPE: re-encodes a model's matrices (llama.cpp's argument
// order). The type rules and fallbacks are described in tools/model_quantizer.h.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "tools/args.h"
#include "tools/commands.h"
#include "tools/model_quantizer.h"

namespace momentkv::tools {

namespace {

std::string shape_text(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) {
    if (i) s.append(" x ");
    s.append(std::to_string(ne[i]));
  }
  s.push_back(']');
  return s;
}

double mib(uint64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  ArgParser p("quantize", "Re-encode a GGUF model's weight matrices: IN.gguf OUT.gguf TYPE.");
  std::vector<std::string> pos;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  p.add({"-t", "--threads"}, "N", "threads (default: all CPUs)", [&](const std::string& v) {
    threads = static_cast<int>(ArgParser::to_int("-t", v, 1, 1024));
  });
  p.positional("IN OUT TYPE", "input GGUF, output GGUF, and one of " + ModelQuantizer::spec_names(),
               [&](const std::string& v) { pos.push_back(v); });
  if (!p.parse(argc, argv)) return 0;
  if (pos.size() != 3) throw UsageError("expected IN.gguf OUT.gguf TYPE\n" + p.usage());
  const auto spec = ModelQuantizer::parse_spec(pos[2]);
  if (!spec) {
    throw UsageError("unknown TYPE '" + pos[2] + "' (one of " + ModelQuantizer::spec_names() + ")");
  }

  const auto t0 = std::chrono::steady_clock::now();
  const GgufFile in = GgufFile::open(pos[0]);
  ModelQuantizer q(*spec, threads);
  const GgufWriter w = q.quantize(in);
  uint64_t in_bytes = 0, out_bytes = 0;
  for (const auto& c : q.changes()) {
    in_bytes += c.from_bytes;
    out_bytes += c.to_bytes;
    std::printf("%-32s %-14s %-5s -> %-5s %10.3f -> %10.3f KiB\n", c.name.c_str(),
                shape_text(c.ne).c_str(), type_name(c.from).c_str(), type_name(c.to).c_str(),
                static_cast<double>(c.from_bytes) / 1024.0,
                static_cast<double>(c.to_bytes) / 1024.0);
    if (!c.fallback.empty()) {
      std::fprintf(stderr, "fallback: %s: %s\n", c.name.c_str(), c.fallback.c_str());
    }
  }
  w.write(pos[1]);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %zu tensors, %.2f MiB -> %.2f MiB (%s), %.2f s\n", pos[1].c_str(),
              q.changes().size(), mib(in_bytes), mib(out_bytes), spec->name.c_str(), s);
  return 0;
}

}  // namespace momentkv::tools
