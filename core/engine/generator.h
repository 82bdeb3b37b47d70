// One generation: tokenize the prompt, process it in batches, then sample token by token until
// max_tokens, an end-of-generation token, a stop string or the end of the context; stream the
// text as it becomes safe to show (never part of a stop string or of a UTF-8 character).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine/generation_result.h"
#include "core/engine/sequence.h"
#include "core/tokenizer/tokenizer.h"

namespace momentkv {

class Generator {
 public:
  Generator(Sequence& sequence, const Tokenizer& tokenizer);

  // Runs one generation from an empty context. `on_text` gets each newly safe piece of output;
  // returning false cancels. Throws Error for invalid parameters or a prompt longer than the
  // context.
  GenerationResult generate(const GenerationRequest& request,
                            const std::function<bool(std::string_view)>& on_text = {});

 private:
  Sequence& sequence_;
  const Tokenizer& tokenizer_;
};

}  // namespace momentkv
