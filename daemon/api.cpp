#include "daemon/api.h"

#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace momentkv::daemon {

using nlohmann::json;

namespace {

ApiError bad(const std::string& field, const std::string& what) {
  return {400, "invalid_request", "'" + field + "' " + what};
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80           ? 1
                       : (c >> 5) == 0x6  ? 2
                       : (c >> 4) == 0xE  ? 3
                       : (c >> 3) == 0x1E ? 4
                                          : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += len;
  }
  return true;
}

std::optional<ApiError> get_number(const json& j, const std::string& key, double lo, double hi,
                                   double& out) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  if (!v.is_number()) return bad(key, "must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    return bad(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                        v.dump());
  }
  out = d;
  return std::nullopt;
}

std::optional<ApiError> get_int(const json& j, const std::string& key, int64_t lo, int64_t hi,
                                int64_t& out) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  if (!v.is_number_integer()) return bad(key, "must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return bad(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) {
    return bad(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                        std::to_string(i));
  }
  out = i;
  return std::nullopt;
}

std::optional<ApiError> get_string(const json& j, const std::string& key, std::string& out) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_string()) return bad(key, "must be a string");
  out = j[key].get<std::string>();
  if (!valid_utf8(out)) return bad(key, "is not valid UTF-8");
  if (out.find('\0') != std::string::npos) return bad(key, "contains a NUL byte");
  return std::nullopt;
}

}  // namespace

std::string error_json(const ApiError& e) {
  // The message may quote the client's bytes (nlohmann's parse errors show the last ones read),
  // which need not be UTF-8: replaced, never thrown (a throw here turned a 400 into a 500).
  return json{{"error", {{"code", e.code}, {"message", e.message}}}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

std::variant<CompletionRequest, ApiError> parse_completion(const std::string& body, bool chat,
                                                           const ApiLimits& limits) {
  json j;
  // Duplicate keys are refused (RFC 8259 leaves them open): a proxy that keeps the first and a
  // daemon that keeps the last would see two different requests.
  std::vector<std::set<std::string>> keys;  // of the objects being parsed
  std::string duplicate;
  const json::parser_callback_t check_keys = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty() && duplicate.empty()) {
      if (!keys.back().insert(parsed.get<std::string>()).second) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  try {
    j = json::parse(body, check_keys);  // an iterative parser: deep nesting costs no stack
  } catch (const json::parse_error& e) {
    return ApiError{400, "invalid_json", std::string("malformed JSON: ") + e.what()};
  } catch (const std::exception& e) {
    return ApiError{400, "invalid_json", std::string("malformed JSON: ") + e.what()};
  }
  if (!duplicate.empty()) {
    return ApiError{400, "invalid_request",
                    "'" + duplicate + "' appears twice in an object (duplicate keys are refused)"};
  }
  if (!j.is_object()) return ApiError{400, "invalid_request", "the body must be a JSON object"};
  static const char* const kKnown[] = {"model",
                                       "prompt",
                                       "messages",
                                       "max_tokens",
                                       "temperature",
                                       "top_p",
                                       "top_k",
                                       "min_p",
                                       "repeat_penalty",
                                       "repeat_last_n",
                                       "seed",
                                       "stop",
                                       "stream",
                                       "compression",
                                       "n",
                                       "user",
                                       "presence_penalty",
                                       "frequency_penalty"};
  for (const auto& [key, value] : j.items()) {
    (void)value;
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known) return bad(key, "is not a known field");
  }
  CompletionRequest r;
  r.chat = chat;
  if (chat) {
    if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty()) {
      return bad("messages", "must be a non-empty array");
    }
    size_t bytes = 0;
    size_t index = 0;
    for (const auto& m : j["messages"]) {
      const std::string where = "messages[" + std::to_string(index++) + "]";
      if (!m.is_object()) return bad(where, "must be an object");
      ChatMessage msg;
      for (const char* key : {"role", "content"}) {
        if (!m.contains(key) || !m[key].is_string())
          return bad(where + "." + key, "must be a string");
      }
      if (auto e = get_string(m, "role", msg.role)) return bad(where + ".role", e->message);
      if (auto e = get_string(m, "content", msg.content))
        return bad(where + ".content", e->message);
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant") {
        return bad("messages[].role", "must be system, user or assistant, got '" + msg.role + "'");
      }
      bytes += msg.content.size();
      r.messages.push_back(std::move(msg));
    }
    if (bytes > limits.max_prompt_bytes) {
      return ApiError{413, "prompt_too_large",
                      "messages hold " + std::to_string(bytes) + " bytes, the limit is " +
                          std::to_string(limits.max_prompt_bytes)};
    }
  } else {
    if (!j.contains("prompt")) return bad("prompt", "is required");
    if (auto e = get_string(j, "prompt", r.prompt)) return *e;
    if (r.prompt.size() > limits.max_prompt_bytes) {
      return ApiError{413, "prompt_too_large",
                      "the prompt has " + std::to_string(r.prompt.size()) +
                          " bytes, the limit is " + std::to_string(limits.max_prompt_bytes)};
    }
    if (r.prompt.find('\0') != std::string::npos) return bad("prompt", "contains a NUL byte");
  }
  int64_t i = limits.default_max_tokens;
  if (auto e = get_int(j, "max_tokens", 0, limits.max_tokens, i)) return *e;
  r.sampling.max_tokens = static_cast<int32_t>(i);
  double d = 1.0;
  if (auto e = get_number(j, "temperature", 0.0, 100.0, d)) return *e;
  r.sampling.temperature = static_cast<float>(j.contains("temperature") ? d : 0.8);
  d = 0.95;
  if (auto e = get_number(j, "top_p", 0.0, 1.0, d)) return *e;
  if (j.contains("top_p") && d <= 0.0) return bad("top_p", "must be in (0, 1]");
  r.sampling.top_p = static_cast<float>(d);
  d = 0.05;
  if (auto e = get_number(j, "min_p", 0.0, 1.0, d)) return *e;
  r.sampling.min_p = static_cast<float>(d);
  i = 40;
  if (auto e = get_int(j, "top_k", 0, 1 << 20, i)) return *e;
  r.sampling.top_k = static_cast<int32_t>(i);
  d = 1.0;
  if (auto e = get_number(j, "repeat_penalty", 0.01, 10.0, d)) return *e;
  r.sampling.repeat_penalty = static_cast<float>(d);
  i = 64;
  if (auto e = get_int(j, "repeat_last_n", 0, 1 << 16, i)) return *e;
  r.sampling.repeat_last_n = static_cast<int32_t>(i);
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) return bad("seed", "must be an integer");
    if (j["seed"].is_number_unsigned()) {
      r.sampling.seed = j["seed"].get<uint64_t>();
    } else if (j["seed"].get<int64_t>() < 0) {
      return bad("seed", "must be >= 0");
    } else {
      r.sampling.seed = static_cast<uint64_t>(j["seed"].get<int64_t>());
    }
  }
  i = 1;
  if (auto e = get_int(j, "n", 1, 1, i)) return *e;
  for (const char* k : {"presence_penalty", "frequency_penalty"}) {
    d = 0;
    if (auto e = get_number(j, k, 0.0, 0.0, d)) return *e;
  }
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) return bad("stream", "must be true or false");
    r.stream = j["stream"].get<bool>();
  }
  if (j.contains("stop") && !j["stop"].is_null()) {
    const json& s = j["stop"];
    std::vector<json> items =
        s.is_array() ? std::vector<json>(s.begin(), s.end()) : std::vector<json>{s};
    if (items.size() > 16) return bad("stop", "has more than 16 entries");
    for (const auto& item : items) {
      if (!item.is_string() || item.get<std::string>().empty()) {
        return bad("stop", "must be a non-empty string or an array of them");
      }
      const auto& text = item.get_ref<const std::string&>();
      if (!valid_utf8(text) || text.find('\0') != std::string::npos) {
        return bad("stop", "must be valid UTF-8 without NUL bytes");
      }
      r.sampling.stop.push_back(item.get<std::string>());
    }
  }
  std::string model_name;
  if (auto e = get_string(j, "model", model_name)) return *e;
  std::string user;
  if (auto e = get_string(j, "user", user)) return *e;
  if (j.contains("compression") && !j["compression"].is_null()) {
    const json& c = j["compression"];
    if (!c.is_object()) return bad("compression", "must be an object");
    for (const auto& [key, value] : c.items()) {
      (void)value;
      if (key != "policy" && key != "alpha" && key != "decode_budget" && key != "scope") {
        return bad("compression." + key, "is not a known field");
      }
    }
    std::string s;
    if (c.contains("policy")) {
      if (auto e = get_string(c, "policy", s)) return *e;
      r.policy = s;
    }
    if (c.contains("scope")) {
      if (auto e = get_string(c, "scope", s)) return *e;
      r.scope = s;
    }
    d = 0;
    if (c.contains("alpha")) {
      if (auto e = get_number(c, "alpha", 0.0, 1.0, d)) return *e;
      r.alpha = static_cast<float>(d);
    }
    i = 0;
    if (c.contains("decode_budget")) {
      if (auto e = get_int(c, "decode_budget", 1, limits.max_decode_budget, i)) return *e;
      r.decode_budget = static_cast<int32_t>(i);
    }
  }
  if (auto err = r.sampling.validate()) return ApiError{400, "invalid_request", *err};
  return r;
}

std::variant<KvConfig, ApiError> apply_overrides(const KvConfig& base, const CompletionRequest& r,
                                                 const ApiLimits& limits) {
  KvConfig c = base;
  if (r.policy) c.policy = *r.policy;
  if (r.scope) {
    if (*r.scope != "decode" && *r.scope != "unified") {
      return ApiError{400, "invalid_request", "'compression.scope' must be decode or unified"};
    }
    c.scope = *r.scope == "decode" ? KvScope::kDecode : KvScope::kUnified;
  }
  if (r.alpha) c.alpha = *r.alpha;
  if (r.decode_budget) c.decode_budget = *r.decode_budget;
  if (c.decode_budget > limits.max_decode_budget) c.decode_budget = limits.max_decode_budget;
  if (auto err = c.validate()) return ApiError{400, "invalid_request", "compression: " + *err};
  return c;
}

namespace {

json compression_json(const GenerationResult& r) {
  const auto& c = r.compression;
  return {{"policy", c.policy},
          {"scope", c.scope},
          {"alpha", std::round(static_cast<double>(c.alpha) * 1e6) / 1e6},
          {"decode_budget", c.decode_budget},
          {"evicted", c.evicted},
          {"prompt_evicted", c.prompt_evicted},
          {"context_altered", c.context_altered},
          {"kv_bytes_peak", c.kv_bytes_peak},
          {"kv_bytes_reserved", c.kv_bytes_reserved}};
}

json timings_json(const GenerationResult& r, double ttft_ms) {
  const auto& t = r.timings;
  return {{"prompt_n", t.n_prompt},
          {"prompt_ms", t.prompt_ms},
          {"prompt_per_second", t.prompt_tokens_per_s()},
          {"predicted_n", t.n_generated},
          {"predicted_ms", t.decode_ms},
          {"predicted_per_second", t.decode_tokens_per_s()},
          {"ttft_ms", ttft_ms}};
}

json usage_json(const GenerationResult& r) {
  return {{"prompt_tokens", r.timings.n_prompt},
          {"completion_tokens", r.timings.n_generated},
          {"total_tokens", r.timings.n_prompt + r.timings.n_generated}};
}

int64_t now_seconds() {
  return static_cast<int64_t>(std::time(nullptr));
}

// The fields every completion response and stream event carries; `with_result` adds usage,
// compression and timings (the final response or event).
json response_json(const std::string& id, const std::string& model, const char* object, json choice,
                   const GenerationResult* with_result, double ttft_ms) {
  json out = {{"id", id},
              {"object", object},
              {"created", now_seconds()},
              {"model", model},
              {"choices", json::array({std::move(choice)})}};
  if (with_result) {
    out["usage"] = usage_json(*with_result);
    out["compression"] = compression_json(*with_result);
    out["timings"] = timings_json(*with_result, ttft_ms);
  }
  return out;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}
}  // namespace

std::string completion_json(const std::string& id, const std::string& model, bool chat,
                            const GenerationResult& r, double ttft_ms) {
  json choice = {{"index", 0}, {"finish_reason", r.finish_reason}};
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", r.text}};
  } else {
    choice["text"] = r.text;
  }
  return dump(response_json(id, model, chat ? "chat.completion" : "text_completion",
                            std::move(choice), &r, ttft_ms));
}

std::string stream_chunk(const std::string& id, const std::string& model, bool chat,
                         const std::string& text) {
  json choice = {{"index", 0}, {"finish_reason", nullptr}};
  if (chat) {
    choice["delta"] = {{"content", text}};
  } else {
    choice["text"] = text;
  }
  return "data: " +
         dump(response_json(id, model, chat ? "chat.completion.chunk" : "text_completion",
                            std::move(choice), nullptr, 0)) +
         "\n\n";
}

std::string stream_final(const std::string& id, const std::string& model, bool chat,
                         const GenerationResult& r, double ttft_ms) {
  json choice = {{"index", 0}, {"finish_reason", r.finish_reason}};
  if (chat) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
  }
  return "data: " +
         dump(response_json(id, model, chat ? "chat.completion.chunk" : "text_completion",
                            std::move(choice), &r, ttft_ms)) +
         "\n\ndata: [DONE]\n\n";
}

}  // namespace momentkv::daemon
