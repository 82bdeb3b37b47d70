#include "core/engine/forward_scratch.h"

#include <algorithm>

namespace momentkv {

void ForwardScratch::resize(const ModelConfig& c, int32_t n_pairs, int64_t n) {
  const auto sz = [n](int64_t per_row) { return static_cast<size_t>(n * per_row); };
  rows = n;
  x.resize(sz(c.n_embd));
  xn.resize(sz(std::max(c.n_embd, c.n_embd_q())));
  q.resize(sz(c.n_embd_q()));
  k.resize(sz(c.n_embd_kv()));
  v.resize(sz(c.n_embd_kv()));
  attn.resize(sz(c.n_embd_q()));
  gate.resize(sz(c.n_ff));
  up.resize(sz(c.n_ff));
  rope_cs.resize(sz(2 * n_pairs));
  positions.resize(static_cast<size_t>(n));
}

int64_t ForwardScratch::floats_per_row(const ModelConfig& c, int32_t n_pairs) {
  // x, xn, q, k, v, attn, gate, up, rope_cs as in resize().
  return c.n_embd + std::max(c.n_embd, c.n_embd_q()) + 2 * c.n_embd_q() + 2 * c.n_embd_kv() +
         2 * c.n_ff + 2 * n_pairs;
}

uint64_t ForwardScratch::bytes() const {
  uint64_t s = positions.capacity() * sizeof(int32_t);
  for (const auto* b : {&x, &xn, &q, &k, &v, &attn, &gate, &up, &rope_cs}) {
    s += b->capacity() * sizeof(float);
  }
  return s;
}

}  // namespace momentkv
