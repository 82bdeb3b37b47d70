#include "core/engine/generation_result.h"

namespace momentkv {

double GenerationTimings::prompt_tokens_per_s() const {
  return prompt_ms > 0 ? n_prompt * 1000.0 / prompt_ms : 0.0;
}
double GenerationTimings::decode_tokens_per_s() const {
  return decode_ms > 0 && n_generated > 1 ? (n_generated - 1) * 1000.0 / decode_ms : 0.0;
}

}  // namespace momentkv
