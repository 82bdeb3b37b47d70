#include "core/model/ops.h"

#include <cmath>
#include <numbers>

#include "core/util/error.h"

namespace momentkv::ops {

void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void softmax(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

Rope::Rope(const ModelConfig& c, std::span<const float> freq_factors)
    : n_rot_(c.n_rot), mode_(c.rope_mode), pos_scale_(1.0 / c.rope_linear_scale) {
  const int32_t n = n_rot_ / 2;
  check(freq_factors.empty() || static_cast<int32_t>(freq_factors.size()) == n,
        "rope_freqs has " + std::to_string(freq_factors.size()) + " entries, expected " +
            std::to_string(n));
  freqs_.resize(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) {
    double f = std::pow(static_cast<double>(c.rope_freq_base), -2.0 * j / n_rot_);
    if (c.rope_l3_factor > 0.0f) {
      // Llama 3.1 scaling: long wavelengths are slowed by `factor`, short ones kept, and the band
      // between the two cut-offs is interpolated.
      const double orig = c.rope_l3_original_ctx;
      const double low_wavelen = orig / c.rope_l3_low_freq_factor;
      const double high_wavelen = orig / c.rope_l3_high_freq_factor;
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f /= c.rope_l3_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (orig / wavelen - c.rope_l3_low_freq_factor) /
                              (c.rope_l3_high_freq_factor - c.rope_l3_low_freq_factor);
        f = (1.0 - smooth) * f / c.rope_l3_factor + smooth * f;
      }
    }
    if (!freq_factors.empty()) f /= freq_factors[static_cast<size_t>(j)];
    freqs_[static_cast<size_t>(j)] = f;
  }
}

void Rope::angles(int64_t pos, float* cs) const {
  const double p = static_cast<double>(pos) * pos_scale_;
  for (size_t j = 0; j < freqs_.size(); ++j) {
    const double theta = p * freqs_[j];
    cs[2 * j] = static_cast<float>(std::cos(theta));
    cs[2 * j + 1] = static_cast<float>(std::sin(theta));
  }
}

void Rope::apply(float* x, const float* cs) const {
  const int32_t n = n_rot_ / 2;
  for (int32_t j = 0; j < n; ++j) {
    const int32_t a = mode_ == RopeMode::kNormal ? 2 * j : j;
    const int32_t b = mode_ == RopeMode::kNormal ? 2 * j + 1 : j + n;
    const float c = cs[2 * j], s = cs[2 * j + 1];
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

}  // namespace momentkv::ops
