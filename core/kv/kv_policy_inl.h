// Implementation of pick_lowest (a template, so that key functions inline into the O(budget) scan).
#pragma once

#include <algorithm>

namespace momentkv {

template <typename Key, typename Skip>
void pick_lowest(const KvPolicy& policy, const KvCells& cells, int32_t count, Key key, Skip skip,
                 std::vector<int32_t>& out) {
  const size_t first = out.size();
  if (count == 1) {  // the usual case: one newcomer over the limit, one O(n) scan
    int32_t best = -1, fallback = -1;
    float best_key = 0.0f, fallback_key = 0.0f;
    for (int32_t s = 0; s < cells.n_used(); ++s) {
      if (!policy.evictable(cells, s)) continue;
      const float v = key(s);
      const bool skipped = skip(s);
      int32_t& b = skipped ? fallback : best;
      float& bk = skipped ? fallback_key : best_key;
      if (b < 0 || v < bk || (v == bk && cells.pos(s) < cells.pos(b))) {
        b = s;
        bk = v;
      }
    }
    if (best >= 0)
      out.push_back(best);
    else if (fallback >= 0)
      out.push_back(fallback);
    return;
  }
  auto picked = [&] { return static_cast<int32_t>(out.size() - first); };
  auto taken = [&](int32_t s) {
    return std::find(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(), s) != out.end();
  };
  // Pass 0 honours `skip`; pass 1 (only when pass 0 found too few) ignores it.
  for (int pass = 0; pass < 2 && picked() < count; ++pass) {
    while (picked() < count) {
      int32_t best = -1;
      float best_key = 0.0f;
      for (int32_t s = 0; s < cells.n_used(); ++s) {
        if (!policy.evictable(cells, s) || (pass == 0 && skip(s)) || taken(s)) continue;
        const float v = key(s);
        if (best < 0 || v < best_key || (v == best_key && cells.pos(s) < cells.pos(best))) {
          best = s;
          best_key = v;
        }
      }
      if (best < 0) break;
      out.push_back(best);
    }
  }
}

}  // namespace momentkv
