#include "core/engine/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/util/error.h"

namespace momentkv {

namespace {
int32_t resolve_ctx(const ModelConfig& c, int32_t n_ctx) {
  const int32_t n = n_ctx > 0 ? n_ctx : c.n_ctx_train;
  check(n > 0, "invalid context size " + std::to_string(n_ctx));
  return n;
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
      kv_(model.config().n_layer, model.config().n_embd_kv(),
          resolve_ctx(model.config(), options.n_ctx)) {
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
}

void Engine::reset() {
  kv_.clear();
  n_past_ = 0;
}

uint64_t Engine::state_bytes() const {
  uint64_t s = kv_.bytes();
  for (const auto* v : {&x_, &xn_, &q_, &k_, &v_, &attn_, &gate_, &up_, &rope_cs_, &logits_}) {
    s += v->capacity() * sizeof(float);
  }
  return s;
}

std::span<const float> Engine::eval(std::span<const int32_t> tokens, bool all_logits) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  check(n > 0, "eval: no tokens");
  check(static_cast<int64_t>(n_past_) + n <= kv_.capacity(),
        "context full: " + std::to_string(n_past_) + " + " + std::to_string(n) +
            " tokens exceed the context of " + std::to_string(kv_.capacity()));
  for (int32_t t : tokens) {
    check(t >= 0 && t < n_vocab(), "token id " + std::to_string(t) + " is out of range [0, " +
                                       std::to_string(n_vocab()) + ")");
  }
  const size_t nv = static_cast<size_t>(n_vocab());
  logits_.resize(all_logits ? nv * static_cast<size_t>(n) : nv);
  for (int32_t done = 0; done < n;) {
    const int32_t chunk = std::min(options_.n_batch, n - done);
    const bool last = done + chunk == n;
    float* out = all_logits ? logits_.data() + nv * static_cast<size_t>(done)
                            : (last ? logits_.data() : nullptr);
    forward(tokens.data() + done, chunk, all_logits, out);
    done += chunk;
  }
  return logits_;
}

void Engine::forward(const int32_t* tokens, int32_t n, bool all_logits, float* logits) {
  const ModelConfig& c = model_.config();
  const int32_t hd = c.head_dim;
  const int32_t n_cs = 2 * rope_.n_pairs();
  for (int32_t i = 0; i < n; ++i) {
    positions_[static_cast<size_t>(i)] = n_past_ + i;
    rope_.angles(n_past_ + i, rope_cs_.data() + sz(i, n_cs));
  }
  backend_.get_rows(model_.token_embd(), tokens, n, x_.data());
  const int32_t first_cell = kv_.append(positions_.data(), n);
  const MatmulPrecision prec = options_.precision;

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
      for (int32_t h = 0; h < c.n_head_kv; ++h) rope_.apply(k + sz(h, hd), cs);
      std::copy(k, k + c.n_embd_kv(), kv_.k(l, first_cell + i));
      std::copy(v, v + c.n_embd_kv(), kv_.v(l, first_cell + i));
    }
    attention(l, n, first_cell);
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

  if (!logits) return;
  const int32_t first = all_logits ? 0 : n - 1;
  const int32_t rows = n - first;
  for (int32_t i = first; i < n; ++i) {
    ops::rms_norm(x_.data() + sz(i, c.n_embd), model_.output_norm().data(), c.n_embd, c.rms_eps,
                  xn_.data() + sz(i - first, c.n_embd));
  }
  backend_.matmul(model_.output(), xn_.data(), rows, logits, options_.precision);
}

void Engine::attention(int32_t layer, int32_t n, int32_t first_cell) {
  const ModelConfig& c = model_.config();
  const int32_t hd = c.head_dim;
  const int32_t group = c.n_head / c.n_head_kv;
  const int32_t n_cells = first_cell + n;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  backend_.parallel_for(static_cast<int64_t>(n) * c.n_head, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(n_cells)) scores.resize(static_cast<size_t>(n_cells));
    for (int64_t item = begin; item < end; ++item) {
      const int32_t i = static_cast<int32_t>(item / c.n_head);
      const int32_t h = static_cast<int32_t>(item % c.n_head);
      const int32_t kvh = h / group;
      const int32_t qpos = positions_[static_cast<size_t>(i)];
      const float* q = q_.data() + sz(i, c.n_embd_q()) + sz(h, hd);
      float mx = -std::numeric_limits<float>::infinity();
      for (int32_t cell = 0; cell < n_cells; ++cell) {
        if (kv_.pos(cell) > qpos) {
          scores[static_cast<size_t>(cell)] = -std::numeric_limits<float>::infinity();
          continue;
        }
        const float* k = kv_.k(layer, cell) + sz(kvh, hd);
        float dot = 0.0f;
        for (int32_t d = 0; d < hd; ++d) dot += q[d] * k[d];
        dot *= scale;
        scores[static_cast<size_t>(cell)] = dot;
        mx = std::max(mx, dot);
      }
      float sum = 0.0f;
      for (int32_t cell = 0; cell < n_cells; ++cell) {
        float& s = scores[static_cast<size_t>(cell)];
        s = std::exp(s - mx);
        sum += s;
      }
      float* out = attn_.data() + sz(i, c.n_embd_q()) + sz(h, hd);
      std::fill(out, out + hd, 0.0f);
      const float inv = 1.0f / sum;
      for (int32_t cell = 0; cell < n_cells; ++cell) {
        const float p = scores[static_cast<size_t>(cell)] * inv;
        if (p == 0.0f) continue;
        const float* v = kv_.v(layer, cell) + sz(kvh, hd);
        for (int32_t d = 0; d < hd; ++d) out[d] += p * v[d];
      }
    }
  });
}

}  // namespace momentkv
