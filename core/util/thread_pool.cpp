#include "core/util/thread_pool.h"

#include <chrono>

#include "core/util/error.h"

namespace momentkv {

namespace {

// How long an idle worker spins before it sleeps: long enough to bridge the gap between two
// kernels of one decode step, short enough not to burn a core between requests.
constexpr auto kSpinTime = std::chrono::microseconds(200);

// The pool whose job this thread is running (nested parallel_for calls run inline).
thread_local const ThreadPool* tl_running = nullptr;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  check(n_threads >= 1, "ThreadPool needs at least one thread, got " + std::to_string(n_threads));
  workers_.reserve(n_threads - 1);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_share(int index) {
  const int64_t begin = job_n_ * index / n_threads_;
  const int64_t end = job_n_ * (index + 1) / n_threads_;
  if (begin >= end) return;
  try {
    job_call_(job_fn_, begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::run(int64_t n, void* fn, Call call) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1 || tl_running == this) {
    call(fn, 0, n);
    return;
  }
  std::lock_guard<std::mutex> call_lock(call_mu_);
  tl_running = this;
  job_n_ = n;
  job_fn_ = fn;
  job_call_ = call;
  error_ = nullptr;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: pairs with the n_sleeping_ check in worker_main
  if (n_sleeping_.load() > 0) {
    { std::lock_guard<std::mutex> lock(sleep_mu_); }
    wake_.notify_all();
  }
  run_share(0);
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  tl_running = nullptr;
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadPool::worker_main(int index) {
  tl_running = this;
  uint64_t seen = 0;
  while (true) {
    // Spin for a while, then sleep until the generation moves.
    uint64_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) {
      const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
      for (int spins = 0; g == seen; ++spins) {
        cpu_relax();
        g = generation_.load(std::memory_order_acquire);
        if ((spins & 255) == 255 && std::chrono::steady_clock::now() > deadline) break;
      }
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(sleep_mu_);
      n_sleeping_.fetch_add(1);  // seq_cst: either we see the new generation or run() sees us
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      n_sleeping_.fetch_sub(1);
      g = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = g;
    run_share(index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace momentkv
