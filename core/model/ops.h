// Scalar reference ops of the decoder block (the oracle for any fast path). Shapes in comments;
// all buffers are f32 and contiguous.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/model/model_config.h"

namespace momentkv::ops {

// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], over n elements. y may alias x.
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y);

// In-place softmax over n elements (max-subtracted, f32).
void softmax(float* x, int64_t n);

// gate[i] = silu(gate[i]) * up[i] over n elements.
void silu_mul(float* gate, const float* up, int64_t n);

// Rotation angles for RoPE: cos/sin of theta_j(pos) for j in [0, n_rot/2).
class Rope {
 public:
  // `freq_factors` (may be empty) divides each frequency, as `rope_freqs.weight` does.
  Rope(const ModelConfig& c, std::span<const float> freq_factors);
  // cs = [n_rot/2][2] (cos, sin) for position `pos`.
  void angles(int64_t pos, float* cs) const;
  // Rotates one head vector x[head_dim] in place with angles cs from angles().
  void apply(float* x, const float* cs) const;
  int32_t n_pairs() const { return n_rot_ / 2; }
  double freq(int32_t j) const { return freqs_[static_cast<size_t>(j)]; }

 private:
  int32_t n_rot_;
  RopeMode mode_;
  double pos_scale_;
  std::vector<double> freqs_;  // [n_rot/2] radians per position
};

}  // namespace momentkv::ops
