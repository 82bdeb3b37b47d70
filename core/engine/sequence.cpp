#include "core/engine/sequence.h"

namespace momentkv {

int32_t Sequence::eval_greedy(std::span<const int32_t> tokens, Region region) {
  const std::span<const float> logits = eval(tokens, false, region);
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

}  // namespace momentkv
