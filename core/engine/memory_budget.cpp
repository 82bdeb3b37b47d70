#include "core/engine/memory_budget.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "core/util/error.h"

namespace momentkv {

std::string format_bytes(uint64_t b) {
  char buf[64];
  if (b >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(b) / (1ull << 30));
  } else if (b >= (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(b) / (1ull << 20));
  } else if (b >= 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  }
  return buf;
}

std::optional<uint64_t> parse_bytes(const std::string& text) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::string unit = text.substr(used);
  unit.erase(
      std::remove_if(unit.begin(), unit.end(), [](unsigned char c) { return std::isspace(c); }),
      unit.end());
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kib")
    mult = 1024.0;
  else if (unit == "m" || unit == "mib")
    mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "kb")
    mult = 1e3;
  else if (unit == "mb")
    mult = 1e6;
  else if (unit == "gb")
    mult = 1e9;
  if (mult == 0 || !std::isfinite(x) || x < 0 || x * mult > 1.8e19) return std::nullopt;
  return static_cast<uint64_t>(x * mult);
}

std::string MemoryPlan::describe() const {
  return format_bytes(weights) + " weights + " + format_bytes(kv) + " KV + " +
         format_bytes(scratch) + " scratch + " + format_bytes(base) +
         " process = " + format_bytes(total());
}

MemoryPlan plan_memory(const Model& model, const EngineOptions& o, int n_threads, uint64_t base) {
  const ModelConfig& c = model.config();
  MemoryPlan p;
  p.weights = model.weight_bytes();
  const int32_t n_ctx = o.n_ctx > 0 ? o.n_ctx : c.n_ctx_train;
  const int32_t max_prompt = o.max_prompt > 0          ? o.max_prompt
                             : o.kv.decode_budget == 0 ? n_ctx
                                                       : std::max(1, n_ctx - o.kv.decode_budget);
  KvConfig kv = o.kv;
  kv.prefill_chunk = std::clamp(o.n_batch, 1, 4096);
  p.kv = KvCache::bytes_needed(c.n_layer, c.n_head_kv, c.head_dim, max_prompt, kv);
  const uint64_t capacity = static_cast<uint64_t>(KvCache::lane_capacity(max_prompt, kv));
  const uint64_t b = static_cast<uint64_t>(std::clamp(o.n_batch, 1, 4096));
  const uint64_t f = sizeof(float);
  // Engine activations (see Engine's constructor), logits for a batch, rope angles.
  uint64_t scratch = b * f *
                     (2ull * c.n_embd + 2ull * c.n_embd_q() + 2ull * c.n_embd_kv() + 2ull * c.n_ff +
                      static_cast<uint64_t>(c.n_rot) + std::max(c.n_embd, c.n_embd_q()));
  scratch += b * f * static_cast<uint64_t>(c.n_vocab);
  // KV bookkeeping: position, region, birth, score per slot and lane, plus the stats buffer.
  const uint64_t lanes = static_cast<uint64_t>(c.n_layer) * static_cast<uint64_t>(c.n_head_kv);
  scratch += lanes * capacity * (4 + 1 + 8 + 4) + static_cast<uint64_t>(c.n_head_kv) * capacity * f;
  // Per thread: quantized activations, attention probabilities, a value row, and stack pages.
  const uint64_t per_thread = b * f * static_cast<uint64_t>(std::max(c.n_embd, c.n_ff)) +
                              capacity * f + static_cast<uint64_t>(c.head_dim) * f + (256u << 10);
  scratch += static_cast<uint64_t>(std::max(n_threads, 1)) * per_thread;
  p.scratch = scratch;
  p.base = base;
  return p;
}

std::optional<std::string> MemoryBudget::try_reserve(uint64_t bytes, const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t left = used_ < budget_ ? budget_ - used_ : 0;
  if (bytes > left) {
    return what + " needs " + format_bytes(bytes) + " (" + std::to_string(bytes) +
           " bytes) but only " + format_bytes(left) + " (" + std::to_string(left) +
           " bytes) of the " + format_bytes(budget_) + " memory budget are available";
  }
  used_ += bytes;
  return std::nullopt;
}

void MemoryBudget::release(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  check(bytes <= used_, "MemoryBudget: releasing more than reserved");
  used_ -= bytes;
}

uint64_t MemoryBudget::used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

void MemoryBudget::set_budget(uint64_t budget_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  budget_ = budget_bytes;
}

uint64_t MemoryBudget::budget() const {
  std::lock_guard<std::mutex> lock(mu_);
  return budget_;
}

uint64_t MemoryBudget::available() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_ < budget_ ? budget_ - used_ : 0;
}

}  // namespace momentkv
