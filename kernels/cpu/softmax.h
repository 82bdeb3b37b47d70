// The exponential and the sum of attention's softmax, shared by every attention path so that
// they agree bit for bit: the per-head path (scalar, NEON) calls the scalar functions here, the
// AVX2 grouped path (avx2/attention.cpp) runs the same operations eight lanes at a time.
//
// exp_approx: e^x = 2^n e^r with n = nearest(x log2 e), r = x - n ln 2 (ln 2 in two parts, so r
// is exact to ~1 ulp), e^r ~ 1 + r + r^2 P(r) with P the degree-5 minimax polynomial of the Cephes
// library's expf (coefficients below); relative error under 2 ulp for x in [-86, 88]. Inputs
// below -86 (and -inf, and NaN) give 0: softmax's shifted scores are <= 0, and e^-86 ~ 4e-38 is
// nothing next to the maximum's 1. Every step is an IEEE operation or an fma (correctly rounded
// wherever it runs), so the scalar and vector forms give the same bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace momentkv::kernels::softmax {

inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;  // ln 2 = kLn2Hi + kLn2Lo
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
inline constexpr float kMinX = -86.0f;
inline constexpr float kMaxX = 88.0f;
inline constexpr int kLanes = 8;  // the partial sums of exp_shifted_sum

// The functions live in an unnamed namespace: the files that include this one are compiled for
// different instruction sets (scalar, AVX2, AVX-512), and each must call its own copy, not one the
// linker picked from another file.
namespace {

inline float exp_approx(float x) {
  if (!(x > kMinX)) return 0.0f;
  x = std::fmin(x, kMaxX);
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = kP[0];
  for (int i = 1; i < 6; ++i) p = std::fma(p, r, kP[i]);
  const float y = std::fma(p, r * r, r) + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &y, sizeof bits);
  bits += static_cast<int32_t>(n) * (1 << 23);
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// The fixed order in which the eight partial sums are added (that of an AVX2 horizontal sum).
inline float sum_lanes(const float lane[kLanes]) {
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

// p[s] = exp_approx(p[s] - mx) for s < n; returns their sum, element s added (in order) into
// partial sum s % 8, the partial sums then added by sum_lanes.
inline float exp_shifted_sum(float* p, int32_t n, float mx) {
  float lane[kLanes] = {};
  for (int32_t s = 0; s < n; ++s) {
    p[s] = exp_approx(p[s] - mx);
    lane[s % kLanes] += p[s];
  }
  return sum_lanes(lane);
}

}  // namespace
}  // namespace momentkv::kernels::softmax
