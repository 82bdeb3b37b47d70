#include "tools/kv_options.h"

#include <algorithm>

#include "core/engine/memory_budget.h"

namespace momentkv::tools {

void KvOptions::add_to(ArgParser& p) {
  p.add({"--policy"}, "NAME", "KV policy: full (default), moment, h2o, tova, streaming, scope",
        [this](const std::string& v) { kv_.policy = v; });
  p.add({"--alpha"}, "A", "moment: score decay in [0, 1] (default 0.9)",
        [this](const std::string& v) {
          kv_.alpha = static_cast<float>(ArgParser::to_double("--alpha", v));
        });
  p.add({"--decode-budget"}, "N", "generated tokens kept in the KV cache (default 512; full: -n)",
        [this](const std::string& v) {
          kv_.decode_budget =
              static_cast<int32_t>(ArgParser::to_int("--decode-budget", v, 1, 1 << 24));
          budget_given_ = true;
        });
  p.add({"--kv-type", "-ctk", "--cache-type-k"}, "TYPE",
        "KV element type: f16 (default), f32, q8_0", [this](const std::string& v) {
          auto t = parse_kv_type(v);
          if (!t) throw UsageError("--kv-type expects f16, f32 or q8_0, got '" + v + "'");
          kv_.type = *t;
        });
  p.add({"--kv-scope"}, "SCOPE",
        "decode (default: the prompt's cache is never evicted) or unified (any token may go)",
        [this](const std::string& v) {
          if (v == "decode")
            kv_.scope = KvScope::kDecode;
          else if (v == "unified")
            kv_.scope = KvScope::kUnified;
          else
            throw UsageError("--kv-scope expects decode or unified, got '" + v + "'");
        });
  p.add({"--grace"}, "N", "moment: minimum residency in steps before eviction (default 0)",
        [this](const std::string& v) {
          kv_.grace = static_cast<int32_t>(ArgParser::to_int("--grace", v, 0, 1 << 20));
        });
  p.add_switch({"--normalize"}, "moment: compare bias-corrected scores",
               [this] { kv_.normalize = true; });
  p.add({"--granularity"}, "G", "moment: layer (default) or kv_head", [this](const std::string& v) {
    if (v == "layer")
      kv_.granularity = Granularity::kLayer;
    else if (v == "kv_head")
      kv_.granularity = Granularity::kKvHead;
    else
      throw UsageError("--granularity expects layer or kv_head, got '" + v + "'");
  });
  p.add({"--recent"}, "N", "h2o/scope: protected recent window (default: half the budget)",
        [this](const std::string& v) {
          kv_.recent = static_cast<int32_t>(ArgParser::to_int("--recent", v, 0, 1 << 24));
        });
  p.add({"--sinks"}, "N", "streaming (unified scope): attention sinks kept (default 4)",
        [this](const std::string& v) {
          kv_.sinks = static_cast<int32_t>(ArgParser::to_int("--sinks", v, 0, 1 << 20));
        });
  p.add({"--prefill-budget"}, "N", "snapkv: compress a longer prompt to N tokens (default off)",
        [this](const std::string& v) {
          kv_.prefill_budget =
              static_cast<int32_t>(ArgParser::to_int("--prefill-budget", v, 0, 1 << 24));
        });
  p.add({"--memory-budget"}, "BYTES",
        "bytes for weights + KV + scratch, e.g. 512MiB; refused up front if it cannot fit",
        [this](const std::string& v) {
          auto b = parse_bytes(v);
          if (!b || *b == 0)
            throw UsageError("--memory-budget expects a size like 512MiB, got '" + v + "'");
          memory_budget_ = b;
        });
}

void KvOptions::apply_config(const KvConfig& kv, uint64_t memory_budget) {
  kv_ = kv;
  budget_given_ = true;
  if (memory_budget > 0) memory_budget_ = memory_budget;
}

KvConfig KvOptions::config(int32_t max_tokens, int32_t n_prompt, int32_t n_ctx) const {
  KvConfig c = kv_;
  if (c.policy == "full" && !budget_given_) {
    const int32_t rest = std::max(1, n_ctx - n_prompt);
    c.decode_budget = max_tokens < 0 ? rest : std::clamp(max_tokens, 1, rest);
  }
  if (auto err = c.validate()) throw UsageError(*err);
  return c;
}

}  // namespace momentkv::tools
