// Per-layer compression statistics of a finished generation's cache, for the layer_stats table.
#pragma once

#include <vector>

#include "core/kv/kv_cache.h"
#include "daemon/telemetry/records.h"

namespace momentkv::telemetry {

// One record per layer: resident prompt and generated tokens (means over the layer's lanes),
// decode-time evictions, and the age in decode steps of the generated tokens still resident.
std::vector<LayerRecord> layer_records(const KvCache& kv);

}  // namespace momentkv::telemetry
