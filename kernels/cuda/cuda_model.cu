// The shared device model (cuda_model.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "core/util/error.h"
#include "kernels/cuda/cuda_model.h"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/status.h"

namespace momentkv::kernels::cuda {

namespace {

uint64_t floats(int64_t rows, int64_t cols) {
  return static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) * sizeof(float);
}

// Calls f(pointer, bytes) for every buffer in a fixed order: to size the arena, then to carve it.
template <class F>
void for_each_buffer(ForwardBuffers& b, const ModelConfig& c, int64_t nb, F&& f) {
  f(b.x, floats(nb, c.n_embd));
  f(b.xn, floats(nb, c.n_embd));
  f(b.q, floats(nb, c.n_embd_q()));
  f(b.k, floats(nb, c.n_embd_kv()));
  f(b.v, floats(nb, c.n_embd_kv()));
  f(b.attn, floats(nb, c.n_embd_q()));
  f(b.tmp, floats(nb, c.n_embd));
  f(b.gate, floats(nb, c.n_ff));
  f(b.up, floats(nb, c.n_ff));
  f(b.logits, floats(nb, c.n_vocab));
  f(b.cs, floats(nb, std::max(c.n_rot, 1)));
  f(b.tokens, static_cast<uint64_t>(nb) * sizeof(int32_t));
  f(b.pos, static_cast<uint64_t>(nb) * sizeof(int32_t));
  f(b.next, sizeof(int32_t));
}

int64_t gemm_max_n_in(const ModelConfig& c) {
  return std::max({c.n_embd, c.n_embd_q(), c.n_ff});
}

int32_t clamp_batch(int32_t n_batch) {
  return std::clamp(n_batch, 1, 4096);
}

}  // namespace

struct CudaModel::State {
  const Model& model;
  int32_t n_batch;
  int device;
  DeviceInfo info;
  std::unique_ptr<DeviceStream> stream;  // made once the device is current
  std::unique_ptr<DeviceArena> arena;
  std::unique_ptr<DeviceModel> weights;
  std::unique_ptr<Gemm> gemm;
  ForwardBuffers buffers;

  State(const Model& m, int32_t nb, int dev) : model(m), n_batch(clamp_batch(nb)), device(dev) {}
};

std::optional<std::string> CudaModel::unsupported(const Model& model) {
  const ModelConfig& c = model.config();
  const int64_t group_bytes = int64_t{4} * (c.n_head / c.n_head_kv) * c.head_dim;
  if (c.head_dim > 256 || group_bytes > 48 * 1024) {
    return "the CUDA attention kernel takes heads of at most 256 and 48 KiB of query heads per KV "
           "head (this model: " +
           std::to_string(c.head_dim) + ", " + std::to_string(group_bytes) + " bytes)";
  }
  auto readable = [](const WeightView& w) { return matvec_supports(w.type); };
  const WeightView* bad = nullptr;
  for (const WeightView* w : {&model.token_embd(), &model.output()}) {
    if (!bad && !readable(*w)) bad = w;
  }
  for (int32_t l = 0; l < c.n_layer && !bad; ++l) {
    const LayerWeights& w = model.layer(l);
    for (const WeightView* v : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down}) {
      if (!bad && !readable(*v)) bad = v;
    }
  }
  if (bad) {
    return "the CUDA kernels do not read " + type_name(bad->type) + " weights (" + bad->name +
           "); F32, F16, Q4_0, Q8_0, Q4_K and Q6_K run on the GPU";
  }
  return std::nullopt;
}

uint64_t CudaModel::device_bytes_needed(const Model& model, int32_t n_batch) {
  const ModelConfig& c = model.config();
  const int32_t nb = clamp_batch(n_batch);
  uint64_t total = DeviceModel::bytes_needed(model) + Gemm::bytes_needed(gemm_max_n_in(c), nb);
  ForwardBuffers b;
  for_each_buffer(b, c, nb, [&](auto*&, uint64_t bytes) { total += device_aligned(bytes); });
  return total;
}

CudaModel::CudaModel(const Model& model, int32_t n_batch, int device)
    : s_(std::make_unique<State>(model, n_batch, device)) {
  if (auto err = unsupported(model)) throw Error(*err);
  const int n_devices = device_count();
  check(n_devices > 0, "no CUDA device: the CUDA backend needs an NVIDIA GPU and its driver");
  check(device >= 0 && device < n_devices, "no CUDA device " + std::to_string(device) + " (" +
                                               std::to_string(n_devices) + " present)");
  State& s = *s_;
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  s.info = device_info(device);
  s.stream = std::make_unique<DeviceStream>();
  s.arena = std::make_unique<DeviceArena>(device_bytes_needed(model, s.n_batch));
  s.weights = std::make_unique<DeviceModel>(model, *s.arena);
  for_each_buffer(s.buffers, model.config(), s.n_batch, [&](auto*& p, uint64_t bytes) {
    p = static_cast<std::remove_reference_t<decltype(p)>>(s.arena->allocate(bytes));
  });
  s.gemm = std::make_unique<Gemm>(*s.arena, gemm_max_n_in(model.config()), s.n_batch);
}

CudaModel::~CudaModel() = default;

const Model& CudaModel::model() const {
  return s_->model;
}
int32_t CudaModel::n_batch() const {
  return s_->n_batch;
}
int CudaModel::device_index() const {
  return s_->device;
}
const DeviceInfo& CudaModel::info() const {
  return s_->info;
}
const DeviceModel& CudaModel::weights() const {
  return *s_->weights;
}
Gemm& CudaModel::gemm() {
  return *s_->gemm;
}
const ForwardBuffers& CudaModel::buffers() const {
  return s_->buffers;
}
void* CudaModel::stream() const {
  return s_->stream->get();
}
uint64_t CudaModel::device_bytes() const {
  return s_->arena->capacity();
}

}  // namespace momentkv::kernels::cuda
