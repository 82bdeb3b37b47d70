#include "daemon/telemetry/tuner.h"

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <tuple>

namespace momentkv::telemetry {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Key {
  std::string policy, scope;
  int64_t alpha_micro;
  int32_t budget;
  bool operator<(const Key& o) const {
    return std::tie(budget, alpha_micro, policy, scope) <
           std::tie(o.budget, o.alpha_micro, o.policy, o.scope);
  }
};

struct Moments {
  double mean = 0, sd = 0;  // sd: sample standard deviation (0 when n < 2)
};

Moments moments(const std::vector<double>& x) {
  Moments m;
  if (x.empty()) return m;
  for (double v : x) m.mean += v;
  m.mean /= static_cast<double>(x.size());
  if (x.size() < 2) return m;
  double ss = 0;
  for (double v : x) ss += (v - m.mean) * (v - m.mean);
  m.sd = std::sqrt(ss / static_cast<double>(x.size() - 1));
  return m;
}

// Half-width of the one-sided bound on the mean of n values with sample sd `sd`.
double margin(double sd, int64_t n, double confidence) {
  if (n < 2) return kInf;
  return student_t_quantile(confidence, n - 1) * sd / std::sqrt(static_cast<double>(n));
}

double percentile(std::vector<int32_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

std::string name(const TuneCandidate& c) {
  std::string s = c.policy + "/" + c.scope;
  if (c.policy == "moment") s += " alpha " + fmt("%g", c.alpha);
  return s + " decode_budget " + std::to_string(c.decode_budget);
}

// Whether the point estimates (means) meet every given target.
bool means_meet(const TuneCandidate& c, const TuneTarget& t) {
  return (!t.agreement || c.agreement_mean >= *t.agreement) && (!t.kl || c.kl_mean <= *t.kl);
}

// Probes the candidate would need in all for its bounds to meet the target if its mean and spread
// held; nullopt when its means do not meet the target (more probes cannot help).
std::optional<int64_t> probes_for(const TuneCandidate& c, double sd_agree, double sd_kl,
                                  const TuneTarget& t) {
  if (!means_meet(c, t)) return std::nullopt;
  const int64_t floor_n = std::max<int64_t>({c.n_probes, t.min_probes, 2});
  for (int64_t n = floor_n; n <= 1000000; n = n < 1024 ? n + 1 : n + n / 64) {
    const bool a =
        !t.agreement || c.agreement_mean - margin(sd_agree, n, t.confidence) >= *t.agreement;
    const bool k = !t.kl || c.kl_mean + margin(sd_kl, n, t.confidence) <= *t.kl;
    if (a && k) return n;
  }
  return std::nullopt;
}

std::string describe_bounds(const TuneCandidate& c, const TuneTarget& t) {
  const std::string conf = fmt("%g", t.confidence * 100) + "%";
  std::string s;
  if (t.agreement || !t.kl) {
    s += "agreement " + fmt("%.4f", c.agreement_mean) + " (" + conf + " lower bound " +
         fmt("%.4f", c.agreement_lower) + ")";
  }
  if (t.kl) {
    if (!s.empty()) s += ", ";
    s += "KL " + fmt("%.4g", c.kl_mean) + " (" + conf + " upper bound " +
         (std::isinf(c.kl_upper) ? std::string("none") : fmt("%.4g", c.kl_upper)) + ")";
  }
  return s + " over " + std::to_string(c.n_probes) + " probe" + (c.n_probes == 1 ? "" : "s");
}

std::string describe_target(const TuneTarget& t) {
  std::string s;
  if (t.agreement) s += "top-1 agreement >= " + fmt("%g", *t.agreement);
  if (t.kl) s += std::string(s.empty() ? "" : " and ") + "KL <= " + fmt("%g", *t.kl);
  return s + " at " + fmt("%g", t.confidence * 100) + "% confidence with at least " +
         std::to_string(t.min_probes) + " probes";
}

// Whether a ranks before b among candidates of the same budget.
bool better(const TuneCandidate& a, const TuneCandidate& b, const TuneTarget& t) {
  if (t.agreement || !t.kl) {
    if (a.agreement_mean != b.agreement_mean) return a.agreement_mean > b.agreement_mean;
    return a.kl_mean < b.kl_mean;
  }
  if (a.kl_mean != b.kl_mean) return a.kl_mean < b.kl_mean;
  return a.agreement_mean > b.agreement_mean;
}

}  // namespace

double student_t_quantile(double confidence, int64_t df) {
  const boost::math::students_t_distribution<double> dist(static_cast<double>(df));
  return boost::math::quantile(dist, confidence);
}

TuneRecommendation recommend(const std::vector<ProbeRow>& probes,
                             const std::vector<int32_t>& generated_tokens_per_request,
                             const TuneTarget& target) {
  TuneRecommendation rec;
  rec.requests = static_cast<int64_t>(generated_tokens_per_request.size());
  rec.generated_p50 = percentile(generated_tokens_per_request, 0.50);
  rec.generated_p95 = percentile(generated_tokens_per_request, 0.95);
  if (!target.agreement && !target.kl) {
    rec.explanation = "no target: give an agreement and/or a KL target";
    return rec;
  }
  if (!(target.confidence > 0.5 && target.confidence < 1.0)) {
    rec.explanation = "confidence " + fmt("%g", target.confidence) + " is not in (0.5, 1)";
    return rec;
  }
  std::set<std::string> models;
  std::map<Key, std::pair<std::vector<double>, std::vector<double>>> groups;  // agreement, KL
  for (const auto& p : probes) {
    if (p.tokens <= 0 || p.policy == "full") continue;
    models.insert(p.model);
    auto& g = groups[Key{p.policy, p.scope, std::llround(p.alpha * 1e6), p.decode_budget}];
    g.first.push_back(p.top1_agreement);
    g.second.push_back(p.kl_mean);
  }
  if (models.size() > 1) {
    std::string list;
    for (const auto& m : models) list += (list.empty() ? "" : ", ") + m;
    rec.explanation = "probes of " + std::to_string(models.size()) + " models (" + list +
                      "): recommend for one model's probes at a time";
    return rec;
  }
  if (groups.empty()) {
    rec.explanation = "no fidelity probes of a compressing configuration yet";
    return rec;
  }

  std::vector<Moments> sd_agree, sd_kl;  // parallel to rec.table
  for (const auto& [key, values] : groups) {
    TuneCandidate c;
    c.policy = key.policy;
    c.scope = key.scope;
    c.alpha = static_cast<double>(key.alpha_micro) / 1e6;
    c.decode_budget = key.budget;
    c.n_probes = static_cast<int32_t>(values.first.size());
    const Moments a = moments(values.first), k = moments(values.second);
    c.agreement_mean = a.mean;
    c.agreement_lower = std::max(0.0, a.mean - margin(a.sd, c.n_probes, target.confidence));
    c.kl_mean = k.mean;
    c.kl_upper = k.mean + margin(k.sd, c.n_probes, target.confidence);
    c.meets = c.n_probes >= std::max(target.min_probes, 2) &&
              (!target.agreement || c.agreement_lower >= *target.agreement) &&
              (!target.kl || c.kl_upper <= *target.kl);
    rec.table.push_back(c);
    sd_agree.push_back(a);
    sd_kl.push_back(k);
  }

  const TuneCandidate* best = nullptr;
  for (const auto& c : rec.table) {
    if (!c.meets) continue;
    if (!best || c.decode_budget < best->decode_budget ||
        (c.decode_budget == best->decode_budget && better(c, *best, target))) {
      best = &c;
    }
  }
  const std::string goal = describe_target(target);
  if (best) {
    rec.found = true;
    rec.chosen = *best;
    int64_t over = 0;
    for (int32_t g : generated_tokens_per_request) over += g > best->decode_budget;
    rec.share_over_budget =
        rec.requests > 0 ? static_cast<double>(over) / static_cast<double>(rec.requests) : 0.0;
    rec.explanation = name(*best) + " is the smallest budget that meets " + goal + ": " +
                      describe_bounds(*best, target) + ".";
    // The largest probed budget below it, to show why it was not chosen.
    const TuneCandidate* below = nullptr;
    for (const auto& c : rec.table) {
      if (c.decode_budget < best->decode_budget &&
          (!below || c.decode_budget > below->decode_budget ||
           (c.decode_budget == below->decode_budget && better(c, *below, target)))) {
        below = &c;
      }
    }
    if (below) {
      rec.explanation += " The best at the next smaller budget, " + name(*below) +
                         ", does not: " + describe_bounds(*below, target) + ".";
    }
    if (rec.requests == 0) {
      rec.explanation += " No requests recorded: the share it would act on is unknown.";
    } else {
      rec.explanation += " " + fmt("%.0f", rec.share_over_budget * 100) + "% of " +
                         std::to_string(rec.requests) + " requests generated more than " +
                         std::to_string(best->decode_budget) + " tokens (p50 " +
                         fmt("%g", rec.generated_p50) + ", p95 " + fmt("%g", rec.generated_p95) +
                         "): compression acts on those.";
    }
    return rec;
  }

  // Nothing meets. Closest: among candidates whose means meet, the one needing the fewest more
  // probes (then the smaller budget); else the best mean.
  size_t closest = rec.table.size();
  int64_t closest_need = 0;
  for (size_t i = 0; i < rec.table.size(); ++i) {
    const auto need = probes_for(rec.table[i], sd_agree[i].sd, sd_kl[i].sd, target);
    if (!need) continue;
    const int64_t more = *need - rec.table[i].n_probes;
    if (closest == rec.table.size() || more < closest_need) {
      closest = i;
      closest_need = more;
    }
  }
  rec.explanation = "no configuration meets " + goal + ". ";
  if (closest < rec.table.size()) {
    const TuneCandidate& c = rec.table[closest];
    rec.explanation += "Closest: " + name(c) + " with " + describe_bounds(c, target) +
                       "; its mean meets the target, and about " + std::to_string(closest_need) +
                       " more probe" + (closest_need == 1 ? "" : "s") +
                       " would be needed if its mean and spread hold.";
    return rec;
  }
  size_t top = 0;
  for (size_t i = 1; i < rec.table.size(); ++i) {
    const TuneCandidate& a = rec.table[i];
    const TuneCandidate& b = rec.table[top];
    const bool by_agreement = target.agreement.has_value();
    if (by_agreement ? a.agreement_mean > b.agreement_mean : a.kl_mean < b.kl_mean) top = i;
  }
  rec.explanation += "No candidate's mean meets it; the best is " + name(rec.table[top]) +
                     " with " + describe_bounds(rec.table[top], target) +
                     ": probe larger decode budgets.";
  return rec;
}

}  // namespace momentkv::telemetry
