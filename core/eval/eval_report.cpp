#include "core/eval/eval_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace momentkv::eval {

namespace {

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out.append(buf);
      continue;
    }
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

template <typename T>
std::string array(const std::vector<T>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out.append(", ");
    out.append(num(static_cast<double>(v[i])));
  }
  out.push_back(']');
  return out;
}

}  // namespace

std::string config_label(const KvConfig& kv) {
  char buf[160];
  if (kv.policy == "moment") {
    std::snprintf(buf, sizeof buf, "moment a=%g%s%s%s %s B=%d", static_cast<double>(kv.alpha),
                  kv.grace ? (" grace=" + std::to_string(kv.grace)).c_str() : "",
                  kv.normalize ? " norm" : "",
                  kv.granularity == Granularity::kKvHead ? " kv_head" : "", kv_scope_name(kv.scope),
                  kv.decode_budget);
  } else {
    std::snprintf(buf, sizeof buf, "%s %s B=%d", kv.policy.c_str(), kv_scope_name(kv.scope),
                  kv.decode_budget);
  }
  return buf;
}

ConfigRecord aggregate(const KvConfig& kv, const std::vector<PromptResult>& results,
                       int32_t bucket) {
  ConfigRecord c;
  c.label = config_label(kv);
  c.policy = kv.policy;
  c.scope = kv_scope_name(kv.scope);
  c.granularity = granularity_name(kv.granularity);
  c.alpha = kv.alpha;
  c.decode_budget = kv.decode_budget;
  c.grace = kv.grace;
  c.normalize = kv.normalize;
  c.bucket = bucket;
  c.n_prompts = static_cast<int32_t>(results.size());
  size_t n_buckets = 0;
  for (const auto& r : results) n_buckets = std::max(n_buckets, r.kl_bucket.size());
  std::vector<double> kl_b(n_buckets, 0), top1_b(n_buckets, 0);
  std::vector<int64_t> cnt_b(n_buckets, 0);
  double kl = 0, top1 = 0, dnll = 0, copy = 0, mass = 0;
  int64_t n_mass = 0;
  for (const auto& r : results) {
    c.n_tokens += r.n_tokens;
    kl += r.kl_sum;
    top1 += r.top1_sum;
    dnll += r.delta_nll_sum;
    copy += r.copy_top1_sum;
    c.n_copy_positions += r.n_copy;
    mass += r.retained_mass_sum;
    n_mass += r.n_retained;
    for (size_t b = 0; b < r.kl_bucket.size(); ++b) {
      kl_b[b] += r.kl_bucket[b];
      top1_b[b] += r.top1_bucket[b];
      cnt_b[b] += r.bucket_count[b];
    }
    c.fr_first_divergence_mean += r.first_divergence;
    c.fr_token_agreement += r.token_agreement;
    c.rouge_l += r.rouge_l;
    c.repetition_rate += r.repetition_rate;
    c.reference_repetition_rate += r.reference_repetition_rate;
    c.output_length_ratio += r.length_ratio;
    c.tokens_per_s += r.tokens_per_s;
    c.evicted_mean += static_cast<double>(r.evicted);
    c.peak_kv_bytes = std::max(c.peak_kv_bytes, r.peak_kv_bytes);
    if (c.age_histogram.size() < r.age_histogram.size())
      c.age_histogram.resize(r.age_histogram.size());
    for (size_t i = 0; i < r.age_histogram.size(); ++i) c.age_histogram[i] += r.age_histogram[i];
  }
  const double nt = std::max<double>(1.0, static_cast<double>(c.n_tokens));
  const double np = std::max(1, c.n_prompts);
  c.tf_kl_mean = kl / nt;
  c.tf_top1_agreement = top1 / nt;
  c.tf_delta_nll = dnll / nt;
  c.tf_copy_top1_agreement =
      c.n_copy_positions ? copy / static_cast<double>(c.n_copy_positions) : 1.0;
  c.retained_attention_mass = n_mass ? mass / static_cast<double>(n_mass) : 1.0;
  for (auto* v :
       {&c.fr_first_divergence_mean, &c.fr_token_agreement, &c.rouge_l, &c.repetition_rate,
        &c.reference_repetition_rate, &c.output_length_ratio, &c.tokens_per_s, &c.evicted_mean}) {
    *v /= np;
  }
  for (size_t b = 0; b < n_buckets; ++b) {
    const double n = std::max<double>(1.0, static_cast<double>(cnt_b[b]));
    c.kl_by_bucket.push_back(kl_b[b] / n);
    c.top1_by_bucket.push_back(top1_b[b] / n);
  }
  return c;
}

std::string to_json(const std::vector<ConfigRecord>& records) {
  std::string out = "[\n";
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    out.append("  {");
    out.append("\"label\": ").append(quoted(r.label));
    out.append(", \"policy\": ").append(quoted(r.policy));
    out.append(", \"scope\": ").append(quoted(r.scope));
    out.append(", \"alpha\": ").append(num(r.alpha));
    out.append(", \"decode_budget\": ").append(std::to_string(r.decode_budget));
    out.append(", \"grace\": ").append(std::to_string(r.grace));
    out.append(", \"normalize\": ").append(r.normalize ? "true" : "false");
    out.append(", \"granularity\": ").append(quoted(r.granularity));
    out.append(", \"n_prompts\": ").append(std::to_string(r.n_prompts));
    out.append(", \"n_tokens\": ").append(std::to_string(r.n_tokens));
    out.append(", \"tf_top1_agreement\": ").append(num(r.tf_top1_agreement));
    out.append(", \"tf_kl_mean\": ").append(num(r.tf_kl_mean));
    out.append(", \"tf_delta_nll\": ").append(num(r.tf_delta_nll));
    out.append(", \"tf_copy_top1_agreement\": ").append(num(r.tf_copy_top1_agreement));
    out.append(", \"n_copy_positions\": ").append(std::to_string(r.n_copy_positions));
    out.append(", \"fr_first_divergence_mean\": ").append(num(r.fr_first_divergence_mean));
    out.append(", \"fr_token_agreement\": ").append(num(r.fr_token_agreement));
    out.append(", \"rouge_l\": ").append(num(r.rouge_l));
    out.append(", \"repetition_rate\": ").append(num(r.repetition_rate));
    out.append(", \"reference_repetition_rate\": ").append(num(r.reference_repetition_rate));
    out.append(", \"output_length_ratio\": ").append(num(r.output_length_ratio));
    out.append(", \"retained_attention_mass\": ").append(num(r.retained_attention_mass));
    out.append(", \"tokens_per_s\": ").append(num(r.tokens_per_s));
    out.append(", \"peak_kv_bytes\": ").append(std::to_string(r.peak_kv_bytes));
    out.append(", \"evicted_mean\": ").append(num(r.evicted_mean));
    out.append(", \"bucket\": ").append(std::to_string(r.bucket));
    out.append(", \"kl_by_bucket\": ").append(array(r.kl_by_bucket));
    out.append(", \"top1_by_bucket\": ").append(array(r.top1_by_bucket));
    out.append(", \"age_histogram\": ").append(array(r.age_histogram));
    out.append(i + 1 < records.size() ? "},\n" : "}\n");
  }
  out.append("]\n");
  return out;
}

std::string to_csv(const std::vector<ConfigRecord>& records) {
  std::string out =
      "label,policy,scope,alpha,decode_budget,grace,normalize,granularity,n_prompts,n_tokens,"
      "tf_top1_agreement,tf_kl_mean,tf_delta_nll,tf_copy_top1_agreement,n_copy_positions,"
      "fr_first_divergence_mean,fr_token_agreement,rouge_l,repetition_rate,"
      "reference_repetition_rate,output_length_ratio,retained_attention_mass,tokens_per_s,"
      "peak_kv_bytes,evicted_mean\n";
  for (const auto& r : records) {
    out.append(quoted(r.label)).append(",").append(r.policy).append(",").append(r.scope);
    out.append(",").append(num(r.alpha)).append(",").append(std::to_string(r.decode_budget));
    out.append(",").append(std::to_string(r.grace)).append(",").append(r.normalize ? "1" : "0");
    out.append(",").append(r.granularity).append(",").append(std::to_string(r.n_prompts));
    out.append(",").append(std::to_string(r.n_tokens));
    for (double v : {r.tf_top1_agreement, r.tf_kl_mean, r.tf_delta_nll, r.tf_copy_top1_agreement}) {
      out.append(",").append(num(v));
    }
    out.append(",").append(std::to_string(r.n_copy_positions));
    for (double v : {r.fr_first_divergence_mean, r.fr_token_agreement, r.rouge_l, r.repetition_rate,
                     r.reference_repetition_rate, r.output_length_ratio, r.retained_attention_mass,
                     r.tokens_per_s}) {
      out.append(",").append(num(v));
    }
    out.append(",").append(std::to_string(r.peak_kv_bytes));
    out.append(",").append(num(r.evicted_mean)).append("\n");
  }
  return out;
}

std::string to_markdown(const std::vector<ConfigRecord>& records) {
  std::string out =
      "| configuration | TF top-1 | TF KL | ΔNLL | copy top-1 | first div. | FR agree | ROUGE-L "
      "| repet. | len ratio | retained attn | tok/s | peak KV KiB |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  char buf[512];
  for (const auto& r : records) {
    std::snprintf(buf, sizeof buf,
                  "| %s | %.3f | %.4f | %.4f | %.3f | %.1f | %.3f | %.3f | %.3f | %.2f | %.3f | "
                  "%.0f | %.1f |\n",
                  r.label.c_str(), r.tf_top1_agreement, r.tf_kl_mean, r.tf_delta_nll,
                  r.tf_copy_top1_agreement, r.fr_first_divergence_mean, r.fr_token_agreement,
                  r.rouge_l, r.repetition_rate, r.output_length_ratio, r.retained_attention_mass,
                  r.tokens_per_s, static_cast<double>(r.peak_kv_bytes) / 1024.0);
    out.append(buf);
  }
  return out;
}

}  // namespace momentkv::eval
