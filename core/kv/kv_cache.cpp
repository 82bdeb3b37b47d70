#include "core/kv/kv_cache.h"

#include "core/util/error.h"

namespace momentkv {

KvCache::KvCache(int32_t n_layer, int32_t n_embd_kv, int32_t capacity)
    : n_layer_(n_layer), n_embd_kv_(n_embd_kv), capacity_(capacity) {
  check(n_layer > 0 && n_embd_kv > 0 && capacity > 0, "KvCache: invalid dimensions");
  const size_t n = static_cast<size_t>(n_layer) * capacity * n_embd_kv;
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
  pos_.assign(static_cast<size_t>(capacity), -1);
}

int32_t KvCache::append(const int32_t* pos, int32_t n) {
  check(n_used_ + n <= capacity_, "KvCache: " + std::to_string(n_used_ + n) +
                                      " cells needed, capacity " + std::to_string(capacity_));
  const int32_t first = n_used_;
  for (int32_t i = 0; i < n; ++i) pos_[static_cast<size_t>(first + i)] = pos[i];
  n_used_ += n;
  return first;
}

}  // namespace momentkv
