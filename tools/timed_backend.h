// A Backend that passes every call on to another and adds up the wall time spent in attention,
// so that `momentkv bench --context-pair` can split a decode step's time into attention (which
// grows with the resident tokens) and the rest (which should not).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "core/engine/backend.h"

namespace momentkv::tools {

class TimedBackend final : public Backend {
 public:
  explicit TimedBackend(Backend& inner) : inner_(inner) {}

  const char* name() const override { return inner_.name(); }
  int n_threads() const override { return inner_.n_threads(); }
  void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y,
              MatmulPrecision precision) override {
    inner_.matmul(w, x, n_tokens, y, precision);
  }
  void get_rows(const WeightView& w, const int32_t* ids, int64_t n_ids, float* out) override {
    inner_.get_rows(w, ids, n_ids, out);
  }
  void attention(const AttentionArgs& args) override {
    const auto t0 = std::chrono::steady_clock::now();
    inner_.attention(args);
    attention_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) override {
    inner_.parallel_for(n, fn);
  }

  // Seconds spent in attention since the last take, and starts counting again.
  double take_attention_seconds() {
    const double s = attention_s_;
    attention_s_ = 0;
    return s;
  }

 private:
  Backend& inner_;
  double attention_s_ = 0;
};

}  // namespace momentkv::tools
