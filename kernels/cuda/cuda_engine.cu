// The CUDA engine (cuda_engine.h). The host keeps what every lane shares — slots in use, the
// prompt's share, the decode step — which is all a step needs to launch its kernels; the device
// keeps which token each slot holds and its score, and chooses evictions itself. Every layer
// appends one slot and a Moment-KV layer over budget frees one, so the count stays the same in
// every lane and the host knows it without asking.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/kv/kv_cache.h"
#include "core/model/ops.h"
#include "core/util/error.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_engine.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/get_rows.h"
#include "kernels/cuda/kv_update.h"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/status.h"
#include "kernels/cuda/step_graph.h"

namespace momentkv::kernels::cuda {

namespace {

template <class T>
uint64_t count_bytes(int64_t a, int64_t b = 1) {
  return static_cast<uint64_t>(a) * static_cast<uint64_t>(b) * sizeof(T);
}

// The shape every buffer is sized from.
struct Shape {
  int32_t n_embd, n_embd_q, n_embd_kv, n_ff, n_vocab, n_layer, n_head, n_head_kv, head_dim;
  int32_t n_batch, n_cs, capacity;
  int32_t n_lanes() const { return n_layer * n_head_kv; }
};

Shape shape_of(const Model& model, const EngineOptions& o) {
  const ModelConfig& c = model.config();
  Shape s{};
  s.n_embd = c.n_embd;
  s.n_embd_q = c.n_embd_q();
  s.n_embd_kv = c.n_embd_kv();
  s.n_ff = c.n_ff;
  s.n_vocab = c.n_vocab;
  s.n_layer = c.n_layer;
  s.n_head = c.n_head;
  s.n_head_kv = c.n_head_kv;
  s.head_dim = c.head_dim;
  s.n_batch = std::clamp(o.n_batch, 1, 4096);
  s.n_cs = 2 * (c.n_rot / 2);
  s.capacity = KvCache::lane_capacity(resolved_max_prompt(c, o), resolved_kv(o));
  return s;
}

// The sequence's device buffers. for_each calls f(pointer, bytes) for each in a fixed order, to
// size its arena and then to carve it.
struct Buffers {
  float *probs = nullptr, *lane_sums = nullptr, *scores = nullptr;
  int32_t *slot_pos = nullptr, *slot_birth = nullptr;
  uint16_t* kv = nullptr;  // [n_lanes][K rows, then V rows][capacity][head_dim]
  uint8_t* evictable = nullptr;
  unsigned* counter = nullptr;
  unsigned long long* evicted = nullptr;  // [n_layer]

  template <class F>
  void for_each(const Shape& s, F&& f) {
    f(probs, count_bytes<float>(s.n_head, s.capacity));
    f(lane_sums, count_bytes<float>(s.n_head_kv, s.capacity));
    f(scores, count_bytes<float>(s.n_lanes(), s.capacity));
    f(slot_pos, count_bytes<int32_t>(s.n_lanes(), s.capacity));
    f(slot_birth, count_bytes<int32_t>(s.n_lanes(), s.capacity));
    f(kv, count_bytes<uint16_t>(int64_t{2} * s.n_lanes() * s.capacity, s.head_dim));
    f(evictable, count_bytes<uint8_t>(s.n_head_kv, s.capacity));
    f(counter, count_bytes<unsigned>(1));
    f(evicted, count_bytes<unsigned long long>(s.n_layer));
  }
};

uint64_t buffer_bytes(const Shape& s) {
  uint64_t total = 0;
  Buffers b;
  b.for_each(s, [&](auto*&, uint64_t bytes) { total += device_aligned(bytes); });
  return total;
}

}  // namespace

struct CudaEngine::State {
  CudaModel& runtime;
  const Model& model;
  EngineOptions options;
  KvConfig kv;
  Shape shape;
  ops::Rope rope;
  int32_t n_ctx, max_prompt;
  cudaStream_t stream;
  std::unique_ptr<DeviceArena> arena;
  const DeviceModel* weights;
  const ForwardBuffers& f;  // the shared activations
  Buffers d;                // this sequence's cache and scratch
  bool moment;
  // What every lane shares.
  int32_t n_past = 0, n_used = 0, n_prefill = 0, prompt_seen = 0, resident_peak = 0;
  int64_t step = 0;
  bool evictable_stale = true;
  // Host staging.
  std::vector<int32_t> pos;
  std::vector<float> cs, logits;
  // Decode steps as CUDA graphs (options.cuda_graph); after a graph fails, steps launch their
  // kernels one by one and graph_error says why.
  StepGraph graph;
  std::string graph_error;

  State(CudaModel& r, const EngineOptions& o)
      : runtime(r),
        model(r.model()),
        options(o),
        kv(resolved_kv(o)),
        shape(shape_of(r.model(), o)),
        rope(r.model().config(), r.model().rope_freq_factors()),
        n_ctx(resolved_n_ctx(r.model().config(), o)),
        max_prompt(resolved_max_prompt(r.model().config(), o)),
        stream(static_cast<cudaStream_t>(r.stream())),
        weights(&r.weights()),
        f(r.buffers()),
        moment(o.kv.policy == "moment") {
    shape.n_batch = std::min(shape.n_batch, r.n_batch());
    options.n_batch = shape.n_batch;
  }

  void* st() const { return stream; }

  DeviceKvLayer layer_kv(int32_t l) const {
    const Shape& s = shape;
    const int64_t lane_stride = int64_t{2} * s.capacity * s.head_dim;
    const int64_t first = static_cast<int64_t>(l) * s.n_head_kv;
    DeviceKvLayer k;
    k.k = d.kv + first * lane_stride;
    k.v = k.k + static_cast<int64_t>(s.capacity) * s.head_dim;
    k.lane_stride = lane_stride;
    k.row_stride = s.head_dim;
    k.n_head_kv = s.n_head_kv;
    k.head_dim = s.head_dim;
    k.capacity = s.capacity;
    k.pos = d.slot_pos + first * s.capacity;
    k.birth = d.slot_birth + first * s.capacity;
    k.scores = d.scores + first * s.capacity;
    return k;
  }

  // y[n][w.n_out] = x[n][w.n_in] · Wᵀ: a mat-vec for one row, cuBLASLt for more.
  void mm(const DeviceWeight& w, const float* x, int32_t n, float* y) {
    if (n == 1) {
      matvec(w.type, w.data, w.n_out, w.n_in, x, y, st());
    } else {
      runtime.gemm().matmul(w.type, w.data, w.n_out, w.n_in, x, n, y, st());
    }
  }

  void mark_evictable() {
    // Decode scope: the generated slots (n_prefill and up) may be evicted, the prompt's not;
    // unified scope: every slot.
    const auto cap = static_cast<size_t>(shape.capacity);
    const size_t np = kv.scope == KvScope::kDecode ? static_cast<size_t>(n_prefill) : 0;
    for (int32_t g = 0; g < shape.n_head_kv; ++g) {
      uint8_t* row = d.evictable + static_cast<size_t>(g) * cap;
      check_cuda(cudaMemsetAsync(row, 0, np, stream), "clearing eviction flags");
      check_cuda(cudaMemsetAsync(row + np, 1, cap - np, stream), "setting eviction flags");
    }
    evictable_stale = false;
  }

  // One forward pass of n tokens; logits for the last `logit_rows` rows go to f.logits.
  void forward(const int32_t* tokens, int32_t n, Region region, int32_t logit_rows) {
    const Shape& s = shape;
    const bool decode = region == Region::kDecode;
    const int32_t first_slot = n_used;
    if (decode) {
      step += n;
    } else {
      prompt_seen += n;
      n_prefill += n;
      evictable_stale = true;
    }
    const int32_t birth = decode ? static_cast<int32_t>(step) : 0;
    pos.resize(static_cast<size_t>(n));
    cs.resize(static_cast<size_t>(n) * static_cast<size_t>(std::max(s.n_cs, 1)));
    for (int32_t i = 0; i < n; ++i) {
      pos[static_cast<size_t>(i)] = n_past + i;
      rope.angles(n_past + i, cs.data() + static_cast<size_t>(i) * static_cast<size_t>(s.n_cs));
    }
    n_used += n;
    resident_peak = std::max(resident_peak, n_used);
    check_cuda(cudaMemcpyAsync(f.tokens, tokens, sizeof(int32_t) * static_cast<size_t>(n),
                               cudaMemcpyHostToDevice, stream),
               "copying tokens");
    check_cuda(cudaMemcpyAsync(f.pos, pos.data(), sizeof(int32_t) * pos.size(),
                               cudaMemcpyHostToDevice, stream),
               "copying positions");
    check_cuda(
        cudaMemcpyAsync(f.cs, cs.data(), sizeof(float) * cs.size(), cudaMemcpyHostToDevice, stream),
        "copying RoPE angles");
    const bool observe = decode && moment;
    if (observe && evictable_stale) mark_evictable();
    const bool evict = observe && n_used - n_prefill > kv.decode_budget;

    const Pass pass{n, first_slot, birth, observe, evict, logit_rows};
    run([&] { enqueue(pass); }, decode && n == 1);
    if (evict) --n_used;
    n_past += n;
  }

  // What a forward pass launches, from the embedding lookup to the logits; forward() has staged
  // its tokens, positions and RoPE angles on the device. Only launches on the stream, so that a
  // decode step can be recorded as a graph.
  struct Pass {
    int32_t n, first_slot, birth;
    bool observe, evict;
    int32_t logit_rows;
  };
  void enqueue(const Pass& p) {
    const Shape& s = shape;
    const ModelConfig& c = model.config();
    const int32_t n = p.n;
    const DeviceWeight& embd = weights->token_embd();
    get_rows(embd.type, embd.data, embd.n_out, embd.n_in, f.tokens, n, f.x, st());
    const int64_t rows_embd = static_cast<int64_t>(n) * s.n_embd;
    for (int32_t l = 0; l < s.n_layer; ++l) {
      const DeviceLayer& w = weights->layer(l);
      rms_norm(f.x, w.attn_norm, n, s.n_embd, c.rms_eps, f.xn, st());
      mm(w.wq, f.xn, n, f.q);
      mm(w.wk, f.xn, n, f.k);
      mm(w.wv, f.xn, n, f.v);
      if (w.bq) {
        for (int32_t i = 0; i < n; ++i) {
          add(f.q + static_cast<int64_t>(i) * s.n_embd_q, w.bq, s.n_embd_q, st());
          add(f.k + static_cast<int64_t>(i) * s.n_embd_kv, w.bk, s.n_embd_kv, st());
          add(f.v + static_cast<int64_t>(i) * s.n_embd_kv, w.bv, s.n_embd_kv, st());
        }
      }
      const bool neox = c.rope_mode == RopeMode::kNeox;
      cuda::rope(f.q, f.cs, n, s.n_head, s.head_dim, c.n_rot, neox, st());
      cuda::rope(f.k, f.cs, n, s.n_head_kv, s.head_dim, c.n_rot, neox, st());
      const DeviceKvLayer layer = layer_kv(l);
      kv_write(layer, f.k, f.v, n, p.first_slot, f.pos, p.birth, st());

      DecodeAttention a;
      a.n_head = s.n_head;
      a.n_head_kv = s.n_head_kv;
      a.head_dim = s.head_dim;
      a.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
      a.k = layer.k;
      a.v = layer.v;
      a.lane_stride = layer.lane_stride;
      a.row_stride = layer.row_stride;
      a.capacity = s.capacity;
      a.n_used = n_used;
      a.pos = layer.pos;
      a.probs = d.probs;
      a.lane_sums = d.lane_sums;
      a.counter = d.counter;
      if (p.observe) {
        a.scores = layer.scores;
        a.evictable = d.evictable;
        a.alpha = kv.alpha;
        a.per_lane = kv.granularity == Granularity::kKvHead;
      }
      for (int32_t i = 0; i < n; ++i) {  // each prompt token sees the slots up to its position
        a.q = f.q + static_cast<int64_t>(i) * s.n_embd_q;
        a.out = f.attn + static_cast<int64_t>(i) * s.n_embd_q;
        a.q_pos = pos[static_cast<size_t>(i)];
        decode_attention(a, st());
      }
      if (p.evict) {
        MomentEviction e;
        e.n_used = n_used;
        e.first = kv.scope == KvScope::kDecode ? n_prefill : 0;
        e.step = step;
        e.alpha = kv.alpha;
        e.grace = kv.grace;
        e.normalize = kv.normalize;
        e.per_lane = kv.granularity == Granularity::kKvHead;
        e.evicted = d.evicted + l;
        moment_evict(layer, e, st());
      }
      mm(w.wo, f.attn, n, f.tmp);
      add(f.x, f.tmp, rows_embd, st());
      rms_norm(f.x, w.ffn_norm, n, s.n_embd, c.rms_eps, f.xn, st());
      mm(w.w_gate, f.xn, n, f.gate);
      mm(w.w_up, f.xn, n, f.up);
      silu_mul(f.gate, f.up, static_cast<int64_t>(n) * s.n_ff, st());
      mm(w.w_down, f.gate, n, f.tmp);
      add(f.x, f.tmp, rows_embd, st());
    }
    if (p.logit_rows == 0) return;
    const float* last = f.x + static_cast<int64_t>(n - p.logit_rows) * s.n_embd;
    rms_norm(last, weights->output_norm(), p.logit_rows, s.n_embd, c.rms_eps, f.xn, st());
    mm(weights->output(), f.xn, p.logit_rows, f.logits);
  }

  // Runs a pass's device work: as a graph for a decode step while graphs are on, else launch
  // by launch. A graph that fails turns them off for this sequence (the step then runs launch
  // by launch, so a failure of the work itself still surfaces).
  template <class Enqueue>
  void run(const Enqueue& enqueue, bool step) {
    if (step && options.cuda_graph && graph_error.empty()) {
      try {
        graph.run(stream, enqueue);
        return;
      } catch (const Error& e) {
        graph_error = e.what();
        graph.reset();
      }
    }
    enqueue();
  }

  // Feeds tokens in passes of at most n_batch (one at a time for generated tokens under an
  // evicting policy, as the CPU engine does). `sink(done, n, rows)` runs after each pass that
  // computed logits.
  template <class Sink>
  void feed(std::span<const int32_t> tokens, bool all_logits, Region region, Sink&& sink) {
    const auto n = static_cast<int32_t>(tokens.size());
    check(n > 0, "eval: no tokens");
    check(static_cast<int64_t>(n_past) + n <= n_ctx,
          "context full: " + std::to_string(n_past) + " + " + std::to_string(n) +
              " tokens exceed the context of " + std::to_string(n_ctx));
    check(can_append(n, region), "KV cache full: " + std::to_string(n) +
                                     (region == Region::kPrefill ? " prompt" : " generated") +
                                     " tokens do not fit (" + std::to_string(max_prompt) +
                                     " prompt tokens and a decode budget of " +
                                     std::to_string(kv.decode_budget) + " reserved)");
    for (int32_t t : tokens) {
      check(t >= 0 && t < shape.n_vocab, "token id " + std::to_string(t) + " is out of range [0, " +
                                             std::to_string(shape.n_vocab) + ")");
    }
    // The calling thread's current device (a daemon's worker is not the thread that made it).
    check_cuda(cudaSetDevice(runtime.device_index()), "cudaSetDevice");
    const int32_t batch = region == Region::kDecode && moment ? 1 : shape.n_batch;
    for (int32_t done = 0; done < n;) {
      const int32_t chunk = std::min(batch, n - done);
      const bool last = done + chunk == n;
      const int32_t rows = all_logits ? chunk : (last ? 1 : 0);
      forward(tokens.data() + done, chunk, region, rows);
      if (rows > 0) sink(done, chunk, rows);
      done += chunk;
    }
  }

  bool can_append(int32_t n, Region region) const {
    // KvCache::can_append for the policies this engine runs (no prompt compression).
    if (!kv.evicts() && kv.decode_budget == 0) return n_used + n <= shape.capacity;
    if (region == Region::kPrefill) {
      return prompt_seen + n <= max_prompt && n_prefill + n <= max_prompt;
    }
    if (!kv.evicts()) return n_used - n_prefill + n <= kv.decode_budget;
    return n <= 1 || n_used + n <= shape.capacity;
  }

  void sync() { check_cuda(cudaStreamSynchronize(stream), "CUDA engine step"); }
};

std::optional<std::string> CudaEngine::unsupported(const Model& model,
                                                   const EngineOptions& options) {
  const KvConfig& kv = options.kv;
  if (auto err = kv.validate()) return "invalid KV configuration: " + *err;
  if (kv.policy != "full" && kv.policy != "moment") {
    return "the CUDA engine runs the full and moment policies; " + kv.policy +
           " runs on the CPU backend";
  }
  if (kv.type != KvType::kF16) {
    return std::string("the CUDA engine keeps its KV cache in f16 (asked: ") +
           kv_type_name(kv.type) + ")";
  }
  if (kv.prefill_budget > 0) return "snapkv prompt compression runs on the CPU backend only";
  if (options.probe_attention) return "attention probes run on the CPU backend only";
  return CudaModel::unsupported(model);
}

uint64_t CudaEngine::device_bytes_needed(const Model& model, const EngineOptions& options) {
  return buffer_bytes(shape_of(model, options));
}

CudaEngine::CudaEngine(CudaModel& model, EngineOptions options)
    : s_(std::make_unique<State>(model, options)) {
  if (auto err = unsupported(model.model(), options)) throw Error(*err);
  State& s = *s_;
  check_cuda(cudaSetDevice(model.device_index()), "cudaSetDevice");
  s.arena = std::make_unique<DeviceArena>(buffer_bytes(s.shape));
  s.d.for_each(s.shape, [&](auto*& p, uint64_t bytes) {
    p = static_cast<std::remove_reference_t<decltype(p)>>(s.arena->allocate(bytes));
  });
  check_cuda(cudaMemsetAsync(s.d.counter, 0, sizeof(unsigned), s.stream), "clearing a counter");
  reset();
}

CudaEngine::~CudaEngine() = default;

std::span<const float> CudaEngine::eval(std::span<const int32_t> tokens, bool all_logits,
                                        Region region) {
  State& s = *s_;
  const auto nv = static_cast<size_t>(s.shape.n_vocab);
  s.logits.resize(all_logits ? nv * tokens.size() : nv);
  s.feed(tokens, all_logits, region, [&](int32_t done, int32_t chunk, int32_t rows) {
    float* dst = all_logits ? s.logits.data() + nv * static_cast<size_t>(done) : s.logits.data();
    (void)chunk;
    check_cuda(cudaMemcpyAsync(dst, s.f.logits, sizeof(float) * nv * static_cast<size_t>(rows),
                               cudaMemcpyDeviceToHost, s.stream),
               "copying logits");
  });
  s.sync();
  return s.logits;
}

int32_t CudaEngine::eval_greedy(std::span<const int32_t> tokens, Region region) {
  State& s = *s_;
  s.feed(tokens, false, region,
         [&](int32_t, int32_t, int32_t) { argmax(s.f.logits, s.shape.n_vocab, s.f.next, s.st()); });
  int32_t next = 0;
  check_cuda(cudaMemcpyAsync(&next, s.f.next, sizeof next, cudaMemcpyDeviceToHost, s.stream),
             "copying the next token");
  s.sync();
  return next;
}

bool CudaEngine::can_eval(int32_t n, Region region) const {
  return s_->n_ctx - s_->n_past >= n && s_->can_append(n, region);
}

void CudaEngine::reset() {
  State& s = *s_;
  s.n_past = s.n_used = s.n_prefill = s.prompt_seen = s.resident_peak = 0;
  s.step = 0;
  s.evictable_stale = true;
  check_cuda(
      cudaMemsetAsync(s.d.evicted, 0, sizeof(unsigned long long) * s.shape.n_layer, s.stream),
      "clearing eviction counts");
  s.sync();
}

int32_t CudaEngine::n_past() const {
  return s_->n_past;
}
int32_t CudaEngine::n_ctx() const {
  return s_->n_ctx;
}
int32_t CudaEngine::max_prompt() const {
  return s_->max_prompt;
}
int32_t CudaEngine::n_vocab() const {
  return s_->shape.n_vocab;
}
int32_t CudaEngine::n_used() const {
  return s_->n_used;
}
int32_t CudaEngine::n_prefill() const {
  return s_->n_prefill;
}

std::vector<int32_t> CudaEngine::positions(int32_t layer, int32_t kv_head) const {
  const State& s = *s_;
  check(layer >= 0 && layer < s.shape.n_layer && kv_head >= 0 && kv_head < s.shape.n_head_kv,
        "CudaEngine::positions: no lane " + std::to_string(layer) + "/" + std::to_string(kv_head));
  std::vector<int32_t> out(static_cast<size_t>(s.n_used));
  const int64_t lane = static_cast<int64_t>(layer) * s.shape.n_head_kv + kv_head;
  check_cuda(cudaStreamSynchronize(s.stream), "CUDA engine step");
  copy_to_host(out.data(), s.d.slot_pos + lane * s.shape.capacity, sizeof(int32_t) * out.size());
  return out;
}

CompressionSummary CudaEngine::compression() const {
  const State& s = *s_;
  CompressionSummary r;
  r.policy = s.kv.policy;
  r.scope = kv_scope_name(s.kv.scope);
  r.alpha = s.kv.alpha;
  r.decode_budget = s.kv.decode_budget;
  // KvCache counts layer 0, lane 0's evictions as the tokens evicted.
  unsigned long long layer0 = 0;
  check_cuda(cudaStreamSynchronize(s.stream), "CUDA engine step");
  copy_to_host(&layer0, s.d.evicted, sizeof layer0);
  // Every lane frees the same number of slots, so lane 0's count is the layer's over its lanes.
  r.evicted = static_cast<int64_t>(layer0 / static_cast<unsigned long long>(s.shape.n_head_kv));
  r.context_altered = r.evicted > 0;
  r.resident_peak = s.resident_peak;
  const uint64_t row_bytes = 2 * static_cast<uint64_t>(s.shape.head_dim);
  const uint64_t lanes = static_cast<uint64_t>(s.shape.n_lanes());
  r.kv_bytes_reserved = 2 * row_bytes * lanes * static_cast<uint64_t>(s.shape.capacity);
  r.kv_bytes_peak = 2 * row_bytes * lanes * static_cast<uint64_t>(s.resident_peak);
  return r;
}

uint64_t CudaEngine::device_bytes() const {
  return s_->arena->capacity();
}

std::string CudaEngine::decode_graphs() const {
  const State& s = *s_;
  if (!s.graph_error.empty()) return "launch by launch (a graph failed: " + s.graph_error + ")";
  if (!s.options.cuda_graph) return "launch by launch (off)";
  return "graphs (" + std::to_string(s.graph.runs()) + " steps, " +
         std::to_string(s.graph.updates()) + " updated in place)";
}

const DeviceInfo& CudaEngine::device() const {
  return s_->runtime.info();
}

}  // namespace momentkv::kernels::cuda
