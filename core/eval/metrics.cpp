#include "core/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace momentkv::eval {

void log_softmax(std::span<const float> logits, std::vector<double>& out) {
  out.resize(logits.size());
  double mx = -INFINITY;
  for (float v : logits) mx = std::max(mx, static_cast<double>(v));
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  const double lse = mx + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - lse;
}

double kl_divergence(std::span<const double> log_p, std::span<const double> log_q) {
  double kl = 0.0;
  for (size_t i = 0; i < log_p.size(); ++i) {
    const double p = std::exp(log_p[i]);
    if (p > 0.0) kl += p * (log_p[i] - log_q[i]);
  }
  return std::max(kl, 0.0);  // rounding can leave a tiny negative for identical inputs
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

int32_t first_divergence(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int32_t>(i);
}

double token_agreement(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::max(a.size(), b.size());
  if (n == 0) return 1.0;
  size_t same = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) same += a[i] == b[i];
  return static_cast<double>(same) / static_cast<double>(n);
}

double rouge_l(std::span<const int32_t> candidate, std::span<const int32_t> reference) {
  if (candidate.empty() && reference.empty()) return 1.0;
  if (candidate.empty() || reference.empty()) return 0.0;
  // LCS by dynamic programming with two rows: O(|c| |r|) time, O(|r|) memory.
  std::vector<int32_t> prev(reference.size() + 1, 0), cur(reference.size() + 1, 0);
  for (size_t i = 1; i <= candidate.size(); ++i) {
    for (size_t j = 1; j <= reference.size(); ++j) {
      cur[j] =
          candidate[i - 1] == reference[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  const double lcs = prev[reference.size()];
  if (lcs == 0) return 0.0;
  const double p = lcs / static_cast<double>(candidate.size());
  const double r = lcs / static_cast<double>(reference.size());
  return 2.0 * p * r / (p + r);
}

double repetition_rate(std::span<const int32_t> seq, int n) {
  if (n < 1 || seq.size() < static_cast<size_t>(n) + 1) return 0.0;
  std::unordered_set<uint64_t> seen;
  size_t total = 0, repeated = 0;
  for (size_t i = 0; i + static_cast<size_t>(n) <= seq.size(); ++i) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the n ids
    for (int k = 0; k < n; ++k) {
      h ^= static_cast<uint32_t>(seq[i + static_cast<size_t>(k)]);
      h *= 1099511628211ull;
    }
    ++total;
    if (!seen.insert(h).second) ++repeated;
  }
  return static_cast<double>(repeated) / static_cast<double>(total);
}

std::vector<bool> copy_positions(std::span<const int32_t> prompt,
                                 std::span<const int32_t> reference) {
  const std::unordered_set<int32_t> in_prompt(prompt.begin(), prompt.end());
  std::vector<bool> out(reference.size());
  for (size_t i = 0; i < reference.size(); ++i) out[i] = in_prompt.count(reference[i]) > 0;
  return out;
}

}  // namespace momentkv::eval
