#include "kernels/cpu/cpu_backend.h"

#include <thread>

#include "core/util/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"

namespace momentkv::kernels {

int default_thread_count() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

CpuBackend::CpuBackend(int n_threads) : pool_(n_threads > 0 ? n_threads : default_thread_count()) {}

void CpuBackend::matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                        MatmulPrecision precision) {
  kernels::matmul(pool_, w.type, w.data, w.n_in, w.n_out, x, n_tokens, y,
                  precision == MatmulPrecision::kExact ? MatmulMode::kExact : MatmulMode::kFast);
}

void CpuBackend::get_rows(const WeightView& w, const int32_t* ids, int64_t n_ids, float* out) {
  for (int64_t k = 0; k < n_ids; ++k) {
    check(ids[k] >= 0 && ids[k] < w.n_out, [&] {
      return "row " + std::to_string(ids[k]) + " of '" + w.name + "' is out of range [0, " +
             std::to_string(w.n_out) + ")";
    });
  }
  kernels::get_rows(w.type, w.data, w.n_in, ids, n_ids, out);
}

void CpuBackend::attention(const AttentionArgs& args) {
  kernels::attention(pool_, args);
}

void CpuBackend::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  pool_.parallel_for(n, fn);
}

}  // namespace momentkv::kernels
