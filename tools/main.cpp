// momentkv: one command with subcommands (run, tokenize, info, convert, quantize, synth,
// perplexity, bench).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "core/util/error.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*fn)(int, char**);
};

constexpr Subcommand kCommands[] = {
    {"run", "generate text in-process from a prompt", momentkv::tools::cmd_run},
    {"tokenize", "print the token ids of a text", momentkv::tools::cmd_tokenize},
    {"info", "print a model's metadata, tensor types and memory needs", momentkv::tools::cmd_info},
    {"convert", "llama2.c checkpoint + tokenizer.bin -> GGUF", momentkv::tools::cmd_convert},
    {"quantize", "re-encode a GGUF model's matrices (Q8_0, Q4_0, ...)",
     momentkv::tools::cmd_quantize},
    {"synth", "write a random-weight GGUF of a known llama shape (for benchmarks)",
     momentkv::tools::cmd_synth},
    {"perplexity", "mean NLL and perplexity of a model over a text file",
     momentkv::tools::cmd_perplexity},
    {"bench", "prompt and decode tokens/s, with achieved vs measured memory bandwidth",
     momentkv::tools::cmd_bench},
    {"generate", "generate through a running momentkvd (streams)", momentkv::tools::cmd_generate},
    {"chat", "chat with a running momentkvd (one line per turn)", momentkv::tools::cmd_chat},
    {"health", "ask momentkvd whether it is ready", momentkv::tools::cmd_health},
    {"metrics", "print momentkvd's Prometheus metrics", momentkv::tools::cmd_metrics},
    {"load", "drive a running momentkvd with concurrent streams; latency, errors, memory",
     momentkv::tools::cmd_load},
    {"stats", "requests, speed and compression per policy/budget (daemon or telemetry database)",
     momentkv::tools::cmd_stats},
    {"tune", "recommend the smallest decode budget meeting a fidelity target (from probes)",
     momentkv::tools::cmd_tune},
    {"eval", "fidelity of KV policies vs a full cache over a prompt set (sweeps, JSON/CSV/plots)",
     momentkv::tools::cmd_eval},
    {"kvbench", "Moment-KV per-token cost vs a full cache, and long-generation speed and memory",
     momentkv::tools::cmd_kvbench},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage: momentkv <command> [options]   (momentkv <command> --help)\n\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.fn(argc - 2, argv + 2);
    } catch (const momentkv::tools::UsageError& e) {
      std::fprintf(stderr, "momentkv %s: %s\n", c.name, e.what());
      return 2;
    } catch (const momentkv::Error& e) {
      std::fprintf(stderr, "momentkv %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "momentkv %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "momentkv: unknown command '%s'\n\n", argv[1]);
  print_usage(stderr);
  return 2;
}
