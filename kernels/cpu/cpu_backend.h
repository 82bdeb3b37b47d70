// The CPU backend: the reference for every other backend. Matrix products run on the kernels of
// the best instruction set available (AVX2/FMA, NEON, or scalar) across a persistent thread pool.
#pragma once

#include "core/engine/backend.h"
#include "core/util/thread_pool.h"
#include "kernels/cpu/type_kernels.h"

namespace momentkv::kernels {

class CpuBackend final : public Backend {
 public:
  // n_threads <= 0: one per online CPU.
  explicit CpuBackend(int n_threads);
  const char* name() const override { return "cpu"; }
  int n_threads() const override { return pool_.size(); }
  Isa isa() const { return best_isa(); }
  void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y,
              MatmulPrecision precision) override;
  void get_rows(const WeightView& w, const int32_t* ids, int64_t n_ids, float* out) override;
  void attention(const AttentionArgs& args) override;
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) override;
  ThreadPool& pool() { return pool_; }

 private:
  ThreadPool pool_;
};

// Threads to use by default: the number of online CPUs.
int default_thread_count();

}  // namespace momentkv::kernels
