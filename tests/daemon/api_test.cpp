// The OpenAI-compatible request parser: valid requests, and every bad-input case of
// RELIABILITY.md FZ-6 gets a 4xx error that names the field.
#include <gtest/gtest.h>

#include <limits>

#include "daemon/api.h"
#include "daemon/chat_template.h"

namespace momentkv::daemon {
namespace {

ApiError err_of(const std::string& body, bool chat = false) {
  auto r = parse_completion(body, chat, ApiLimits{});
  if (auto* e = std::get_if<ApiError>(&r)) return *e;
  ADD_FAILURE() << "accepted: " << body;
  return {};
}

TEST(Api, ValidCompletion) {
  auto r = parse_completion(
      R"({"prompt":"Once","max_tokens":16,"temperature":0,"top_k":5,"seed":7,"stop":["\n"],
          "stream":true,"model":"x","compression":{"policy":"moment","alpha":0.5,"decode_budget":32}})",
      false, ApiLimits{});
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r)) << error_json(std::get<ApiError>(r));
  const auto& c = std::get<CompletionRequest>(r);
  EXPECT_EQ(c.prompt, "Once");
  EXPECT_EQ(c.sampling.max_tokens, 16);
  EXPECT_EQ(c.sampling.temperature, 0.0f);
  EXPECT_EQ(c.sampling.top_k, 5);
  EXPECT_EQ(c.sampling.seed, 7u);
  EXPECT_EQ(c.sampling.stop, std::vector<std::string>{"\n"});
  EXPECT_TRUE(c.stream);
  EXPECT_EQ(c.policy, "moment");
  EXPECT_FLOAT_EQ(*c.alpha, 0.5f);
  EXPECT_EQ(c.decode_budget, 32);
  KvConfig base;
  auto kv = apply_overrides(base, c, ApiLimits{});
  ASSERT_TRUE(std::holds_alternative<KvConfig>(kv));
  EXPECT_EQ(std::get<KvConfig>(kv).policy, "moment");
  EXPECT_EQ(std::get<KvConfig>(kv).decode_budget, 32);
}

TEST(Api, ValidChat) {
  auto r = parse_completion(
      R"({"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"Hi"}]})",
      true, ApiLimits{});
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r));
  const auto& c = std::get<CompletionRequest>(r);
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(render_chat(ChatFormat::kChatMl, c.messages),
            "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatFormat::kLlama3, {{"user", "Hi"}}),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(ChatFormat::kLlama2, c.messages),
            "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST]");
  EXPECT_EQ(render_chat(ChatFormat::kPlain, c.messages), "Be kind.\nHi");
  EXPECT_EQ(detect_chat_format("{% ... '<|im_start|>' ... %}", ChatFormat::kPlain),
            ChatFormat::kChatMl);
  EXPECT_EQ(detect_chat_format("", ChatFormat::kPlain), ChatFormat::kPlain);
}

TEST(Api, BadInputNamesTheField) {
  struct Case {
    std::string body;
    std::string field;
  };
  for (const auto& c : std::vector<Case>{
           {R"({"prompt":"a","max_tokens":-1})", "max_tokens"},
           {R"({"prompt":"a","max_tokens":9223372036854775807})", "max_tokens"},
           {R"({"prompt":"a","max_tokens":18446744073709551615})", "max_tokens"},
           {R"({"prompt":"a","max_tokens":1.5})", "max_tokens"},
           {R"({"prompt":"a","max_tokens":"10"})", "max_tokens"},
           {R"({"prompt":"a","temperature":-0.5})", "temperature"},
           {R"({"prompt":"a","temperature":1e400})", "overflow"},
           {R"({"prompt":"a","top_p":0})", "top_p"},
           {R"({"prompt":"a","top_p":2})", "top_p"},
           {R"({"prompt":"a","top_k":-3})", "top_k"},
           {R"({"prompt":"a","seed":-1})", "seed"},
           {R"({"prompt":"a","stream":"yes"})", "stream"},
           {R"({"prompt":"a","stop":[1]})", "stop"},
           {R"({"prompt":"a","stop":""})", "stop"},
           {R"({"prompt":"a","n":2})", "n"},
           {R"({"prompt":"a","bogus":1})", "bogus"},
           {R"({"prompt":7})", "prompt"},
           {R"({"prompt":"a\u0000b"})", "prompt"},
           {R"({"prompt":"a","stop":["x\u0000"]})", "stop"},
           {R"({"prompt":"a","model":"m\u0000"})", "model"},
           {R"({"prompt":"a","user":"\u0000"})", "user"},
           {R"({})", "prompt"},
           {R"({"prompt":"a","compression":{"alpha":2}})", "alpha"},
           {R"({"prompt":"a","compression":{"decode_budget":-5}})", "decode_budget"},
           {R"({"prompt":"a","compression":{"decode_budget":0}})", "decode_budget"},
           {R"({"prompt":"a","compression":{"bogus":1}})", "compression.bogus"},
           {R"({"prompt":"a","compression":"moment"})", "compression"},
       }) {
    const auto e = err_of(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_NE(e.message.find(c.field), std::string::npos) << c.body << " -> " << e.message;
  }
  for (const auto& body : {std::string(R"({"messages":[]})"), std::string(R"({"messages":"hi"})"),
                           std::string(R"({"messages":[{"role":"wizard","content":"x"}]})"),
                           std::string(R"({"messages":[{"role":"user","content":3}]})"),
                           std::string(R"({"messages":[{"role":"user","content":"a\u0000"}]})")}) {
    const auto e = err_of(body, true);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_NE(e.message.find("messages"), std::string::npos) << body << " -> " << e.message;
  }
}

TEST(Api, MalformedJsonAndOddShapes) {
  for (const std::string& body : {std::string("{"), std::string("[1,2]"), std::string("null"),
                                  std::string(""), std::string("{\"prompt\":\"\xff\xfe\"}"),
                                  std::string("{\"prompt\":\"a\",\"prompt\":\"b\"}"),
                                  std::string(10000, '[') + std::string(10000, ']')}) {
    auto r = parse_completion(body, false, ApiLimits{});
    ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << body.substr(0, 40);
    EXPECT_EQ(std::get<ApiError>(r).status, 400);
  }
  // Duplicate keys are refused, at any depth (RELIABILITY.md FZ-6): a proxy keeping the first and
  // the daemon the last would disagree on what was asked.
  const auto dup = err_of(R"({"prompt":"a","prompt":"b"})");
  EXPECT_EQ(dup.status, 400);
  EXPECT_NE(dup.message.find("'prompt' appears twice"), std::string::npos) << dup.message;
  EXPECT_EQ(err_of(R"({"prompt":"a","compression":{"alpha":0.1,"alpha":0.9}})").status, 400);
  EXPECT_EQ(err_of(R"({"messages":[{"role":"user","content":"a","content":"b"}]})", true).status,
            400);
  // The same key in different objects is fine.
  EXPECT_TRUE(std::holds_alternative<CompletionRequest>(parse_completion(
      R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]})", true,
      ApiLimits{})));
}

TEST(Api, OversizedPrompt) {
  ApiLimits lim;
  lim.max_prompt_bytes = 100;
  auto r = parse_completion("{\"prompt\":\"" + std::string(200, 'a') + "\"}", false, lim);
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  EXPECT_EQ(std::get<ApiError>(r).status, 413);
}

TEST(Api, ErrorJsonShape) {
  EXPECT_EQ(error_json({429, "queue_full", "busy"}),
            R"({"error":{"code":"queue_full","message":"busy"}})");
}

TEST(Api, MalformedJsonWithInvalidUtf8GetsA400Body) {
  // Found by tests/fuzz/http_api_fuzz: the parse error quotes the bytes it read last, here not
  // UTF-8; rendering that error threw, and the client got a 500 instead of this 400.
  const std::string body = "{\"messages\":[[[\xfe\xff\xff\xbd[[]]]]]}";
  const ApiError e = err_of(body, true);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "invalid_json");
  std::string out;
  ASSERT_NO_THROW(out = error_json(e));
  EXPECT_EQ(out.rfind(R"({"error":{"code":"invalid_json","message":"malformed JSON: )", 0), 0u)
      << out;
  EXPECT_EQ(out.find('\xfe'), std::string::npos) << "invalid UTF-8 passed through";
}

}  // namespace
}  // namespace momentkv::daemon
