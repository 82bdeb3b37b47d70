// Chat templates: the common families recognised from the GGUF's tokenizer.chat_template text
// (ChatML, Llama-2, Llama-3, Zephyr), or a configured default. Rendering is done here in C++ (no
// Jinja): each family's fixed layout, which is what those templates produce.
#pragma once

#include <string>
#include <vector>

#include "daemon/api.h"

namespace momentkv::daemon {

enum class ChatFormat { kChatMl, kLlama2, kLlama3, kZephyr, kPlain };

const char* chat_format_name(ChatFormat f);
// "chatml", "llama2", "llama3", "zephyr", "plain"; throws Error otherwise.
ChatFormat parse_chat_format(const std::string& name);
// The family of a Jinja template text, or `fallback` when it is none of the known ones.
ChatFormat detect_chat_format(const std::string& template_text, ChatFormat fallback);
// The prompt for `messages` ending where the assistant's reply begins. BOS is not included (the
// tokenizer adds it).
std::string render_chat(ChatFormat f, const std::vector<ChatMessage>& messages);

}  // namespace momentkv::daemon
