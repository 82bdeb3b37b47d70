// The momentkv subcommands. Each takes the arguments after its name and returns the exit status
// (0 ok, 1 failure, 2 usage error).
#pragma once

namespace momentkv::tools {

int cmd_run(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_convert(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_kvbench(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_health(int argc, char** argv);
int cmd_metrics(int argc, char** argv);
int cmd_stats(int argc, char** argv);
int cmd_tune(int argc, char** argv);
int cmd_load(int argc, char** argv);

}  // namespace momentkv::tools
