// `tune`: the smallest decode budget (and the alpha at it) that meets a fidelity target on this
// device's own workload, from the fidelity probes the daemon stored (DESIGN.md §5, §6, §9). Pure
// logic: the caller reads the rows from SQLite.
//
// Statistics: probes are grouped by (policy, scope, alpha, decode_budget); each probe is one
// replayed request and counts once, whatever its length (requests, not tokens, are the unit the
// workload is sampled in, and tokens of one request are strongly correlated). For a group of n
// probes with per-probe values x_i, mean m and sample standard deviation s, the one-sided bounds
// at confidence c are Student-t bounds on the mean:
//   agreement_lower = m - t_{c, n-1} * s / sqrt(n),   kl_upper = m + t_{c, n-1} * s / sqrt(n).
// With n < 2 there is no bound (agreement_lower = 0, kl_upper = +infinity).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace momentkv::telemetry {

// One candidate configuration replayed for one request (a fidelity_probes row).
struct ProbeRow {
  std::string model, policy, scope;
  double alpha = 0;
  int32_t decode_budget = 0;
  int32_t tokens = 0;  // positions scored; rows with 0 are ignored
  double kl_mean = 0, top1_agreement = 0;
  int64_t time_ms = 0;
};

struct TuneTarget {
  std::optional<double> agreement;  // lower bound on mean top-1 agreement must be >= this
  std::optional<double> kl;         // upper bound on mean KL (nats) must be <= this
  int32_t min_probes = 5;           // probes a candidate needs to qualify (at least 2 are used)
  double confidence = 0.95;         // one-sided, in (0.5, 1)
};

struct TuneCandidate {
  std::string policy, scope;
  double alpha = 0;  // rounded to 1e-6 (a float 0.9 groups with 0.9)
  int32_t decode_budget = 0;
  int32_t n_probes = 0;
  double agreement_mean = 0, agreement_lower = 0;
  double kl_mean = 0, kl_upper = 0;
  bool meets = false;  // n_probes >= min_probes and every given target is met by its bound
};

struct TuneRecommendation {
  bool found = false;
  TuneCandidate chosen;              // valid when found
  std::vector<TuneCandidate> table;  // every candidate, by budget, alpha, policy, scope
  std::string explanation;           // why this one, or why none and what is closest
  // The workload (generated tokens per request).
  int64_t requests = 0;
  double generated_p50 = 0, generated_p95 = 0;  // linear interpolation between order statistics
  double share_over_budget = 0;  // share of requests that generated more than chosen's budget
};

// The recommendation for the probes of one model (rows of several models: found = false). Among
// candidates that meet the target, the smallest decode budget wins; at that budget the highest
// mean agreement (lowest mean KL when only a KL target is given), then the other metric. Rows of
// policy `full` are the reference, not candidates, and are ignored. Never throws.
TuneRecommendation recommend(const std::vector<ProbeRow>& probes,
                             const std::vector<int32_t>& generated_tokens_per_request,
                             const TuneTarget& target);

// The one-sided Student-t quantile t_{confidence, df} (df >= 1, confidence in (0, 1)).
double student_t_quantile(double confidence, int64_t df);

}  // namespace momentkv::telemetry
