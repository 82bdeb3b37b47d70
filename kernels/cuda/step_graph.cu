// StepGraph (step_graph.h): stream capture, then cudaGraphExecUpdate or cudaGraphInstantiate.
#include <cuda_runtime.h>

#include "kernels/cuda/status.h"
#include "kernels/cuda/step_graph.h"

namespace momentkv::kernels::cuda {

namespace {

// Ends a capture that `enqueue` left by throwing, dropping what was recorded.
void abandon_capture(cudaStream_t stream) {
  cudaGraph_t partial = nullptr;
  if (cudaStreamEndCapture(stream, &partial) == cudaSuccess && partial != nullptr) {
    cudaGraphDestroy(partial);
  }
  cudaGetLastError();  // capture errors are not sticky; clear the last one
}

// The graph recorded from `enqueue` on `stream`.
cudaGraph_t capture(cudaStream_t stream, const std::function<void()>& enqueue) {
  // Thread-local mode: only this thread's calls are checked against the capture, so another
  // thread's work on another stream (a second model in the daemon) is not disturbed.
  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal),
             "starting a CUDA graph capture");
  try {
    enqueue();
  } catch (...) {
    abandon_capture(stream);
    throw;
  }
  cudaGraph_t graph = nullptr;
  check_cuda(cudaStreamEndCapture(stream, &graph), "ending a CUDA graph capture");
  return graph;
}

}  // namespace

StepGraph::~StepGraph() {
  reset();
}

void StepGraph::reset() {
  if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  exec_ = nullptr;
}

void StepGraph::run(void* stream, const std::function<void()>& enqueue) {
  const auto s = static_cast<cudaStream_t>(stream);
  cudaGraph_t graph = capture(s, enqueue);
  bool updated = false;
  if (exec_ != nullptr) {
    cudaGraphExecUpdateResultInfo info{};
    updated = cudaGraphExecUpdate(static_cast<cudaGraphExec_t>(exec_), graph, &info) == cudaSuccess;
    if (!updated) {
      cudaGetLastError();  // a refused update (the work changed shape) is not an error
      reset();
    }
  }
  if (!updated) {
    cudaGraphExec_t exec = nullptr;
    const cudaError_t status = cudaGraphInstantiateWithFlags(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check_cuda(status, "instantiating a CUDA graph");
    exec_ = exec;
  } else {
    cudaGraphDestroy(graph);
  }
  check_cuda(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), s), "launching a CUDA graph");
  ++runs_;
  if (updated) ++updates_;
}

}  // namespace momentkv::kernels::cuda
