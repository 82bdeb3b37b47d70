// Aggregates per-prompt results of one configuration into a record, and writes the records of a
// sweep as JSON (results.json), CSV (results.csv) and a markdown table (results.md).
// The JSON schema is documented in docs/eval/README.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/eval/evaluator.h"
#include "core/kv/kv_config.h"

namespace momentkv::eval {

struct ConfigRecord {
  std::string label;  // e.g. "moment a=0.9 decode B=64"
  std::string policy, scope, granularity;
  float alpha = 0;
  int32_t decode_budget = 0, grace = 0;
  bool normalize = false;
  int32_t n_prompts = 0;
  int64_t n_tokens = 0;  // teacher-forced positions scored
  double tf_top1_agreement = 0, tf_kl_mean = 0, tf_delta_nll = 0;
  double tf_copy_top1_agreement = 0;  // at copy positions (token also in the prompt)
  int64_t n_copy_positions = 0;
  double fr_first_divergence_mean = 0, fr_token_agreement = 0, rouge_l = 0;
  double repetition_rate = 0, reference_repetition_rate = 0, output_length_ratio = 0;
  double retained_attention_mass = 0;
  double tokens_per_s = 0;
  uint64_t peak_kv_bytes = 0;
  double evicted_mean = 0;
  std::vector<double> kl_by_bucket, top1_by_bucket;  // means per bucket of positions
  int32_t bucket = 64;
  std::vector<int64_t> age_histogram;  // see Evaluator::age_buckets()
};

// Aggregates one configuration's per-prompt results (token-weighted for teacher-forced metrics,
// prompt means for free-running ones).
ConfigRecord aggregate(const KvConfig& kv, const std::vector<PromptResult>& results,
                       int32_t bucket);
// A short label for a configuration.
std::string config_label(const KvConfig& kv);

std::string to_json(const std::vector<ConfigRecord>& records);
std::string to_csv(const std::vector<ConfigRecord>& records);
// A markdown table with the main metrics, one row per record.
std::string to_markdown(const std::vector<ConfigRecord>& records);

}  // namespace momentkv::eval
