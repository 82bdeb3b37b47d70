#include "core/engine/engine.h"

#include <algorithm>
#include <cmath>

#include "core/util/error.h"

namespace momentkv {

namespace {
int32_t resolve_ctx(const ModelConfig& c, int32_t n_ctx) {
  const int32_t n = n_ctx > 0 ? n_ctx : c.n_ctx_train;
  check(n > 0, "invalid context size " + std::to_string(n_ctx));
  return n;
}
int32_t resolve_max_prompt(int32_t n_ctx, const EngineOptions& o) {
  if (o.max_prompt > 0) return o.max_prompt;
  if (o.kv.decode_budget == 0) return n_ctx;
  return std::max(1, n_ctx - o.kv.decode_budget);
}
KvConfig with_chunk(KvConfig kv, int32_t n_batch) {
  kv.prefill_chunk = std::clamp(n_batch, 1, 4096);
  return kv;
}
size_t sz(int64_t a, int64_t b) {
  return static_cast<size_t>(a) * static_cast<size_t>(b);
}
}  // namespace

Engine::Engine(const Model& model, Backend& backend, EngineOptions options)
    : model_(model),
      backend_(backend),
      options_(options),
      rope_(model.config(), model.rope_freq_factors()),
      n_ctx_(resolve_ctx(model.config(), options.n_ctx)),
      max_prompt_(resolve_max_prompt(n_ctx_, options)),
      kv_(model.config().n_layer, model.config().n_head_kv, model.config().head_dim, max_prompt_,
          with_chunk(options.kv, options.n_batch)) {
  const ModelConfig& c = model.config();
  options_.n_batch = std::clamp(options_.n_batch, 1, 4096);
  const int64_t b = options_.n_batch;
  x_.resize(sz(b, c.n_embd));
  xn_.resize(sz(b, std::max(c.n_embd, c.n_embd_q())));
  q_.resize(sz(b, c.n_embd_q()));
  k_.resize(sz(b, c.n_embd_kv()));
  v_.resize(sz(b, c.n_embd_kv()));
  attn_.resize(sz(b, c.n_embd_q()));
  gate_.resize(sz(b, c.n_ff));
  up_.resize(sz(b, c.n_ff));
  rope_cs_.resize(sz(b, 2 * rope_.n_pairs()));
  positions_.resize(static_cast<size_t>(b));
  logits_.reserve(static_cast<size_t>(c.n_vocab));
  if (options_.probe_attention) {
    kv_.enable_attention_stats();
    probes_.resize(static_cast<size_t>(c.n_layer));
  }
}

void Engine::reset() {
  kv_.clear();
  n_past_ = 0;
}

uint64_t Engine::state_bytes() const {
  uint64_t s = kv_.storage().bytes();
  for (const auto* v : {&x_, &xn_, &q_, &k_, &v_, &attn_, &gate_, &up_, &rope_cs_, &logits_}) {
    s += v->capacity() * sizeof(float);
  }
  return s;
}

bool Engine::can_eval(int32_t n, Region region) const {
  return n_ctx_ - n_past_ >= n && kv_.can_append(n, region);
}

std::span<const float> Engine::eval(std::span<const int32_t> tokens, bool all_logits,
                                    Region region) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  check(n > 0, "eval: no tokens");
  check(static_cast<int64_t>(n_past_) + n <= n_ctx_,
        "context full: " + std::to_string(n_past_) + " + " + std::to_string(n) +
            " tokens exceed the context of " + std::to_string(n_ctx_));
  check(kv_.can_append(n, region), "KV cache full: " + std::to_string(n) +
                                       (region == Region::kPrefill ? " prompt" : " generated") +
                                       " tokens do not fit (" + std::to_string(max_prompt_) +
                                       " prompt tokens and a decode budget of " +
                                       std::to_string(kv_.config().decode_budget) + " reserved)");
  for (int32_t t : tokens) {
    check(t >= 0 && t < n_vocab(), "token id " + std::to_string(t) + " is out of range [0, " +
                                       std::to_string(n_vocab()) + ")");
  }
  const size_t nv = static_cast<size_t>(n_vocab());
  logits_.resize(all_logits ? nv * static_cast<size_t>(n) : nv);
  // Evicting policies make room after every forward pass, so generated tokens go one at a time.
  const int32_t batch = region == Region::kDecode && kv_.config().evicts() ? 1 : options_.n_batch;
  for (int32_t done = 0; done < n;) {
    const int32_t chunk = std::min(batch, n - done);
    const bool last = done + chunk == n;
    float* out = all_logits ? logits_.data() + nv * static_cast<size_t>(done)
                            : (last ? logits_.data() : nullptr);
    forward(tokens.data() + done, chunk, all_logits, out, region);
    done += chunk;
  }
  return logits_;
}

void Engine::record_probe(int32_t layer, int32_t n_queries) {
  // Mean over all query heads (and queries) of lane 0's slots; with a per-layer policy every lane
  // holds the same tokens, and with per-head lanes this is KV head 0's view.
  const ModelConfig& c = model_.config();
  const KvCells& cells = kv_.cells(layer, 0);
  AttentionProbe& p = probes_[static_cast<size_t>(layer)];
  const int32_t n = cells.n_used();
  p.pos.assign(cells.positions(), cells.positions() + n);
  p.prob.assign(static_cast<size_t>(n), 0.0f);
  const float* stats = kv_.layer_stats();
  const int32_t group = c.n_head / c.n_head_kv;
  const bool same_lanes = kv_.policy().granularity() == Granularity::kLayer;
  const int32_t lanes = same_lanes ? c.n_head_kv : 1;
  for (int32_t h = 0; h < lanes; ++h) {
    const float* row = stats + static_cast<size_t>(h) * static_cast<size_t>(kv_.stats_stride());
    for (int32_t s = 0; s < n; ++s) p.prob[static_cast<size_t>(s)] += row[s];
  }
  const float inv = 1.0f / static_cast<float>(lanes * group * std::max(n_queries, 1));
  for (auto& v : p.prob) v *= inv;
}

void Engine::forward(const int32_t* tokens, int32_t n, bool all_logits, float* logits,
                     Region region) {
  const ModelConfig& c = model_.config();
  const int32_t hd = c.head_dim;
  const int32_t n_cs = 2 * rope_.n_pairs();
  for (int32_t i = 0; i < n; ++i) {
    positions_[static_cast<size_t>(i)] = n_past_ + i;
    rope_.angles(n_past_ + i, rope_cs_.data() + sz(i, n_cs));
  }
  backend_.get_rows(model_.token_embd(), tokens, n, x_.data());
  kv_.append(positions_.data(), n, region);
  const bool decode_step = region == Region::kDecode;
  const MatmulPrecision prec = options_.precision;

  AttentionArgs attn;
  attn.n_tokens = n;
  attn.n_head = c.n_head;
  attn.n_head_kv = c.n_head_kv;
  attn.head_dim = hd;
  attn.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  attn.q = q_.data();
  attn.q_pos = positions_.data();
  attn.out = attn_.data();
  attn.kv = &kv_.storage();
  attn.attn_stride = kv_.stats_stride();

  for (int32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = model_.layer(l);
    for (int32_t i = 0; i < n; ++i) {
      ops::rms_norm(x_.data() + sz(i, c.n_embd), w.attn_norm.data(), c.n_embd, c.rms_eps,
                    xn_.data() + sz(i, c.n_embd));
    }
    backend_.matmul(w.wq, xn_.data(), n, q_.data(), prec);
    backend_.matmul(w.wk, xn_.data(), n, k_.data(), prec);
    backend_.matmul(w.wv, xn_.data(), n, v_.data(), prec);
    for (int32_t i = 0; i < n; ++i) {
      float* q = q_.data() + sz(i, c.n_embd_q());
      float* k = k_.data() + sz(i, c.n_embd_kv());
      float* v = v_.data() + sz(i, c.n_embd_kv());
      if (c.qkv_bias) {
        for (int32_t j = 0; j < c.n_embd_q(); ++j) q[j] += w.bq[static_cast<size_t>(j)];
        for (int32_t j = 0; j < c.n_embd_kv(); ++j) k[j] += w.bk[static_cast<size_t>(j)];
        for (int32_t j = 0; j < c.n_embd_kv(); ++j) v[j] += w.bv[static_cast<size_t>(j)];
      }
      const float* cs = rope_cs_.data() + sz(i, n_cs);
      for (int32_t h = 0; h < c.n_head; ++h) rope_.apply(q + sz(h, hd), cs);
      for (int32_t h = 0; h < c.n_head_kv; ++h) {
        rope_.apply(k + sz(h, hd), cs);
        kv_.storage().write(KvCache::lane_index(l, h, c.n_head_kv), kv_.appended_slot(l, h, i),
                            k + sz(h, hd), v + sz(h, hd));
      }
    }
    attn.layer = l;
    attn.lanes = &kv_.cells(l, 0);
    attn.observe_from = 0;
    attn.attn_sum = decode_step ? kv_.begin_layer_stats(l, true)
                                : kv_.begin_prefill_stats(l, n, &attn.observe_from);
    backend_.attention(attn);
    if (options_.probe_attention && decode_step && attn.attn_sum) record_probe(l, n);
    kv_.after_attention(l, c.n_head / c.n_head_kv, n, decode_step);

    backend_.matmul(w.wo, attn_.data(), n, xn_.data(), prec);
    for (size_t j = 0; j < sz(n, c.n_embd); ++j) x_[j] += xn_[j];

    for (int32_t i = 0; i < n; ++i) {
      ops::rms_norm(x_.data() + sz(i, c.n_embd), w.ffn_norm.data(), c.n_embd, c.rms_eps,
                    xn_.data() + sz(i, c.n_embd));
    }
    backend_.matmul(w.w_gate, xn_.data(), n, gate_.data(), prec);
    backend_.matmul(w.w_up, xn_.data(), n, up_.data(), prec);
    ops::silu_mul(gate_.data(), up_.data(), static_cast<int64_t>(sz(n, c.n_ff)));
    backend_.matmul(w.w_down, gate_.data(), n, xn_.data(), prec);
    for (size_t j = 0; j < sz(n, c.n_embd); ++j) x_[j] += xn_[j];
  }
  n_past_ += n;
  if (check_invariants_) kv_.check_invariants();

  if (!logits) return;
  const int32_t first = all_logits ? 0 : n - 1;
  const int32_t rows = n - first;
  for (int32_t i = first; i < n; ++i) {
    ops::rms_norm(x_.data() + sz(i, c.n_embd), model_.output_norm().data(), c.n_embd, c.rms_eps,
                  xn_.data() + sz(i - first, c.n_embd));
  }
  backend_.matmul(model_.output(), xn_.data(), rows, logits, options_.precision);
}

}  // namespace momentkv
