#include "core/engine/engine.h"

#include <algorithm>
#include <cmath>

#include "core/util/error.h"

namespace momentkv {

namespace {
size_t sz(int64_t a, int64_t b) {
  return static_cast<size_t>(a) * static_cast<size_t>(b);
}
}  // namespace

int32_t resolved_n_ctx(const ModelConfig& c, const EngineOptions& o) {
  const int32_t n = o.n_ctx > 0 ? o.n_ctx : c.n_ctx_train;
  check(n > 0, "invalid context size " + std::to_string(o.n_ctx));
  return n;
}

int32_t resolved_max_prompt(const ModelConfig& c, const EngineOptions& o) {
  if (o.max_prompt > 0) return o.max_prompt;
  const int32_t n_ctx = resolved_n_ctx(c, o);
  if (o.kv.decode_budget == 0) return n_ctx;
  return std::max(1, n_ctx - o.kv.decode_budget);
}

KvConfig resolved_kv(const EngineOptions& o) {
  KvConfig kv = o.kv;
  kv.prefill_chunk = std::clamp(o.n_batch, 1, 4096);
  return kv;
}

Engine::Engine(const Model& model, Backend& backend, EngineOptions options)
    : model_(model),
      backend_(backend),
      options_(options),
      rope_(model.config(), model.rope_freq_factors()),
      n_ctx_(resolved_n_ctx(model.config(), options)),
      max_prompt_(resolved_max_prompt(model.config(), options)),
      kv_(model.config().n_layer, model.config().n_head_kv, model.config().head_dim, max_prompt_,
          resolved_kv(options)) {
  const ModelConfig& c = model.config();
  options_.n_batch = std::clamp(options_.n_batch, 1, 4096);
  scratch_.resize(c, rope_.n_pairs(), options_.n_batch);
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
  return kv_.storage().bytes() + scratch_.bytes() + logits_.capacity() * sizeof(float);
}

bool Engine::can_eval(int32_t n, Region region) const {
  return n_ctx_ - n_past_ >= n && kv_.can_append(n, region);
}

std::span<const float> Engine::eval(std::span<const int32_t> tokens, bool all_logits,
                                    Region region) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  check(n > 0, "eval: no tokens");
  check(static_cast<int64_t>(n_past_) + n <= n_ctx_, [&] {
    return "context full: " + std::to_string(n_past_) + " + " + std::to_string(n) +
           " tokens exceed the context of " + std::to_string(n_ctx_);
  });
  check(kv_.can_append(n, region), [&] {
    return "KV cache full: " + std::to_string(n) +
           (region == Region::kPrefill ? " prompt" : " generated") + " tokens do not fit (" +
           std::to_string(max_prompt_) + " prompt tokens and a decode budget of " +
           std::to_string(kv_.config().decode_budget) + " reserved)";
  });
  for (int32_t t : tokens) {
    check(t >= 0 && t < n_vocab(), [&] {
      return "token id " + std::to_string(t) + " is out of range [0, " + std::to_string(n_vocab()) +
             ")";
    });
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
  const Segment one{this, 0, n, region};
  forward_segments(model_, backend_, options_.precision, scratch_, tokens, {&one, 1}, all_logits,
                   logits);
}

void Engine::forward_segments(const Model& model, Backend& backend, MatmulPrecision prec,
                              ForwardScratch& s, const int32_t* tokens,
                              std::span<const Segment> segments, bool all_rows, float* logits) {
  const ModelConfig& c = model.config();
  const int32_t hd = c.head_dim;
  const Segment& last = segments.back();
  const int32_t n = last.first + last.n;
  const int32_t n_cs = 2 * segments.front().engine->rope_.n_pairs();
  for (const Segment& g : segments) {
    for (int32_t i = 0; i < g.n; ++i) {
      const int32_t row = g.first + i;
      s.positions[static_cast<size_t>(row)] = g.engine->n_past_ + i;
      g.engine->rope_.angles(g.engine->n_past_ + i, s.rope_cs.data() + sz(row, n_cs));
    }
    g.engine->kv_.append(s.positions.data() + g.first, g.n, g.region);
  }
  backend.get_rows(model.token_embd(), tokens, n, s.x.data());

  AttentionArgs attn;
  attn.n_head = c.n_head;
  attn.n_head_kv = c.n_head_kv;
  attn.head_dim = hd;
  attn.scale = 1.0f / std::sqrt(static_cast<float>(hd));

  for (int32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = model.layer(l);
    for (int32_t i = 0; i < n; ++i) {
      ops::rms_norm(s.x.data() + sz(i, c.n_embd), w.attn_norm.data(), c.n_embd, c.rms_eps,
                    s.xn.data() + sz(i, c.n_embd));
    }
    backend.matmul(w.wq, s.xn.data(), n, s.q.data(), prec);
    backend.matmul(w.wk, s.xn.data(), n, s.k.data(), prec);
    backend.matmul(w.wv, s.xn.data(), n, s.v.data(), prec);
    for (const Segment& g : segments) {
      Engine& e = *g.engine;
      for (int32_t i = 0; i < g.n; ++i) {
        const int32_t row = g.first + i;
        float* q = s.q.data() + sz(row, c.n_embd_q());
        float* k = s.k.data() + sz(row, c.n_embd_kv());
        float* v = s.v.data() + sz(row, c.n_embd_kv());
        if (c.qkv_bias) {
          for (int32_t j = 0; j < c.n_embd_q(); ++j) q[j] += w.bq[static_cast<size_t>(j)];
          for (int32_t j = 0; j < c.n_embd_kv(); ++j) k[j] += w.bk[static_cast<size_t>(j)];
          for (int32_t j = 0; j < c.n_embd_kv(); ++j) v[j] += w.bv[static_cast<size_t>(j)];
        }
        const float* cs = s.rope_cs.data() + sz(row, n_cs);
        for (int32_t h = 0; h < c.n_head; ++h) e.rope_.apply(q + sz(h, hd), cs);
        for (int32_t h = 0; h < c.n_head_kv; ++h) {
          e.rope_.apply(k + sz(h, hd), cs);
          e.kv_.storage().write(KvCache::lane_index(l, h, c.n_head_kv),
                                e.kv_.appended_slot(l, h, i), k + sz(h, hd), v + sz(h, hd));
        }
      }
      const bool decode_step = g.region == Region::kDecode;
      attn.n_tokens = g.n;
      attn.q = s.q.data() + sz(g.first, c.n_embd_q());
      attn.q_pos = s.positions.data() + g.first;
      attn.out = s.attn.data() + sz(g.first, c.n_embd_q());
      attn.kv = &e.kv_.storage();
      attn.attn_stride = e.kv_.stats_stride();
      attn.layer = l;
      attn.lanes = &e.kv_.cells(l, 0);
      attn.observe_from = 0;
      attn.attn_sum = decode_step ? e.kv_.begin_layer_stats(l, true)
                                  : e.kv_.begin_prefill_stats(l, g.n, &attn.observe_from);
      backend.attention(attn);
      if (e.options_.probe_attention && decode_step && attn.attn_sum) e.record_probe(l, g.n);
      e.kv_.after_attention(l, c.n_head / c.n_head_kv, g.n, decode_step);
    }

    backend.matmul(w.wo, s.attn.data(), n, s.xn.data(), prec);
    for (size_t j = 0; j < sz(n, c.n_embd); ++j) s.x[j] += s.xn[j];

    for (int32_t i = 0; i < n; ++i) {
      ops::rms_norm(s.x.data() + sz(i, c.n_embd), w.ffn_norm.data(), c.n_embd, c.rms_eps,
                    s.xn.data() + sz(i, c.n_embd));
    }
    backend.matmul(w.w_gate, s.xn.data(), n, s.gate.data(), prec);
    backend.matmul(w.w_up, s.xn.data(), n, s.up.data(), prec);
    ops::silu_mul(s.gate.data(), s.up.data(), static_cast<int64_t>(sz(n, c.n_ff)));
    backend.matmul(w.w_down, s.gate.data(), n, s.xn.data(), prec);
    for (size_t j = 0; j < sz(n, c.n_embd); ++j) s.x[j] += s.xn[j];
  }
  for (const Segment& g : segments) {
    g.engine->n_past_ += g.n;
    if (g.engine->check_invariants_) g.engine->kv_.check_invariants();
  }

  if (!logits) return;
  // The rows that get logits: all, or the last of each segment.
  int32_t rows = 0;
  for (const Segment& g : segments) {
    for (int32_t i = all_rows ? 0 : g.n - 1; i < g.n; ++i, ++rows) {
      ops::rms_norm(s.x.data() + sz(g.first + i, c.n_embd), model.output_norm().data(), c.n_embd,
                    c.rms_eps, s.xn.data() + sz(rows, c.n_embd));
    }
  }
  backend.matmul(model.output(), s.xn.data(), rows, logits, prec);
}

}  // namespace momentkv
