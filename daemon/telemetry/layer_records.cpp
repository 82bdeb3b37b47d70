#include "daemon/telemetry/layer_records.h"

#include <algorithm>

namespace momentkv::telemetry {

std::vector<LayerRecord> layer_records(const KvCache& kv) {
  std::vector<LayerRecord> out;
  const int32_t lanes = kv.n_head_kv();
  for (int32_t l = 0; l < kv.n_layer(); ++l) {
    LayerRecord r;
    r.layer = l;
    r.evicted = kv.evicted_in_layer(l);
    int64_t prompt = 0, generated = 0, age_sum = 0;
    for (int32_t h = 0; h < lanes; ++h) {
      const KvCells& cells = kv.cells(l, h);
      prompt += cells.n_prefill();
      for (int32_t s = 0; s < cells.n_used(); ++s) {
        if (cells.region(s) != Region::kDecode) continue;
        const int64_t age = kv.step() - cells.birth(s);
        ++generated;
        age_sum += age;
        r.oldest_kept_age = std::max(r.oldest_kept_age, age);
      }
    }
    r.resident_prompt = static_cast<double>(prompt) / lanes;
    r.resident_generated = static_cast<double>(generated) / lanes;
    r.mean_kept_age =
        generated > 0 ? static_cast<double>(age_sum) / static_cast<double>(generated) : 0.0;
    out.push_back(r);
  }
  return out;
}

}  // namespace momentkv::telemetry
