// A decode step's kernels as one CUDA graph. A step of a small model is a few hundred short
// kernels; launched one by one, each costs the host several microseconds, so on a fast GPU the
// launches rather than the weights' bytes can set the pace. A graph is launched with one call.
// Its kernels' arguments change from step to step (slots in use, positions), so each step is
// recorded afresh by stream capture and the previous step's executable graph is updated in place
// with the new arguments; it is instantiated anew only when the work changed shape (the first
// step, or the first one that evicts).
#pragma once

#include <cstdint>
#include <functional>

namespace momentkv::kernels::cuda {

class StepGraph {
 public:
  StepGraph() = default;
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Records what `enqueue` puts on `stream` (a stream made by cudaStreamCreate*, not the legacy
  // default stream; `enqueue` may only enqueue device work there) and runs it there as a graph,
  // without waiting. Throws Error when recording, instantiating or launching fails: the stream is
  // then no longer capturing and none of `enqueue`'s work has run.
  void run(void* stream, const std::function<void()>& enqueue);
  // Drops the executable graph (the next run instantiates one).
  void reset();

  int64_t runs() const { return runs_; }
  // Runs that updated the previous executable graph in place (the others instantiated one).
  int64_t updates() const { return updates_; }

 private:
  void* exec_ = nullptr;  // cudaGraphExec_t
  int64_t runs_ = 0, updates_ = 0;
};

}  // namespace momentkv::kernels::cuda
