// Weights to the device (device_model.h). bytes_needed and the constructor walk the tensors in
// the same order through one function, so the arena is sized exactly for what is copied.
#include <string>

#include "core/util/error.h"
#include "kernels/cuda/device_model.h"

namespace momentkv::kernels::cuda {

namespace {

// Calls put(host pointer, bytes) for every tensor to copy, in a fixed order, and returns the
// device pointers through the set callbacks.
template <class Put>
void walk(const Model& model, Put&& put, DeviceWeight* embd, DeviceWeight* out, const float** norm,
          std::vector<DeviceLayer>* layers) {
  auto weight = [&](const WeightView& w, DeviceWeight* d) {
    const void* p = put(w.data, w.n_bytes());
    if (d) *d = DeviceWeight{w.type, w.n_in, w.n_out, p};
  };
  auto floats = [&](const std::vector<float>& v, const float** d) {
    if (v.empty()) return;
    const void* p = put(v.data(), v.size() * sizeof(float));
    if (d) *d = static_cast<const float*>(p);
  };
  weight(model.token_embd(), embd);
  if (model.output().data == model.token_embd().data) {
    if (out && embd)
      *out =
          DeviceWeight{model.output().type, model.output().n_in, model.output().n_out, embd->data};
  } else {
    weight(model.output(), out);
  }
  floats(model.output_norm(), norm);
  for (int32_t i = 0; i < model.config().n_layer; ++i) {
    const LayerWeights& w = model.layer(i);
    DeviceLayer* d = layers ? &(*layers)[static_cast<size_t>(i)] : nullptr;
    floats(w.attn_norm, d ? &d->attn_norm : nullptr);
    floats(w.ffn_norm, d ? &d->ffn_norm : nullptr);
    floats(w.bq, d ? &d->bq : nullptr);
    floats(w.bk, d ? &d->bk : nullptr);
    floats(w.bv, d ? &d->bv : nullptr);
    weight(w.wq, d ? &d->wq : nullptr);
    weight(w.wk, d ? &d->wk : nullptr);
    weight(w.wv, d ? &d->wv : nullptr);
    weight(w.wo, d ? &d->wo : nullptr);
    weight(w.w_gate, d ? &d->w_gate : nullptr);
    weight(w.w_up, d ? &d->w_up : nullptr);
    weight(w.w_down, d ? &d->w_down : nullptr);
  }
}

}  // namespace

uint64_t DeviceModel::bytes_needed(const Model& model) {
  uint64_t total = 0;
  walk(
      model,
      [&](const void*, uint64_t bytes) -> const void* {
        total += device_aligned(bytes);
        return nullptr;
      },
      nullptr, nullptr, nullptr, nullptr);
  return total;
}

DeviceModel::DeviceModel(const Model& model, DeviceArena& arena)
    : layers_(static_cast<size_t>(model.config().n_layer)) {
  walk(
      model,
      [&](const void* host, uint64_t bytes) -> const void* {
        void* d = arena.allocate(bytes);
        copy_to_device(d, host, bytes);
        return d;
      },
      &token_embd_, &output_, &output_norm_, &layers_);
}

}  // namespace momentkv::kernels::cuda
