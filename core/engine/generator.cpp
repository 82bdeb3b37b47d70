#include "core/engine/generator.h"

#include "core/engine/generation_session.h"

namespace momentkv {

Generator::Generator(Sequence& sequence, const Tokenizer& tokenizer)
    : sequence_(sequence), tokenizer_(tokenizer) {}

GenerationResult Generator::generate(const GenerationRequest& req,
                                     const std::function<bool(std::string_view)>& on_text) {
  GenerationSession session(sequence_, tokenizer_, req);
  auto emit = [&](const std::string& text) {
    if (!text.empty() && on_text && !on_text(text)) session.cancel();
  };
  if (!session.done()) session.prefill();
  while (!session.done()) emit(session.step());
  emit(session.flush());
  return session.result();
}

}  // namespace momentkv
