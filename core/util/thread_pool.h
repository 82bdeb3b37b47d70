// A persistent pool of worker threads for data-parallel loops. The calling thread takes part, so
// a pool of n runs n - 1 workers. Decode calls parallel_for a few hundred times per token, so a
// call allocates nothing and wakes workers that spin briefly before sleeping on a condition
// variable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace momentkv {

class ThreadPool {
 public:
  // Starts n_threads - 1 workers (n_threads >= 1; the caller of parallel_for is thread 0).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Number of threads that run a parallel_for, the caller included.
  int size() const { return n_threads_; }

  // Splits [0, n) into size() contiguous near-equal ranges and calls fn(begin, end) once for each
  // non-empty one, thread i taking the i-th range; returns when all are done and rethrows the
  // first exception thrown by fn. Calls from inside fn (nesting) run serially on the calling
  // thread; concurrent calls from different threads are serialised.
  template <typename F>
  void parallel_for(int64_t n, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    void* target = const_cast<void*>(static_cast<const void*>(std::addressof(fn)));
    run(n, target, [](void* f, int64_t begin, int64_t end) { (*static_cast<Fn*>(f))(begin, end); });
  }

 private:
  using Call = void (*)(void* fn, int64_t begin, int64_t end);

  void run(int64_t n, void* fn, Call call);
  void worker_main(int index);
  // Runs this thread's share of the current job; records an exception instead of throwing.
  void run_share(int index);

  int n_threads_;
  std::vector<std::thread> workers_;

  std::mutex call_mu_;  // one parallel_for at a time

  // The current job: written by the caller before generation_ is bumped (release).
  int64_t job_n_ = 0;
  void* job_fn_ = nullptr;
  Call job_call_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers that have not finished the current job
  std::atomic<bool> stop_{false};

  std::mutex sleep_mu_;
  std::condition_variable wake_;
  std::atomic<int> n_sleeping_{0};

  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace momentkv
