// Fidelity metrics of a compressed-cache generation against the same model with a full cache
// (DESIGN.md §6). Token sequences are ids; distributions are log-probabilities in double.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace momentkv::eval {

// out = log softmax(logits), computed in double.
void log_softmax(std::span<const float> logits, std::vector<double>& out);

// KL(p || q) = sum p_i (log p_i - log q_i) for log-probabilities log_p, log_q of equal length.
double kl_divergence(std::span<const double> log_p, std::span<const double> log_q);

// Index of the largest value (lowest index wins ties).
int32_t argmax(std::span<const float> v);

// First index where a and b differ; the shorter length when one is a prefix of the other
// (equal sequences: their length).
int32_t first_divergence(std::span<const int32_t> a, std::span<const int32_t> b);

// Share of positions i < max(|a|, |b|) where both have a token and a[i] == b[i] (1 for two empty
// sequences).
double token_agreement(std::span<const int32_t> a, std::span<const int32_t> b);

// ROUGE-L F1 of `candidate` against `reference`: LCS / |candidate| precision, LCS / |reference|
// recall, harmonic mean (1 for two empty sequences, 0 when exactly one is empty).
double rouge_l(std::span<const int32_t> candidate, std::span<const int32_t> reference);

// Share of the n-grams of `seq` that repeat an earlier n-gram of the same sequence
// (0 when seq has fewer than n + 1 tokens).
double repetition_rate(std::span<const int32_t> seq, int n = 4);

// For each position of `reference`, whether its token also occurs in `prompt` ("copy positions":
// where the continuation reuses a fact the prompt stated).
std::vector<bool> copy_positions(std::span<const int32_t> prompt,
                                 std::span<const int32_t> reference);

}  // namespace momentkv::eval
