// The OpenAI-compatible request and response shapes of momentkvd (docs/protocol.md): parsing and
// validating /v1/completions and /v1/chat/completions bodies, and rendering responses, stream
// chunks and errors. Pure functions: testable without a socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/engine/generation_result.h"
#include "core/kv/kv_config.h"

namespace momentkv::daemon {

struct ApiError {
  int status = 400;
  std::string code;  // "invalid_request", "budget_exceeded", "queue_full", ...
  std::string message;
};

// {"error":{"code":...,"message":...}}
std::string error_json(const ApiError& e);

struct ChatMessage {
  std::string role, content;
};

struct CompletionRequest {
  bool chat = false;
  bool stream = false;
  std::string prompt;                 // completions
  std::vector<ChatMessage> messages;  // chat
  SamplingParams sampling;
  // Per-request compression overrides (within operator limits).
  std::optional<std::string> policy, scope;
  std::optional<float> alpha;
  std::optional<int32_t> decode_budget;
};

struct ApiLimits {
  int32_t max_tokens = 4096;  // largest max_tokens a request may ask for
  int32_t default_max_tokens = 256;
  int32_t max_decode_budget = 1 << 16;
  size_t max_prompt_bytes = 1 << 20;
};

// Parses and validates a request body. Unknown fields, wrong types, NaN/negative/out-of-range
// numbers and invalid UTF-8 are errors that name the field.
std::variant<CompletionRequest, ApiError> parse_completion(const std::string& body, bool chat,
                                                           const ApiLimits& limits);

// Applies the request's compression overrides to the operator's configuration.
std::variant<KvConfig, ApiError> apply_overrides(const KvConfig& base, const CompletionRequest& r,
                                                 const ApiLimits& limits);

// Response bodies (OpenAI shapes plus "compression" and "timings").
std::string completion_json(const std::string& id, const std::string& model, bool chat,
                            const GenerationResult& r, double ttft_ms);
// One SSE event ("data: {...}\n\n") carrying a piece of text.
std::string stream_chunk(const std::string& id, const std::string& model, bool chat,
                         const std::string& text);
// The last SSE events: the finish reason with compression and timings, then "data: [DONE]".
std::string stream_final(const std::string& id, const std::string& model, bool chat,
                         const GenerationResult& r, double ttft_ms);

}  // namespace momentkv::daemon
