#include "daemon/chat_template.h"

#include "core/util/error.h"

namespace momentkv::daemon {

const char* chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::kChatMl:
      return "chatml";
    case ChatFormat::kLlama2:
      return "llama2";
    case ChatFormat::kLlama3:
      return "llama3";
    case ChatFormat::kZephyr:
      return "zephyr";
    case ChatFormat::kPlain:
      return "plain";
  }
  return "plain";
}

ChatFormat parse_chat_format(const std::string& name) {
  for (ChatFormat f : {ChatFormat::kChatMl, ChatFormat::kLlama2, ChatFormat::kLlama3,
                       ChatFormat::kZephyr, ChatFormat::kPlain}) {
    if (name == chat_format_name(f)) return f;
  }
  throw Error("unknown chat template '" + name + "' (chatml, llama2, llama3, zephyr, plain)");
}

ChatFormat detect_chat_format(const std::string& t, ChatFormat fallback) {
  if (t.find("<|im_start|>") != std::string::npos) return ChatFormat::kChatMl;
  if (t.find("<|start_header_id|>") != std::string::npos) return ChatFormat::kLlama3;
  if (t.find("[INST]") != std::string::npos) return ChatFormat::kLlama2;
  if (t.find("<|user|>") != std::string::npos) return ChatFormat::kZephyr;
  return fallback;
}

std::string render_chat(ChatFormat f, const std::vector<ChatMessage>& messages) {
  std::string out;
  switch (f) {
    case ChatFormat::kChatMl:
      for (const auto& m : messages) {
        out.append("<|im_start|>")
            .append(m.role)
            .append("\n")
            .append(m.content)
            .append("<|im_end|>\n");
      }
      out.append("<|im_start|>assistant\n");
      break;
    case ChatFormat::kLlama3:
      for (const auto& m : messages) {
        out.append("<|start_header_id|>").append(m.role).append("<|end_header_id|>\n\n");
        out.append(m.content).append("<|eot_id|>");
      }
      out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
      break;
    case ChatFormat::kLlama2: {
      std::string system;
      bool first_user = true;
      for (const auto& m : messages) {
        if (m.role == "system") {
          system = m.content;
        } else if (m.role == "user") {
          out.append("[INST] ");
          if (first_user && !system.empty())
            out.append("<<SYS>>\n").append(system).append("\n<</SYS>>\n\n");
          first_user = false;
          out.append(m.content).append(" [/INST]");
        } else {
          out.append(" ").append(m.content).append(" </s><s>");
        }
      }
      break;
    }
    case ChatFormat::kZephyr:
      for (const auto& m : messages) {
        out.append("<|").append(m.role).append("|>\n").append(m.content).append("</s>\n");
      }
      out.append("<|assistant|>\n");
      break;
    case ChatFormat::kPlain:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i) out.append("\n");
        out.append(messages[i].content);
      }
      break;
  }
  return out;
}

}  // namespace momentkv::daemon
