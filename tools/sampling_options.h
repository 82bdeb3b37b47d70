// Sampling flags with llama.cpp's names: -n, --temp, --top-k, --top-p, --min-p,
// --repeat-penalty, --repeat-last-n, --seed, --stop (repeatable).
#pragma once

#include "core/sampler/sampling_params.h"
#include "tools/args.h"

namespace momentkv::tools {

class SamplingOptions {
 public:
  SamplingOptions();
  // Registers the flags on `p`.
  void add_to(ArgParser& p);
  // The parameters; throws UsageError when they are out of range.
  SamplingParams params() const;

 private:
  SamplingParams params_;
};

}  // namespace momentkv::tools
